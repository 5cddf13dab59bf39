"""The likelihood bound (ELBO) of score-entropy diffusion, estimated by Monte Carlo over time."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import singledispatch
from typing import Literal

import torch
from torch import Tensor

from ddiff._checks import batch_sigma, check_tokens
from ddiff.graphs import AbsorbingGraph, Graph, UniformGraph
from ddiff.losses.score_entropy import denoising_score_entropy
from ddiff.schedules import NoiseSchedule

ScoreFn = Callable[[Tensor, Tensor], Tensor]
"""`score_fn(x_t [B, L], sigma [B]) -> log concrete scores [B, L, S]`; `sigma` is the total noise."""

TimeSampling = Literal["uniform", "stratified", "antithetic"]

# Times are drawn in [0, 1 - _T_MARGIN]: t = 1 exactly would give an infinite rate for schedules
# that reach the limit (loglinear with survival = 0); the excluded sliver has negligible mass.
_T_MARGIN = 1e-9


def sample_times(
    shape: tuple[int, ...],
    method: TimeSampling = "stratified",
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Draw diffusion times in [0, 1), float64, each marginally uniform.

    Args:
        shape: output shape; the low-variance methods act along the last axis.
        method: `"uniform"` (i.i.d.), `"stratified"` (the k-th of K draws is uniform in
            [k/K, (k+1)/K): every stratum covered once) or `"antithetic"` (pairs u, 1 - u; the
            last axis must be even). All three give unbiased estimates of the time integral.
        generator: source of randomness.
        device: device of the result.
    """
    k = shape[-1]
    u = torch.rand(shape, dtype=torch.float64, generator=generator, device=device)
    if method == "uniform":
        t = u
    elif method == "stratified":
        t = (torch.arange(k, dtype=torch.float64, device=device) + u) / k
    elif method == "antithetic":
        if k % 2:
            raise ValueError(f"antithetic sampling needs an even number of times, got {k}")
        half = u[..., : k // 2]
        t = torch.cat([half, 1.0 - half], dim=-1)
    else:
        raise ValueError(
            f"unknown time sampling {method!r}; use 'uniform', 'stratified' or 'antithetic'"
        )
    return t.clamp_(0.0, 1.0 - _T_MARGIN)


@singledispatch
def prior_kl(graph: Graph, x_0: Tensor, sigma: Tensor | float) -> Tensor:
    r"""Per-position $\mathrm{KL}(p_{\bar\sigma}(\cdot \mid x_0) \,\|\, \pi)$ to the limit $\pi$, nats.

    The prior term of the likelihood bound, evaluated at the schedule's final total noise. It is
    $+\infty$ when the kernel puts mass where the limit has none: an absorbing graph needs a
    schedule that reaches the limit (`LogLinearSchedule(survival=0)`), because the sampler starts
    from all-MASK sequences.

    Args:
        graph: the forward process.
        x_0: clean tokens `[B, ...]`.
        sigma: total noise at t = 1, a scalar or `[B]`.

    Returns:
        `[B, ...]` float64.
    """
    p = graph.transition(x_0, torch.as_tensor(sigma, dtype=torch.float64))
    pi = graph.limit_distribution(torch.float64).to(p.device)
    return (torch.xlogy(p, p) - torch.xlogy(p, pi)).sum(dim=-1)


@prior_kl.register
def _(graph: UniformGraph, x_0: Tensor, sigma: Tensor | float) -> Tensor:
    check_tokens(x_0, graph.num_states, "x_0")
    s = graph.num_states
    sig = batch_sigma(torch.as_tensor(sigma, dtype=torch.float64), x_0)
    move = -torch.expm1(-sig) / s
    stay = torch.exp(-sig) + move
    kl = torch.xlogy(stay, stay * s) + (s - 1) * torch.xlogy(move, move * s)
    return kl.expand(x_0.shape)


@prior_kl.register
def _(graph: AbsorbingGraph, x_0: Tensor, sigma: Tensor | float) -> Tensor:
    check_tokens(x_0, graph.num_tokens, "x_0")
    sig = batch_sigma(torch.as_tensor(sigma, dtype=torch.float64), x_0)
    # Any surviving data token has zero probability under the all-MASK limit.
    kl = torch.where(sig < torch.inf, torch.inf, 0.0)
    return kl.expand(x_0.shape)


@dataclass(frozen=True)
class LikelihoodBound:
    r"""A Monte Carlo estimate of the negative log-likelihood bound, per sequence, in nats.

    $$-\log p_\theta(x_0) \le \int_0^1 \sigma(t)\, \mathbb{E}_{x_t}\Bigl[\sum_i
      \ell_{\mathrm{DSE}}(x_t^i, x_0^i)\Bigr] dt + \sum_i \mathrm{KL}(p_1(\cdot\mid x_0^i)\,\|\,\pi).$$

    Attributes:
        diffusion: `[B]` the time integral, averaged over the t-samples.
        prior: `[B]` the prior term (exact, no Monte Carlo).
        samples: `[B, K]` the integrand $\sigma(t)\sum_i \ell$ at each of the K t-samples.
        num_tokens: `[B]` the number of scored tokens per sequence.

    Example:
        `likelihood_bound` returns one; with exact scores it is close to the true NLL:

        >>> import torch
        >>> from ddiff import UniformGraph
        >>> from ddiff.losses import likelihood_bound
        >>> from ddiff.schedules import LogLinearSchedule
        >>> from ddiff.testing import ExactOracle
        >>> g = UniformGraph(2)
        >>> oracle = ExactOracle(g, torch.tensor([[0.5, 0.0], [0.0, 0.5]]))  # 00 or 11: 1 bit
        >>> x_0 = torch.tensor([[0, 0], [1, 1]])
        >>> b = likelihood_bound(oracle, g, LogLinearSchedule(survival=0.1), x_0, num_t=64,
        ...                      generator=torch.Generator().manual_seed(0))
        >>> b.samples.shape, b.num_tokens
        (torch.Size([2, 64]), tensor([2, 2]))
        >>> b.prior  # exact: KL to the uniform limit at total noise -log(0.1), two tokens
        tensor([0.0100, 0.0100], dtype=torch.float64)
        >>> bool(torch.equal(b.nats, b.diffusion + b.prior))
        True
        >>> round(b.bits_per_token, 2), round(b.stderr_bits_per_token, 2)  # the entropy: 0.5
        (0.54, 0.1)
    """

    diffusion: Tensor
    prior: Tensor
    samples: Tensor
    num_tokens: Tensor

    @property
    def nats(self) -> Tensor:
        """`[B]` bound per sequence, nats."""
        return self.diffusion + self.prior

    @property
    def bits(self) -> Tensor:
        """`[B]` bound per sequence, bits."""
        return self.nats / math.log(2.0)

    @property
    def stderr(self) -> Tensor:
        """`[B]` Monte Carlo standard error of `nats` over the t-samples (conservative when
        the times were stratified or antithetic); NaN with a single t-sample."""
        k = self.samples.shape[-1]
        if k < 2:
            return torch.full_like(self.diffusion, math.nan)
        return self.samples.std(dim=-1) / math.sqrt(k)

    @property
    def nats_per_token(self) -> float:
        """Bound over the whole batch per scored token, nats."""
        return float(self.nats.sum() / self.num_tokens.sum())

    @property
    def bits_per_token(self) -> float:
        """Bound over the whole batch per scored token, bits."""
        return self.nats_per_token / math.log(2.0)

    @property
    def stderr_bits_per_token(self) -> float:
        """Monte Carlo standard error of `bits_per_token` (the data held fixed)."""
        var = (self.stderr**2).sum()
        return float(var.sqrt() / self.num_tokens.sum()) / math.log(2.0)


def bound_integrand(
    score_fn: ScoreFn,
    graph: Graph,
    schedule: NoiseSchedule,
    x_0: Tensor,
    t: Tensor,
    generator: torch.Generator | None = None,
    mask: Tensor | None = None,
) -> Tensor:
    r"""One-sample estimate of the bound's integrand, $\sigma(t) \sum_i \ell_{\mathrm{DSE}}$, `[B]`.

    Draws $x_t \sim p_t(\cdot \mid x_0)$, calls `score_fn(x_t, sigma)` and weights the DSE
    by the schedule's rate. This is also the training loss (averaged over the batch).

    Args:
        score_fn: `(x_t [B, L], sigma [B]) -> log-scores [B, L, S]`.
        graph: the forward process.
        schedule: the noise schedule.
        x_0: clean tokens `[B, L]`.
        t: times `[B]` in [0, 1).
        generator: randomness for the draw of `x_t`.
        mask: optional `[B, L]` bool, True at positions that count (e.g. not padding).
    """
    if t.shape != x_0.shape[:1]:
        raise ValueError(f"t must have shape [batch] = [{x_0.shape[0]}], got {list(t.shape)}")
    noise = schedule(t)
    x_t = graph.sample_transition(x_0, noise.sigma, generator)
    log_score = score_fn(x_t, noise.sigma)
    loss = denoising_score_entropy(graph, log_score, x_t, x_0, noise.sigma)
    if mask is not None:
        loss = torch.where(mask, loss, 0.0)
    return noise.rate.to(loss.dtype) * loss.sum(dim=-1)


@torch.no_grad()
def likelihood_bound(
    score_fn: ScoreFn,
    graph: Graph,
    schedule: NoiseSchedule,
    x_0: Tensor,
    num_t: int = 16,
    method: TimeSampling = "stratified",
    generator: torch.Generator | None = None,
    batch_size: int = 256,
    mask: Tensor | None = None,
) -> LikelihoodBound:
    """Estimate the likelihood bound of each sequence of `x_0` with `num_t` times each.

    Args:
        score_fn: `(x_t [B, L], sigma [B]) -> log-scores [B, L, S]`, e.g. a trained network
            or `ddiff.testing.ExactOracle`.
        graph: the forward process.
        schedule: the noise schedule (its total noise at t = 1 sets the prior term).
        x_0: clean tokens `[B, L]`.
        num_t: t-samples per sequence (>= 2 for a standard error).
        method: time sampling, see `sample_times`.
        generator: randomness for times and noised tokens.
        batch_size: number of (sequence, time) pairs per call of `score_fn`.
        mask: optional `[B, L]` bool of the positions that count (others are not scored).

    Returns:
        A `LikelihoodBound`; `.bits_per_token` and `.stderr_bits_per_token` summarise it.

    Example:
        >>> import torch
        >>> from ddiff import AbsorbingGraph
        >>> from ddiff.losses import likelihood_bound
        >>> from ddiff.schedules import LogLinearSchedule
        >>> from ddiff.testing import ExactOracle
        >>> g = AbsorbingGraph(2)
        >>> oracle = ExactOracle(g, torch.tensor([[0.5, 0.0], [0.0, 0.5]]))  # x = 00 or 11
        >>> x_0 = oracle.sample_data(200, torch.Generator().manual_seed(0))
        >>> b = likelihood_bound(oracle, g, LogLinearSchedule(survival=0.0), x_0, num_t=8,
        ...                      generator=torch.Generator().manual_seed(1))
        >>> abs(b.bits_per_token - 0.5) < 3 * b.stderr_bits_per_token + 0.01  # entropy 1 bit / 2
        True
    """
    check_tokens(x_0, graph.num_tokens, "x_0")
    if x_0.dim() != 2:
        raise ValueError(f"x_0 must have shape [batch, length], got {list(x_0.shape)}")
    if num_t < 1:
        raise ValueError(f"num_t must be >= 1, got {num_t}")
    if mask is not None and mask.shape != x_0.shape:
        raise ValueError(
            f"mask must have the shape of x_0 {list(x_0.shape)}, got {list(mask.shape)}"
        )
    b = x_0.shape[0]
    t = sample_times((b, num_t), method, generator, x_0.device).reshape(-1)
    rows = torch.arange(b, device=x_0.device).repeat_interleave(num_t)
    values = []
    for start in range(0, rows.numel(), batch_size):
        idx = rows[start : start + batch_size]
        m = None if mask is None else mask[idx]
        values.append(
            bound_integrand(
                score_fn, graph, schedule, x_0[idx], t[start : start + batch_size], generator, m
            )
        )
    samples = torch.cat(values).reshape(b, num_t).to(torch.float64)
    keep = torch.ones_like(x_0, dtype=torch.bool) if mask is None else mask
    total_max = torch.tensor(schedule.total_max, dtype=torch.float64)
    prior = torch.where(keep, prior_kl(graph, x_0, total_max), 0.0).sum(dim=-1)
    return LikelihoodBound(
        diffusion=samples.mean(dim=-1),
        prior=prior,
        samples=samples,
        num_tokens=keep.sum(dim=-1),
    )
