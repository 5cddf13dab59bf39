"""The `NoiseSchedule` base class and the package's public names."""

import importlib

import pytest
import torch

import ddiff.schedules
from ddiff.schedules import LogLinearSchedule, Noise, NoiseSchedule


@pytest.mark.parametrize("name", ddiff.schedules.__all__)
def test_every_public_name_imports(name: str) -> None:
    module = importlib.import_module("ddiff.schedules")
    assert getattr(module, name) is not None


def test_noise_schedule_is_abstract() -> None:
    with pytest.raises(TypeError, match="abstract"):
        NoiseSchedule()  # type: ignore[abstract]


def test_noise_is_a_named_pair() -> None:
    noise = LogLinearSchedule()(torch.tensor([0.25, 0.5]))
    assert isinstance(noise, Noise)
    assert noise._fields == ("total", "rate")
    total, rate = noise
    assert total is noise.total
    assert rate is noise.rate


def test_integer_times_use_the_default_dtype() -> None:
    total = LogLinearSchedule().total(torch.tensor([0, 1]))
    assert total.dtype == torch.get_default_dtype()


def test_a_minimal_subclass_gets_call_and_the_ends() -> None:
    class Linear(NoiseSchedule):
        """total = 2 t: the smallest schedule a user might write."""

        def total(self, t: torch.Tensor | float) -> torch.Tensor:
            return 2 * self._check_time(t)

        def rate(self, t: torch.Tensor | float) -> torch.Tensor:
            return torch.full_like(self._check_time(t), 2.0)

        def inverse(self, total: torch.Tensor | float) -> torch.Tensor:
            return self._check_total(total) / 2

    schedule = Linear()
    assert (schedule.total_min, schedule.total_max) == (0.0, 2.0)
    assert schedule(0.5) == Noise(torch.tensor(1.0), torch.tensor(2.0))
    with pytest.raises(ValueError, match="total must lie in"):
        schedule.inverse(2.5)
