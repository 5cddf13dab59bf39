"""Total-noise helpers shared by the backbones and parameterisations (internal)."""

from __future__ import annotations

import torch
from torch import Tensor

# The range of total noise a network distinguishes. Outside it the inputs are clamped, so that
# sigma = 0 (clean data) and sigma = inf (the limit) give finite outputs instead of log(0) or inf.
# Training schedules stay well inside: log-linear with survival = 1e-3 spans about [1e-3, 6.9].
SIGMA_MIN = 1e-8
SIGMA_MAX = 1e4


def clamp_sigma(sigma: Tensor) -> Tensor:
    """`sigma` in float32 or wider, clamped to `[SIGMA_MIN, SIGMA_MAX]`."""
    sigma = sigma.to(torch.promote_types(sigma.dtype, torch.float32))
    return sigma.clamp(SIGMA_MIN, SIGMA_MAX)


def log_expm1(x: Tensor) -> Tensor:
    r"""$\log(e^x - 1)$ for $x > 0$, accurate in the tensor's dtype at both ends.

    `log(expm1(x))` is exact for small x but `expm1` overflows float32 above x = 88;
    $x + \log(1 - e^{-x})$ is exact for large x but cancels for small x. Switch at x = 1.
    """
    small = x < 1.0
    low = torch.log(torch.expm1(x.clamp(max=1.0)))
    high = x + torch.log1p(-torch.exp(-x.clamp(min=1.0)))
    return torch.where(small, low, high)
