"""The log-linear schedule of SEDD: the survival probability falls linearly in t."""

from __future__ import annotations

import torch
from torch import Tensor

from ddiff.schedules.base import SurvivalSchedule


class LogLinearSchedule(SurvivalSchedule):
    r"""Log-linear noise: $e^{-\bar\sigma(t)} = 1 - (1 - \alpha_1)\, t$.

    $$\bar\sigma(t) = -\log\bigl(1 - (1 - \alpha_1) t\bigr), \qquad
      \sigma(t) = \frac{1 - \alpha_1}{1 - (1 - \alpha_1) t}, \qquad
      t = \frac{-\operatorname{expm1}(-\bar\sigma)}{1 - \alpha_1}.$$

    For the absorbing graph $e^{-\bar\sigma(t)}$ is the probability that a token is still
    unmasked, so it falls linearly from 1 at t = 0 to $\alpha_1$ at t = 1 (Lou, Meng & Ermon,
    *Discrete Diffusion Modeling by Estimating the Ratios of the Data Distribution*, ICML 2024;
    the same schedule is MDLM's linear $\alpha_t$: Sahoo et al., *Simple and Effective Masked
    Diffusion Language Models*, NeurIPS 2024). The total is computed as
    $-\operatorname{log1p}(-(1 - \alpha_1) t)$, so it is accurate for small t in float32.

    With `survival = 0` the schedule reaches the limit exactly: $\bar\sigma(1) = \infty$ and
    $\sigma(1) = \infty$. That is what absorbing graphs need for a finite prior term in the
    likelihood bound: at t = 1 every token is MASK, so $\mathrm{KL}(p_1(\cdot \mid x_0) \,\|\,
    p_{\text{limit}}) = 0$, whereas with `survival > 0` the unmasked fraction $\alpha_1$ leaves a
    term that the bound must add. Samplers then start just below t = 1 (where everything is
    finite) or from the limit itself.

    Args:
        survival: the survival probability $\alpha_1 = e^{-\bar\sigma(1)}$ left at t = 1, in [0, 1).
            The default 1e-3 is SEDD's `eps`.

    Example:
        >>> import torch
        >>> from ddiff.schedules import LogLinearSchedule
        >>> schedule = LogLinearSchedule(survival=1e-3)
        >>> t = torch.rand(5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        >>> bool(torch.allclose(schedule.inverse(schedule.total(t)), t))
        True
        >>> round(schedule.total_max, 4)  # -log(survival)
        6.9078
        >>> LogLinearSchedule(survival=0.0).total(torch.tensor([0.0, 0.5, 1.0]))
        tensor([0.0000, 0.6931,    inf])
    """

    def _total(self, t: Tensor) -> Tensor:
        return -torch.log1p(-(1.0 - self._survival) * t)

    def _rate(self, t: Tensor) -> Tensor:
        slope = 1.0 - self._survival
        # 1 - slope * t is exact enough here: it is >= survival and only 0 at t = 1 with
        # survival = 0.
        return slope / (1.0 - slope * t)

    def _inverse(self, sigma: Tensor) -> Tensor:
        # Rounding can put the quotient a hair above 1 near t = 1.
        return (-torch.expm1(-sigma) / (1.0 - self._survival)).clamp(0.0, 1.0)
