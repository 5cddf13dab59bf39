"""The contract every `NoiseSchedule` must satisfy, run over every schedule in `SCHEDULES`.

A new schedule (or a new interesting parameter setting) is one line in `SCHEDULES`; the
schedule-specific closed forms live in the per-schedule test modules.
"""

import math
import re

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from ddiff.schedules import (
    CosineSchedule,
    GeometricSchedule,
    LogLinearSchedule,
    Noise,
    NoiseSchedule,
)

SCHEDULES: list[NoiseSchedule] = [
    LogLinearSchedule(),
    LogLinearSchedule(eps=0.0),
    LogLinearSchedule(eps=0.5),
    GeometricSchedule(),
    GeometricSchedule(sigma_min=1.5, sigma_max=1.7),
    CosineSchedule(),
    CosineSchedule(eps=0.0),
]

each_schedule = pytest.mark.parametrize("schedule", SCHEDULES, ids=repr)
float_dtypes = pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)

F64 = torch.float64
# Times where cancellation bites: next to the data, next to the limit, and the ends themselves.
EDGE_TIMES = [0.0, 1e-300, 1e-12, 1e-9, 1e-6, 1e-3, 0.5, 1 - 1e-3, 1 - 1e-6, 1 - 1e-9]
EDGE_TIMES += [1 - 1e-12, math.nextafter(1.0, 0.0), 1.0]
times = st.floats(min_value=0.0, max_value=1.0)


def _round_trip_times(dtype: torch.dtype) -> torch.Tensor:
    return torch.cat(
        [torch.tensor(EDGE_TIMES, dtype=dtype), torch.linspace(0, 1, 201, dtype=dtype)]
    )


# -- monotone, with the right ends ------------------------------------------------------------------


@each_schedule
@float_dtypes
def test_total_is_non_decreasing_on_a_grid(schedule: NoiseSchedule, dtype: torch.dtype) -> None:
    t = torch.cat([torch.linspace(0, 1, 4001, dtype=dtype), torch.tensor(EDGE_TIMES, dtype=dtype)])
    total = schedule.total(t.sort().values)
    assert not total.isnan().any()
    assert (total[1:] >= total[:-1]).all()  # not diff(): inf - inf is nan


@each_schedule
@given(a=times, b=times)
def test_total_is_non_decreasing_for_any_pair(schedule: NoiseSchedule, a: float, b: float) -> None:
    for dtype in (torch.float32, F64):
        lo, hi = schedule.total(torch.tensor(sorted((a, b)), dtype=dtype))
        assert lo <= hi


@each_schedule
def test_ends_match_total_min_and_total_max(schedule: NoiseSchedule) -> None:
    start, end = schedule.total(torch.tensor([0.0, 1.0], dtype=F64)).tolist()
    assert start == schedule.total_min
    assert end == schedule.total_max
    assert 0.0 <= schedule.total_min < schedule.total_max
    assert math.isfinite(schedule.total_min)


@each_schedule
@float_dtypes
def test_total_and_rate_are_finite_and_non_negative_below_one(
    schedule: NoiseSchedule, dtype: torch.dtype
) -> None:
    t = torch.tensor(EDGE_TIMES, dtype=dtype)
    t = t[t < 1]  # in float32, 1 - 1e-12 rounds to 1
    noise = schedule(t)
    for value in noise:
        assert value.isfinite().all()
        assert (value >= 0).all()


# -- rate = d total / dt ---------------------------------------------------------------------------


@each_schedule
def test_rate_is_the_derivative_of_total(schedule: NoiseSchedule) -> None:
    t = torch.linspace(0.01, 0.99, 99, dtype=F64, requires_grad=True)
    (grad,) = torch.autograd.grad(schedule.total(t).sum(), t)
    torch.testing.assert_close(schedule.rate(t.detach()), grad, rtol=1e-10, atol=0.0)


@each_schedule
@given(t=st.floats(min_value=0.01, max_value=0.99))
def test_rate_is_the_derivative_of_total_anywhere(schedule: NoiseSchedule, t: float) -> None:
    t_ = torch.tensor(t, dtype=F64, requires_grad=True)
    (grad,) = torch.autograd.grad(schedule.total(t_), t_)
    torch.testing.assert_close(schedule.rate(t_.detach()), grad, rtol=1e-10, atol=0.0)


# -- inverse ----------------------------------------------------------------------------------------


@each_schedule
def test_inverse_undoes_total_in_float64(schedule: NoiseSchedule) -> None:
    # The infinite total at t = 1 (eps = 0) maps back to 1 as well.
    t = _round_trip_times(F64)
    torch.testing.assert_close(schedule.inverse(schedule.total(t)), t, rtol=1e-12, atol=1e-14)


@each_schedule
@given(t=times)
def test_inverse_undoes_total_anywhere(schedule: NoiseSchedule, t: float) -> None:
    t_ = torch.tensor(t, dtype=F64)
    torch.testing.assert_close(schedule.inverse(schedule.total(t_)), t_, rtol=1e-12, atol=1e-14)


