"""`GeometricSchedule`: closed forms and argument checks."""

import math

import pytest
import torch

from ddiff.schedules import GeometricSchedule

F64 = torch.float64


def test_matches_the_closed_form() -> None:
    schedule = GeometricSchedule(sigma_min=1e-3, sigma_max=50.0)
    t = torch.linspace(0, 1, 101, dtype=F64)
    total = 1e-3 ** (1 - t) * 50.0**t
    torch.testing.assert_close(schedule.total(t), total, rtol=1e-14, atol=0.0)
    torch.testing.assert_close(
        schedule.rate(t), total * math.log(50.0 / 1e-3), rtol=1e-14, atol=0.0
    )
    # Equal steps in t multiply the total by equal factors.
    ratios = schedule.total(t).diff().div(schedule.total(t)[:-1])
    torch.testing.assert_close(ratios, ratios[:1].expand_as(ratios), rtol=1e-12, atol=0.0)


def test_ends_are_sigma_min_and_sigma_max() -> None:
    schedule = GeometricSchedule()
    assert schedule.sigma_min == 1e-4
    assert schedule.sigma_max == 20.0
    assert schedule.total_min == pytest.approx(1e-4, rel=1e-15)
    assert schedule.total_max == pytest.approx(20.0, rel=1e-15)
    # The parameters themselves are valid totals even if total(0), total(1) are an ulp away.
    ends = torch.tensor([1e-4, 20.0], dtype=F64)
    assert schedule.inverse(ends).tolist() == pytest.approx([0.0, 1.0], abs=1e-15)


def test_does_not_overflow_in_float16() -> None:
    # (sigma_max / sigma_min)^t = 2e5 at t = 1 exceeds float16's range; the total does not.
    schedule = GeometricSchedule()
    t = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float16)
    total = schedule.total(t)
    assert total.isfinite().all()
    torch.testing.assert_close(total.double(), schedule.total(t.double()), rtol=1e-2, atol=0.0)
    torch.testing.assert_close(schedule.inverse(total), t, rtol=0.0, atol=1e-2)


def test_inverse_below_sigma_min_raises() -> None:
    schedule = GeometricSchedule()
    with pytest.raises(ValueError, match=r"sigma must lie in .*got 0\.0 at index \(1,\)"):
        schedule.inverse(torch.tensor([1.0, 0.0], dtype=F64))


@pytest.mark.parametrize(
    ("sigma_min", "sigma_max"),
    [(0.0, 20.0), (-1.0, 20.0), (1.0, 1.0), (2.0, 1.0), (1e-4, math.inf), (math.nan, 1.0)],
)
def test_bad_range_raises(sigma_min: float, sigma_max: float) -> None:
    with pytest.raises(ValueError, match=r"0 < sigma_min < sigma_max < inf"):
        GeometricSchedule(sigma_min, sigma_max)


def test_repr() -> None:
    assert repr(GeometricSchedule()) == "GeometricSchedule(sigma_min=0.0001, sigma_max=20.0)"
