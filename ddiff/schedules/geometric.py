"""The geometric schedule: total noise grows exponentially between two positive levels."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ddiff.schedules.base import NoiseSchedule


class GeometricSchedule(NoiseSchedule):
    r"""Geometric noise: $\bar\sigma(t) = \sigma_{\min}^{1-t}\, \sigma_{\max}^{t}$.

    $$\sigma(t) = \bar\sigma(t) \log\frac{\sigma_{\max}}{\sigma_{\min}}, \qquad
      t = \frac{\log(\bar\sigma / \sigma_{\min})}{\log(\sigma_{\max} / \sigma_{\min})}.$$

    The noise levels are spaced geometrically, as in noise-conditional score networks (Song &
    Ermon, *Generative Modeling by Estimating Gradients of the Data Distribution*, NeurIPS 2019);
    SEDD uses this schedule with the uniform graph (Lou, Meng & Ermon, ICML 2024).

    The total starts at $\bar\sigma(0) = \sigma_{\min} > 0$, not at 0: the chain at t = 0 is
    already slightly noised. The likelihood bound built on this schedule therefore covers only
    the noise levels $[\sigma_{\min}, \sigma_{\max}]$ and misses the stretch $[0, \sigma_{\min}]$
    (small for the default 1e-4, but it is not a bound on the clean data's likelihood).
    $\sigma_{\max}$ should make $P(\sigma_{\max})$ close to the limit distribution (the prior
    term of the bound measures the remaining gap).

    Args:
        sigma_min: total noise at t = 0; must satisfy 0 < sigma_min < sigma_max.
        sigma_max: total noise at t = 1; finite.

    Example:
        >>> import torch
        >>> from ddiff.schedules import GeometricSchedule
        >>> schedule = GeometricSchedule(sigma_min=1e-4, sigma_max=20.0)
        >>> t = torch.rand(5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        >>> bool(torch.allclose(schedule.inverse(schedule.total(t)), t))
        True
        >>> noise = schedule(torch.tensor([0.0, 1.0], dtype=torch.float64))
        >>> [round(x, 4) for x in noise.sigma.tolist()]
        [0.0001, 20.0]
        >>> round(float(noise.rate[1] / noise.sigma[1]), 4)  # log(sigma_max / sigma_min)
        12.2061
    """

    def __init__(self, sigma_min: float = 1e-4, sigma_max: float = 20.0) -> None:
        sigma_min, sigma_max = float(sigma_min), float(sigma_max)
        if not 0.0 < sigma_min < sigma_max < math.inf:
            raise ValueError(
                "sigma_min and sigma_max must satisfy 0 < sigma_min < sigma_max < inf, "
                f"got sigma_min={sigma_min!r}, sigma_max={sigma_max!r}"
            )
        self._sigma_min = sigma_min
        self._sigma_max = sigma_max
        self._log_sigma_min = math.log(sigma_min)
        self._log_ratio = math.log(sigma_max / sigma_min)

    @property
    def sigma_min(self) -> float:
        """Total noise at t = 0."""
        return self._sigma_min

    @property
    def sigma_max(self) -> float:
        """Total noise at t = 1."""
        return self._sigma_max

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(sigma_min={self._sigma_min!r}, sigma_max={self._sigma_max!r})"
        )

    def _total(self, t: Tensor) -> Tensor:
        # One exp of an increasing argument: non-decreasing in t after rounding (the product of
        # the two powers is not when sigma_min > 1) and no overflow of (sigma_max / sigma_min)^t
        # in float16. The ends are sigma_min and sigma_max up to an ulp.
        return torch.exp(self._log_sigma_min + self._log_ratio * t)

    def _rate(self, t: Tensor) -> Tensor:
        return self._total(t) * self._log_ratio

    def _inverse(self, sigma: Tensor) -> Tensor:
        return ((torch.log(sigma) - self._log_sigma_min) / self._log_ratio).clamp(0.0, 1.0)
