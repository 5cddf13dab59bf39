"""The `NoiseSchedule` base class and the package's public names."""

import importlib

import pytest
import torch

import ddiff.schedules
from ddiff.schedules import CosineSchedule, LogLinearSchedule, Noise, NoiseSchedule
from ddiff.schedules.base import SurvivalSchedule


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
    assert noise._fields == ("sigma", "rate")
    sigma, rate = noise
    assert sigma is noise.sigma
    assert rate is noise.rate


def test_integer_times_use_the_default_dtype() -> None:
    total = LogLinearSchedule().total(torch.tensor([0, 1]))
    assert total.dtype == torch.get_default_dtype()


def test_a_minimal_subclass_gets_call_and_the_ends() -> None:
    class Linear(NoiseSchedule):
        """total = 2 t: the smallest schedule a user might write."""

        def _total(self, t: torch.Tensor) -> torch.Tensor:
            return 2 * t

        def _rate(self, t: torch.Tensor) -> torch.Tensor:
            return torch.full_like(t, 2.0)

        def _inverse(self, total: torch.Tensor) -> torch.Tensor:
            return total / 2

    schedule = Linear()
    assert (schedule.total_min, schedule.total_max) == (0.0, 2.0)
    assert schedule(0.5) == Noise(torch.tensor(1.0), torch.tensor(2.0))
    with pytest.raises(ValueError, match="sigma must lie in"):
        schedule.inverse(2.5)


@pytest.mark.parametrize("method", ["total", "rate", "inverse"])
def test_public_methods_cannot_be_overridden(method: str) -> None:
    """The public methods validate, then call the hooks: a subclass cannot skip the check."""

    def unchecked(self: NoiseSchedule, t: torch.Tensor | float) -> torch.Tensor:
        return torch.as_tensor(t)

    with pytest.raises(TypeError, match=rf"overrides {method}: implement the hooks _total"):
        type("Unchecked", (LogLinearSchedule,), {method: unchecked})


def test_hooks_receive_validated_tensors() -> None:
    seen: list[torch.Tensor] = []

    class Recording(LogLinearSchedule):
        def _total(self, t: torch.Tensor) -> torch.Tensor:
            seen.append(t)
            return super()._total(t)

    schedule = Recording()
    schedule.total(0.5)
    assert isinstance(seen[-1], torch.Tensor) and seen[-1].dtype == torch.get_default_dtype()
    for method in (schedule.total, schedule.rate):
        with pytest.raises(ValueError, match="t must lie in"):
            method(torch.tensor([0.5, 1.5]))
    with pytest.raises(ValueError, match="sigma must lie in"):
        schedule.inverse(-1.0)


# -- renamed arguments and attributes (kept for one release) ---------------------------------------


def _one_line_warning(record: pytest.WarningsRecorder, old: str, new: str) -> None:
    (warning,) = record
    message = str(warning.message)
    assert old in message and new in message and "\n" not in message, message


@pytest.mark.parametrize("cls", [LogLinearSchedule, CosineSchedule], ids=lambda c: c.__name__)
def test_eps_is_the_deprecated_name_of_survival(cls: type[SurvivalSchedule]) -> None:
    with pytest.warns(DeprecationWarning) as record:
        schedule = cls(eps=0.25)
    _one_line_warning(record, f"{cls.__name__}(eps=...)", "survival=...")
    assert repr(schedule) == repr(cls(survival=0.25))
    with pytest.warns(DeprecationWarning) as record:
        assert schedule.eps == 0.25
    _one_line_warning(record, f"{cls.__name__}.eps", f"{cls.__name__}.survival")
    with pytest.raises(TypeError, match=r"both eps= \(deprecated\) and survival="):
        cls(eps=0.25, survival=0.25)


def test_old_names_of_total_noise() -> None:
    schedule = LogLinearSchedule()
    noise = schedule(torch.tensor([0.5]))
    with pytest.warns(DeprecationWarning) as record:
        assert noise.total is noise.sigma
    _one_line_warning(record, "Noise.total", "Noise.sigma")
    with pytest.warns(DeprecationWarning) as record:
        t = schedule.inverse(total=noise.sigma)
    _one_line_warning(record, "inverse(total=...)", "sigma=...")
    assert torch.equal(t, schedule.inverse(sigma=noise.sigma))
