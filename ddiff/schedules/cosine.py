"""The cosine schedule: the survival probability follows a quarter cosine in t."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ddiff.schedules.base import SurvivalSchedule


class CosineSchedule(SurvivalSchedule):
    r"""Cosine noise: $e^{-\bar\sigma(t)} = \alpha_1 + (1 - \alpha_1)\cos(\pi t / 2)$.

    $$\bar\sigma(t) = -\log\bigl(\alpha_1 + (1 - \alpha_1)\cos\tfrac{\pi t}{2}\bigr), \qquad
      \sigma(t) = \frac{(1 - \alpha_1)\frac{\pi}{2}\sin\frac{\pi t}{2}}
                       {\alpha_1 + (1 - \alpha_1)\cos\frac{\pi t}{2}}, \qquad
      t = \frac{2}{\pi}\arccos\frac{e^{-\bar\sigma} - \alpha_1}{1 - \alpha_1}.$$

    The survival probability $\alpha(t) = e^{-\bar\sigma(t)}$ (for the absorbing graph, the
    probability that a token is still unmasked) falls slowly near the data and quickly near the
    limit (Nichol & Dhariwal, *Improved Denoising Diffusion Probabilistic Models*, ICML 2021; as a
    masked-diffusion schedule: Sahoo et al., *Simple and Effective Masked Diffusion Language
    Models*, NeurIPS 2024). $\bar\sigma(0) = 0$ and $\bar\sigma(1) = -\log\alpha_1$, infinite for
    `survival = 0` (the limit is reached exactly, as for `LogLinearSchedule(survival=0)`).

    Numerics: near t = 0 the total uses $1 - \cos\theta = 2\sin^2(\theta/2)$ and `log1p`, so
    float32 stays accurate to relative precision even at t = 1e-6 (where $\bar\sigma \approx
    10^{-12}$); for t > 1/2 it uses $\cos\frac{\pi t}{2} = \sin\frac{\pi (1 - t)}{2}$ with the
    exact difference $1 - t$, so $\alpha(1) = \alpha_1$ exactly and `survival = 0` gives `inf`, not a
    large finite number. The inverse uses the matching arcsine forms.

    Args:
        survival: the survival probability $\alpha_1 = \alpha(1)$ left at t = 1, in [0, 1).

    Example:
        >>> import torch
        >>> from ddiff.schedules import CosineSchedule
        >>> schedule = CosineSchedule(survival=1e-3)
        >>> t = torch.rand(5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        >>> bool(torch.allclose(schedule.inverse(schedule.total(t)), t))
        True
        >>> alpha = torch.exp(-schedule.total(torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)))
        >>> [round(a, 4) for a in alpha.tolist()]
        [1.0, 0.7074, 0.001]
    """

    def _total(self, t: Tensor) -> Tensor:
        # Each form only sees the half of [0, 1] it is accurate on (and finite there, which keeps
        # autograd free of NaNs from the branch torch.where discards).
        near_data = self._total_near_data(t.clamp(max=0.5))
        near_limit = self._total_near_limit(t.clamp(min=0.5))
        # The two forms round differently by a few ulps; without this floor the total could step
        # down by an ulp where they meet.
        near_limit = torch.maximum(near_limit, self._total_near_data(t.new_tensor(0.5)))
        return torch.where(t <= 0.5, near_data, near_limit)

    def _rate(self, t: Tensor) -> Tensor:
        one_minus_alpha = (
            (1.0 - self._survival) * 2.0 * torch.sin(math.pi / 4 * t.clamp(max=0.5)) ** 2
        )
        alpha = torch.where(
            t <= 0.5,
            1.0 - one_minus_alpha,
            self._survival
            + (1.0 - self._survival) * torch.sin(math.pi / 2 * (1.0 - t.clamp(min=0.5))),
        )
        return (1.0 - self._survival) * (math.pi / 2) * torch.sin(math.pi / 2 * t) / alpha

    def _inverse(self, sigma: Tensor) -> Tensor:
        one_minus_survival = 1.0 - self._survival
        seam = -math.log1p(-one_minus_survival * (1.0 - math.sqrt(0.5)))  # total(1/2)
        # Near the data: 1 - alpha = (1 - a1) 2 sin^2(pi t / 4), with 1 - alpha = -expm1(-sigma).
        small = sigma.clamp(max=seam)
        half_chord = torch.sqrt(-torch.expm1(-small) / (2.0 * one_minus_survival))
        near_data = (4 / math.pi) * torch.asin(half_chord.clamp(max=1.0))
        # Near the limit: alpha - a1 = (1 - a1) sin(pi (1 - t) / 2).
        large = sigma.clamp(min=seam)
        sine = (torch.exp(-large) - self._survival) / one_minus_survival
        near_limit = 1.0 - (2 / math.pi) * torch.asin(sine.clamp(0.0, 1.0))
        return torch.where(sigma <= seam, near_data, near_limit).clamp(0.0, 1.0)

    def _total_near_data(self, t: Tensor) -> Tensor:
        # -log(1 - (1 - a1)(1 - cos(pi t / 2))), accurate for small t.
        return -torch.log1p(-(1.0 - self._survival) * 2.0 * torch.sin(math.pi / 4 * t) ** 2)

    def _total_near_limit(self, t: Tensor) -> Tensor:
        # -log(a1 + (1 - a1) cos(pi t / 2)), accurate (and exactly -log a1) as t -> 1.
        return -torch.log(
            self._survival + (1.0 - self._survival) * torch.sin(math.pi / 2 * (1.0 - t))
        )
