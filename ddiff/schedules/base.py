"""The `NoiseSchedule` abstraction: how much noise has been added by time t, and how fast."""

from __future__ import annotations

import abc
from typing import Any, NamedTuple

import torch
from torch import Tensor

from ddiff._checks import renamed_keywords, warn_renamed


class Noise(NamedTuple):
    r"""The noise level at some times t: total noise `sigma` $= \bar\sigma(t)$ and its `rate`.

    Both fields have the shape and dtype of the `t` they were computed from.

    Example:
        >>> import torch
        >>> from ddiff.schedules import LogLinearSchedule
        >>> noise = LogLinearSchedule(survival=0.0)(torch.tensor([0.0, 0.5]))
        >>> noise.sigma, noise.rate  # -log(1 - t) and 1 / (1 - t)
        (tensor([0.0000, 0.6931]), tensor([1., 2.]))
        >>> sigma, rate = noise  # a NamedTuple: it unpacks
    """

    sigma: Tensor
    r"""Total noise $\bar\sigma(t) = \int_0^t \sigma(s)\,ds$, the kernel's exponent."""

    rate: Tensor
    r"""Noise rate $\sigma(t) = d\bar\sigma / dt$, the weight of the loss at time t."""

    @property
    def total(self) -> Tensor:
        """Deprecated name of `sigma` (removed in the next release)."""
        warn_renamed("Noise.total", "Noise.sigma")
        return self.sigma


class NoiseSchedule(abc.ABC):
    r"""A monotone map from time $t \in [0, 1]$ to the total noise of the forward CTMC.

    The forward chain runs at rate $\sigma(t)$ (`rate`), so the kernel at time t is
    $P = \exp(\bar\sigma(t) Q)$ with total noise

    $$\bar\sigma(t) = \int_0^t \sigma(s)\, ds, \qquad \sigma(t) = \frac{d\bar\sigma}{dt} \ge 0.$$

    Time runs from $t = 0$ (data) to $t = 1$ (close to the limit distribution). The likelihood
    bound weights the loss by $\sigma(t)$ and adds the prior term at $\bar\sigma(1)$
    (Lou, Meng & Ermon, ICML 2024).

    Names: `total(t)` is the function $t \mapsto \bar\sigma(t)$ and `total_min`, `total_max` its
    range; a value of it (an argument of `inverse`, of graphs, networks and losses) is `sigma`.

    The public methods validate their arguments and then call a hook, so every schedule checks
    them in the same way and none can skip it. Subclasses implement the hooks `_total`, `_rate`
    and `_inverse` (overriding `total`, `rate` or `inverse` is a `TypeError`); each hook receives
    a validated float tensor of any shape and dtype and returns the same shape and dtype.
    `total_min` and `total_max` default to the total at t = 0 and t = 1 evaluated in float64;
    override them only for a closed form. `ddiff.testing.check_schedule` runs the contract.

    Example:
        >>> import torch
        >>> from ddiff.schedules import LogLinearSchedule
        >>> schedule = LogLinearSchedule(survival=1e-3)
        >>> t = torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)
        >>> noise = schedule(t)
        >>> noise.sigma  # -log(1 - (1 - survival) t)
        tensor([0.1052, 0.6921, 2.2936], dtype=torch.float64)
        >>> noise.rate  # (1 - survival) / (1 - (1 - survival) t)
        tensor([1.1099, 1.9960, 9.9009], dtype=torch.float64)
        >>> h = 1e-6  # the rate is d total / dt: a central difference agrees
        >>> (schedule.total(t + h) - schedule.total(t - h)) / (2 * h)
        tensor([1.1099, 1.9960, 9.9009], dtype=torch.float64)
        >>> schedule.inverse(noise.sigma)  # back to t
        tensor([0.1000, 0.5000, 0.9000], dtype=torch.float64)
    """

    _VALIDATED = ("total", "rate", "inverse")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        overridden = [name for name in NoiseSchedule._VALIDATED if name in vars(cls)]
        if overridden:
            raise TypeError(
                f"{cls.__name__} overrides {', '.join(overridden)}: implement the hooks "
                "_total, _rate and _inverse instead (the public methods validate their "
                "argument, then call the hook)"
            )

    # -- public methods: validate, then call the hook ----------------------------------------------

    def total(self, t: Tensor | float) -> Tensor:
        r"""Total noise `sigma` $= \bar\sigma(t)$, same shape and dtype as `t` (non-decreasing).

        Raises:
            ValueError: unless every entry of `t` is in [0, 1].
        """
        return self._total(self._check_time(t))

    def rate(self, t: Tensor | float) -> Tensor:
        r"""Noise rate $\sigma(t) = d\bar\sigma/dt \ge 0$, same shape and dtype as `t`.

        Raises:
            ValueError: unless every entry of `t` is in [0, 1].
        """
        return self._rate(self._check_time(t))

    @renamed_keywords(total="sigma")
    def inverse(self, sigma: Tensor | float) -> Tensor:
        r"""The time t in $[0, 1]$ with $\bar\sigma(t) = $ `sigma`, same shape and dtype.

        Raises:
            ValueError: if `sigma` lies outside `[total_min, total_max]`.
        """
        return self._inverse(self._check_sigma(sigma))

    def __call__(self, t: Tensor | float) -> Noise:
        """Both the total noise and its rate at times `t`."""
        return Noise(sigma=self.total(t), rate=self.rate(t))

    @property
    def total_min(self) -> float:
        r"""$\bar\sigma(0)$: 0 unless the schedule starts from a positive noise level."""
        return float(self._total(torch.tensor(0.0, dtype=torch.float64)))

    @property
    def total_max(self) -> float:
        r"""$\bar\sigma(1)$; `math.inf` if the schedule reaches the limit distribution exactly."""
        return float(self._total(torch.tensor(1.0, dtype=torch.float64)))

    # -- hooks (subclasses) ------------------------------------------------------------------------

    @abc.abstractmethod
    def _total(self, t: Tensor) -> Tensor:
        r"""$\bar\sigma(t)$ for a float tensor `t` with entries in [0, 1], same shape and dtype."""

    @abc.abstractmethod
    def _rate(self, t: Tensor) -> Tensor:
        r"""$d\bar\sigma/dt$ for a float tensor `t` with entries in [0, 1], same shape and dtype."""

    @abc.abstractmethod
    def _inverse(self, sigma: Tensor) -> Tensor:
        """t with `_total(t) = sigma` for a float tensor `sigma` in `[total(0), total(1)]`.

        `sigma` may exceed the ends by a few ulps (see `_check_sigma`): clamp the result to
        [0, 1].
        """

    # -- argument checks shared by every subclass -------------------------------------------------

    @staticmethod
    def _check_time(t: Tensor | float) -> Tensor:
        """Return `t` as a float tensor, raising `ValueError` unless every entry is in [0, 1]."""
        as_tensor = _as_float_tensor(t, "t")
        bad = ~((as_tensor >= 0) & (as_tensor <= 1))  # also catches NaN
        if bad.any():
            index, value = _first(as_tensor, bad)
            raise ValueError(
                f"t must lie in [0, 1] (0 = data, 1 = limit), got {value!r}{index}; "
                "clamp or rescale the times before calling the schedule"
            )
        return _default_dtype_unless_tensor(as_tensor, t)

    def _check_sigma(self, sigma: Tensor | float) -> Tensor:
        """Return `sigma` as a float tensor, raising unless it is in `[total(0), total(1)]`.

        The bounds are evaluated in `sigma`'s own dtype, so `inverse(total(t))` is valid for every
        t in [0, 1] even where float32 rounding puts `total(1)` above the float64 `total_max`.
        They are widened by a few ulps so that an end computed by another route (say
        `-math.log(survival)` instead of `-log1p(survival - 1)`) is accepted; `_inverse` clamps
        to [0, 1].
        """
        as_tensor = _as_float_tensor(sigma, "sigma")
        ends = self._total(torch.tensor([0.0, 1.0], dtype=as_tensor.dtype, device=as_tensor.device))
        slack = 4 * torch.finfo(as_tensor.dtype).eps * ends.abs()
        bad = ~((as_tensor >= ends[0] - slack[0]) & (as_tensor <= ends[1] + slack[1]))
        if bad.any():
            index, value = _first(as_tensor, bad)
            raise ValueError(
                f"sigma must lie in [total_min, total_max] = [{self.total_min!r}, "
                f"{self.total_max!r}] for {self!r}, got {value!r}{index}"
            )
        return _default_dtype_unless_tensor(as_tensor, sigma)