@each_schedule
def test_inverse_undoes_total_in_float32(schedule: NoiseSchedule) -> None:
    t = _round_trip_times(torch.float32)
    torch.testing.assert_close(schedule.inverse(schedule.total(t)), t, rtol=1e-5, atol=1e-6)


@each_schedule
def test_inverse_accepts_the_ends(schedule: NoiseSchedule) -> None:
    ends = torch.tensor([schedule.total_min, schedule.total_max], dtype=F64)
    assert schedule.inverse(ends).tolist() == [0.0, 1.0]


# -- shapes, dtypes, inputs ------------------------------------------------------------------------


@each_schedule
@pytest.mark.parametrize(
    "dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64], ids=str
)
@pytest.mark.parametrize("shape", [(), (7,), (2, 3, 4), (0, 5)], ids=str)
def test_outputs_keep_shape_and_dtype(
    schedule: NoiseSchedule, dtype: torch.dtype, shape: tuple[int, ...]
) -> None:
    t = torch.rand(shape, dtype=F64, generator=torch.Generator().manual_seed(0)).to(dtype)
    noise = schedule(t)
    assert isinstance(noise, Noise)
    outputs = [schedule.total(t), schedule.rate(t), *noise, schedule.inverse(noise.total)]
    for out in outputs:
        assert out.shape == t.shape
        assert out.dtype == dtype


@each_schedule
def test_call_returns_total_and_rate(schedule: NoiseSchedule) -> None:
    t = torch.linspace(0, 1, 11, dtype=F64)
    total, rate = schedule(t)
    torch.testing.assert_close(total, schedule.total(t), rtol=0, atol=0)
    torch.testing.assert_close(rate, schedule.rate(t), rtol=0, atol=0)


@each_schedule
def test_python_numbers_are_accepted(schedule: NoiseSchedule) -> None:
    total = schedule.total(0.25)
    assert isinstance(total, torch.Tensor)
    assert total.dtype == torch.get_default_dtype()
    assert total.shape == ()
    expected = schedule.total(torch.tensor(0.25, dtype=torch.get_default_dtype()))
    assert float(total) == float(expected)
    assert float(schedule.inverse(float(total))) == pytest.approx(0.25, rel=1e-5)


@each_schedule
def test_float32_total_is_accurate_next_to_the_data(schedule: NoiseSchedule) -> None:
    t = 1e-6
    for fn in (schedule.total, schedule.rate):
        f32 = fn(torch.tensor(t, dtype=torch.float32)).double()
        f64 = fn(torch.tensor(t, dtype=F64))
        torch.testing.assert_close(f32, f64, rtol=1e-5, atol=0.0)


# -- errors -----------------------------------------------------------------------------------------


@each_schedule
@pytest.mark.parametrize("bad", [-1e-9, -0.5, 1.0 + 1e-9, 2.0, math.nan], ids=str)
def test_times_outside_the_unit_interval_raise(schedule: NoiseSchedule, bad: float) -> None:
    t = torch.tensor([0.0, 0.5, bad], dtype=F64)
    shown = "nan" if math.isnan(bad) else re.escape(repr(bad))
    for fn in (schedule.total, schedule.rate, schedule):
        with pytest.raises(ValueError, match=rf"t must lie in \[0, 1\].*{shown} at index \(2,\)"):
            fn(t)
    with pytest.raises(ValueError, match=rf"t must lie in \[0, 1\].*{shown}"):
        schedule.total(bad)


@each_schedule
def test_inverse_outside_the_range_raises(schedule: NoiseSchedule) -> None:
    below = schedule.total_min - max(1e-3, 1e-3 * schedule.total_min)
    outside = [below, math.nan]
    if math.isfinite(schedule.total_max):
        outside.append(schedule.total_max * 1.001)
    for bad in outside:
        with pytest.raises(ValueError, match=r"total must lie in \[total_min, total_max\]"):
            schedule.inverse(torch.tensor([schedule.total_min, bad], dtype=F64))


@each_schedule
def test_complex_times_are_refused(schedule: NoiseSchedule) -> None:
    with pytest.raises(TypeError, match="real tensor"):
        schedule.total(torch.zeros(2, dtype=torch.complex64))


# -- representation ---------------------------------------------------------------------------------


@each_schedule
def test_repr_shows_the_parameters_and_rebuilds_the_schedule(schedule: NoiseSchedule) -> None:
    text = repr(schedule)
    assert text.startswith(type(schedule).__name__ + "(")
    rebuilt = eval(text, {type(schedule).__name__: type(schedule)})
    assert repr(rebuilt) == text
    t = torch.linspace(0, 1, 5, dtype=F64)
    torch.testing.assert_close(rebuilt.total(t), schedule.total(t), rtol=0, atol=0)
