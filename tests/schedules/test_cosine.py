"""`CosineSchedule`: closed forms, numerics at both ends and argument checks."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from ddiff.schedules import CosineSchedule

F64 = torch.float64


@pytest.mark.parametrize("survival", [0.0, 1e-3, 0.5])
def test_matches_the_closed_form(survival: float) -> None:
    schedule = CosineSchedule(survival)
    t = torch.linspace(0, 0.99, 100, dtype=F64)
    alpha = survival + (1 - survival) * torch.cos(math.pi * t / 2)
    torch.testing.assert_close(schedule.total(t), -torch.log(alpha))
    rate = (1 - survival) * (math.pi / 2) * torch.sin(math.pi * t / 2) / alpha
    torch.testing.assert_close(schedule.rate(t), rate)
    inverse = (2 / math.pi) * torch.arccos((alpha - survival) / (1 - survival))
    torch.testing.assert_close(schedule.inverse(-torch.log(alpha)), inverse)


def test_starts_at_zero_and_ends_at_minus_log_survival() -> None:
    schedule = CosineSchedule(survival=1e-3)
    assert schedule.total_min == 0.0
    assert schedule.total_max == pytest.approx(-math.log(1e-3), rel=1e-15)
    assert schedule.rate(torch.tensor(0.0, dtype=F64)).item() == 0.0


def test_survival_zero_reaches_the_limit_exactly() -> None:
    # Computing cos(pi / 2) directly would give 6e-17 and a finite total of 37.3.
    schedule = CosineSchedule(survival=0.0)
    assert schedule.total_max == math.inf
    for dtype in (torch.float32, F64):
        noise = schedule(torch.tensor(1.0, dtype=dtype))
        assert noise.sigma.item() == math.inf
        assert noise.rate.item() == math.inf
        assert schedule.inverse(torch.tensor(math.inf, dtype=dtype)).item() == 1.0


@given(t=st.floats(min_value=0.0, max_value=1.0, exclude_max=True))
def test_survival_zero_is_finite_below_one(t: float) -> None:
    noise = CosineSchedule(survival=0.0)(torch.tensor(t, dtype=F64))
    assert math.isfinite(noise.sigma.item())
    assert math.isfinite(noise.rate.item())


def test_float32_is_relatively_accurate_next_to_the_data() -> None:
    # total ~ pi^2 t^2 / 8 = 1.2e-12 at t = 1e-6: far below float32's 1 - cos resolution.
    schedule = CosineSchedule(survival=0.0)
    t = torch.tensor([1e-6, 1e-4], dtype=torch.float32)
    expected = schedule.total(t.double())
    torch.testing.assert_close(schedule.total(t).double(), expected, rtol=1e-6, atol=0.0)
    torch.testing.assert_close(schedule.inverse(schedule.total(t)), t, rtol=1e-6, atol=0.0)


def test_no_step_down_where_the_two_forms_meet() -> None:
    # t <= 1/2 and t > 1/2 use different (equal in exact arithmetic) formulas.
    for dtype in (torch.float16, torch.bfloat16, torch.float32, F64):
        half = torch.tensor(0.5, dtype=dtype)
        after = torch.nextafter(half, torch.tensor(1.0, dtype=dtype))
        for survival in torch.logspace(-8, -0.01, 200, dtype=F64).tolist():
            lo, hi = CosineSchedule(survival).total(torch.stack([half, after]))
            assert lo <= hi, (dtype, survival)


@pytest.mark.parametrize("survival", [-1e-3, 1.0, math.nan])
def test_bad_survival_raises(survival: float) -> None:
    with pytest.raises(ValueError, match=r"survival must be in \[0, 1\)"):
        CosineSchedule(survival)


def test_repr() -> None:
    assert repr(CosineSchedule(survival=0.0)) == "CosineSchedule(survival=0.0)"
