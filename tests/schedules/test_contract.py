"""The contract every `NoiseSchedule` must satisfy, run over every schedule class in ddiff.

The suite runs over the examples of every concrete schedule class (`tests.testing.registry`): a
new schedule class, or a new interesting parameter setting, is a line in `EXAMPLES`, and a class
without one fails `test_every_schedule_class_has_examples`. The schedule-specific closed forms
live in the per-schedule test modules, the checks themselves in `ddiff.testing.contracts` (which
users run on their own schedules).
"""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from ddiff.schedules import (
    CosineSchedule,
    GeometricSchedule,
    LogLinearSchedule,
    NoiseSchedule,
)
from ddiff.testing import contracts
from tests.testing import registry


def _by_repr(*schedules: NoiseSchedule) -> dict[str, NoiseSchedule]:
    return {repr(schedule): schedule for schedule in schedules}


EXAMPLES: dict[type[NoiseSchedule], dict[str, NoiseSchedule]] = {
    LogLinearSchedule: _by_repr(
        LogLinearSchedule(), LogLinearSchedule(survival=0.0), LogLinearSchedule(survival=0.5)
    ),
    GeometricSchedule: _by_repr(
        GeometricSchedule(), GeometricSchedule(sigma_min=1.5, sigma_max=1.7)
    ),
    CosineSchedule: _by_repr(CosineSchedule(), CosineSchedule(survival=0.0)),
}
SCHEDULES = list(registry.implementations(NoiseSchedule, EXAMPLES).values())

each_schedule = pytest.mark.parametrize("schedule", SCHEDULES, ids=repr)
float_dtypes = pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)

F64 = torch.float64
EDGE_TIMES = list(contracts.EDGE_TIMES)
times = st.floats(min_value=0.0, max_value=1.0)


def _round_trip_times(dtype: torch.dtype) -> torch.Tensor:
    return torch.cat(
        [torch.tensor(EDGE_TIMES, dtype=dtype), torch.linspace(0, 1, 201, dtype=dtype)]
    )


def test_every_schedule_class_has_examples() -> None:
    assert not registry.missing(NoiseSchedule, EXAMPLES), "add examples to EXAMPLES"


# -- monotone, with the right ends ------------------------------------------------------------------


@each_schedule
@float_dtypes
def test_total_is_non_decreasing_on_a_grid(schedule: NoiseSchedule, dtype: torch.dtype) -> None:
    t = torch.cat([torch.linspace(0, 1, 4001, dtype=dtype), torch.tensor(EDGE_TIMES, dtype=dtype)])
    contracts.check_schedule_total(schedule, t, dtypes=(dtype,))


@each_schedule
@given(a=times, b=times)
def test_total_is_non_decreasing_for_any_pair(schedule: NoiseSchedule, a: float, b: float) -> None:
    contracts.check_schedule_total(schedule, [a, b], dtypes=(torch.float32, F64))


@each_schedule
def test_ends_match_total_min_and_total_max(schedule: NoiseSchedule) -> None:
    contracts.check_schedule_ends(schedule)


@each_schedule
@float_dtypes
def test_total_and_rate_are_finite_and_non_negative_below_one(
    schedule: NoiseSchedule, dtype: torch.dtype
) -> None:
    contracts.check_schedule_total(schedule, EDGE_TIMES, dtypes=(dtype,))


# -- rate = d total / dt ---------------------------------------------------------------------------


@each_schedule
def test_rate_is_the_derivative_of_total(schedule: NoiseSchedule) -> None:
    t = torch.linspace(0.01, 0.99, 99, dtype=F64)
    contracts.check_schedule_rate(schedule, t, rtol=1e-10)


@each_schedule
@given(t=st.floats(min_value=0.01, max_value=0.99))
def test_rate_is_the_derivative_of_total_anywhere(schedule: NoiseSchedule, t: float) -> None:
    contracts.check_schedule_rate(schedule, [t], rtol=1e-10)


# -- inverse ----------------------------------------------------------------------------------------


@each_schedule
def test_inverse_undoes_total_in_float64(schedule: NoiseSchedule) -> None:
    # The infinite total at t = 1 (eps = 0) maps back to 1 as well.
    contracts.check_schedule_inverse(schedule, _round_trip_times(F64), dtype=F64)


@each_schedule
@given(t=times)
def test_inverse_undoes_total_anywhere(schedule: NoiseSchedule, t: float) -> None:
    contracts.check_schedule_inverse(schedule, [t], dtype=F64)


@each_schedule
def test_inverse_undoes_total_in_float32(schedule: NoiseSchedule) -> None:
    contracts.check_schedule_inverse(
        schedule, _round_trip_times(torch.float32), dtype=torch.float32
    )


@each_schedule
def test_inverse_accepts_the_ends(schedule: NoiseSchedule) -> None:
    contracts.check_schedule_inverse(schedule, [0.0, 1.0])


# -- shapes, dtypes, inputs ------------------------------------------------------------------------


@each_schedule
@pytest.mark.parametrize(
    "dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64], ids=str
)
@pytest.mark.parametrize("shape", [(), (7,), (2, 3, 4), (0, 5)], ids=str)
def test_outputs_keep_shape_and_dtype(
    schedule: NoiseSchedule, dtype: torch.dtype, shape: tuple[int, ...]
) -> None:
    contracts.check_schedule_dtypes(schedule, dtypes=(dtype,), shapes=(shape,))


@each_schedule
def test_call_returns_total_and_rate(schedule: NoiseSchedule) -> None:
    contracts.check_schedule_dtypes(schedule, dtypes=(F64,), shapes=((11,),))


@each_schedule
def test_python_numbers_are_accepted(schedule: NoiseSchedule) -> None:
    contracts.check_schedule_python_numbers(schedule)


@each_schedule
def test_float32_total_is_accurate_next_to_the_data(schedule: NoiseSchedule) -> None:
    contracts.check_schedule_precision(schedule, t=1e-6)


# -- errors -----------------------------------------------------------------------------------------


@each_schedule
@pytest.mark.parametrize("bad", [-1e-9, -0.5, 1.0 + 1e-9, 2.0, math.nan], ids=str)
def test_times_outside_the_unit_interval_raise(schedule: NoiseSchedule, bad: float) -> None:
    contracts.check_schedule_arguments(schedule, bad_times=[bad])


@each_schedule
def test_inverse_outside_the_range_raises(schedule: NoiseSchedule) -> None:
    contracts.check_schedule_inverse(schedule, [])


@each_schedule
def test_complex_times_are_refused(schedule: NoiseSchedule) -> None:
    contracts.check_schedule_arguments(schedule, bad_times=[])


# -- representation ---------------------------------------------------------------------------------


@each_schedule
def test_repr_shows_the_parameters_and_rebuilds_the_schedule(schedule: NoiseSchedule) -> None:
    text = repr(schedule)
    assert text.startswith(type(schedule).__name__ + "(")
    rebuilt = eval(text, {type(schedule).__name__: type(schedule)})
    assert repr(rebuilt) == text
    t = torch.linspace(0, 1, 5, dtype=F64)
    torch.testing.assert_close(rebuilt.total(t), schedule.total(t), rtol=0, atol=0)
