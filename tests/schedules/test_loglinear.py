"""`LogLinearSchedule`: closed forms, the survival = 0 limit and argument checks."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from ddiff.schedules import LogLinearSchedule

F64 = torch.float64


@pytest.mark.parametrize("survival", [0.0, 1e-3, 0.5])
def test_matches_the_closed_form(survival: float) -> None:
    schedule = LogLinearSchedule(survival)
    t = torch.linspace(0, 0.99, 100, dtype=F64)
    torch.testing.assert_close(schedule.total(t), -torch.log(1 - (1 - survival) * t))
    torch.testing.assert_close(schedule.rate(t), (1 - survival) / (1 - (1 - survival) * t))
    # The survival probability falls linearly from 1 to survival.
    torch.testing.assert_close(torch.exp(-schedule.total(t)), 1 - (1 - survival) * t)


def test_starts_at_zero_and_ends_at_minus_log_survival() -> None:
    schedule = LogLinearSchedule(survival=1e-3)
    assert schedule.total_min == 0.0
    assert schedule.total_max == pytest.approx(-math.log(1e-3), rel=1e-15)
    assert schedule.survival == 1e-3
    # -math.log(survival) may differ from total(1) in the last bit; inverse still accepts it.
    assert float(schedule.inverse(torch.tensor(-math.log(1e-3), dtype=F64))) == 1.0


def test_survival_zero_reaches_the_limit_exactly() -> None:
    schedule = LogLinearSchedule(survival=0.0)
    assert schedule.total_max == math.inf
    for dtype in (torch.float32, F64):
        noise = schedule(torch.tensor(1.0, dtype=dtype))
        assert noise.sigma.item() == math.inf
        assert noise.rate.item() == math.inf
        assert schedule.inverse(torch.tensor(math.inf, dtype=dtype)).item() == 1.0


@given(t=st.floats(min_value=0.0, max_value=1.0, exclude_max=True))
def test_survival_zero_is_finite_below_one(t: float) -> None:
    noise = LogLinearSchedule(survival=0.0)(torch.tensor(t, dtype=F64))
    assert math.isfinite(noise.sigma.item())
    assert math.isfinite(noise.rate.item())


def test_float32_is_relatively_accurate_next_to_the_data() -> None:
    # The naive -log(1 - t) would give 0 (or 1.19e-7) in float32 at t = 1e-8; log1p keeps t.
    total = LogLinearSchedule(survival=0.0).total(torch.tensor(1e-8, dtype=torch.float32))
    assert total.item() == pytest.approx(1e-8, rel=1e-6)


@pytest.mark.parametrize("survival", [-1e-3, 1.0, 2.0, math.nan, math.inf])
def test_bad_survival_raises(survival: float) -> None:
    with pytest.raises(ValueError, match=r"survival must be in \[0, 1\)"):
        LogLinearSchedule(survival)


def test_repr() -> None:
    assert repr(LogLinearSchedule()) == "LogLinearSchedule(survival=0.001)"