class SurvivalSchedule(NoiseSchedule):
    r"""A schedule parameterised by `survival`, the probability $e^{-\bar\sigma(1)}$ left at t = 1.

    Shared by `LogLinearSchedule` and `CosineSchedule`: `survival = 0` reaches the limit exactly.
    """

    @renamed_keywords(eps="survival")
    def __init__(self, survival: float = 1e-3) -> None:
        survival = float(survival)
        if not 0.0 <= survival < 1.0:
            raise ValueError(
                f"survival must be in [0, 1) (the survival probability left at t = 1), got "
                f"{survival!r}"
            )
        self._survival = survival

    @property
    def survival(self) -> float:
        r"""The survival probability $e^{-\bar\sigma(1)}$ left at t = 1."""
        return self._survival

    @property
    def eps(self) -> float:
        """Deprecated name of `survival` (removed in the next release)."""
        warn_renamed(f"{type(self).__name__}.eps", f"{type(self).__name__}.survival")
        return self._survival

    def __repr__(self) -> str:
        return f"{type(self).__name__}(survival={self._survival!r})"


def _as_float_tensor(x: Tensor | float, name: str) -> Tensor:
    if not isinstance(x, Tensor):
        # Python floats are float64: check them before rounding to the default dtype, where
        # 1 + 1e-9 would become a valid 1.0.
        return torch.as_tensor(x, dtype=torch.float64)
    if x.is_complex():
        raise TypeError(f"{name} must be a real tensor, got dtype {x.dtype}")
    if not x.is_floating_point():
        return x.to(torch.get_default_dtype())
    return x


def _default_dtype_unless_tensor(checked: Tensor, original: Tensor | float) -> Tensor:
    """Python numbers, once checked in float64, are computed in the default dtype."""
    return checked if isinstance(original, Tensor) else checked.to(torch.get_default_dtype())


def _first(x: Tensor, mask: Tensor) -> tuple[str, float]:
    """The index (as text, empty for a 0-dim tensor) and value of the first masked entry."""
    if x.dim() == 0:
        return "", float(x)
    index = tuple(mask.nonzero()[0].tolist())
    return f" at index {index}", float(x[index])
