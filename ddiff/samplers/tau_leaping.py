"""The tau-leaping sampler: Poisson jump counts over each step."""

from __future__ import annotations

import torch
from torch import Tensor

from ddiff.samplers._draw import draw_categorical
from ddiff.samplers.base import Interval, Sampler


class TauLeapingSampler(Sampler):
    r"""Tau-leaping: reverse rates frozen over a step, Poisson jump counts per target.

    The classic approximation of a CTMC's path (Gillespie's tau-leaping), as applied to
    discrete diffusion by Campbell et al. (*A Continuous Time Framework for Discrete Denoising
    Models*, NeurIPS 2022). Over a step of length $\Delta t$ the reverse chain at position i
    proposes $N_y \sim \mathrm{Poisson}(\lambda_y)$ jumps to each target $y \ne x$, with
    $\lambda_y = \Delta t\, \sigma(t)\, s_\theta(x_t, t)_y\, Q[x, y]$, independently over
    positions and targets. Tokens have no order, so the jumps cannot be added up as Campbell et
    al. do for ordinal data (pixel intensities); a position with more than one proposed jump
    is resolved by rejection, the option their code offers for this case:

    - no proposed jump: the token stays;
    - exactly one: the token moves to its target;
    - more than one: all are **rejected** and the token stays.

    The counts are drawn by superposition, which gives exactly the same joint law: the total
    $N = \sum_y N_y \sim \mathrm{Poisson}(\Lambda)$, $\Lambda = \sum_y \lambda_y$, per position,
    and, where $N = 1$, the target with probability $\lambda_y / \Lambda$. So a position moves to
    y with probability $\lambda_y e^{-\Lambda}$ and stays with $1 - \Lambda e^{-\Lambda}$; two
    or more jumps have probability $O(\Delta t^2)$, and the sampler is first order like Euler.

    Example:
        >>> import torch
        >>> from ddiff import UniformGraph
        >>> from ddiff.samplers import TauLeapingSampler
        >>> from ddiff.schedules import LogLinearSchedule
        >>> from ddiff.testing import ExactOracle
        >>> graph = UniformGraph(3)
        >>> oracle = ExactOracle.random(graph, length=2, seed=0)
        >>> sampler = TauLeapingSampler(graph, LogLinearSchedule())
        >>> g = torch.Generator().manual_seed(0)
        >>> x = sampler.sample(oracle, batch=4000, length=2, steps=64, generator=g)
        >>> oracle.total_variation(x) < 0.05
        True
    """

    def step(
        self,
        x: Tensor,
        score: Tensor,
        interval: Interval,
        generator: torch.Generator | None,
    ) -> Tensor:
        # lambda_y = dt sigma(t) score_y Q[x, y] for y != x, and -Lambda on the diagonal.
        scale = interval.rate_t * interval.dt
        intensity = self.graph.reverse_rates(x, score, scale=scale, out=score)
        index = x.unsqueeze(-1)
        total = intensity.gather(-1, index).squeeze(-1).neg().to(torch.float64)
        intensity.scatter_(-1, index, 0.0)  # the targets are drawn from the jumps only
        counts = torch.poisson(total, generator=generator)
        jumps = counts == 1
        if not bool(jumps.any()):
            return x
        targets = draw_categorical(intensity[jumps], generator, self.categorical_dtype)
        return x.masked_scatter(jumps, targets)
