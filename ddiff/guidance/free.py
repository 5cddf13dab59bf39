"""Classifier-free guidance: a log-linear mix of a conditional and an unconditional score."""

from __future__ import annotations

import torch
from torch import Tensor

from ddiff.conditioning import Clamp
from ddiff.graphs import Graph
from ddiff.guidance._common import (
    ScoreFunction,
    call,
    check_callable,
    check_log_score,
    check_weight,
    zero_at_current,
)


class ClassifierFreeGuidance:
    r"""The guided score $s_w = s_{\mathrm{cond}}^{\,w}\, s_{\mathrm{uncond}}^{\,1 - w}$, in log space.

    For every position $i$ and state $y$,

    $$\log s_w(x_t)_{i, y} = w \log s_\theta(x_t \mid c)_{i, y}
      + (1 - w) \log s_\theta(x_t)_{i, y},$$

    which multiplies the reverse rates the same way,
    $\bar Q^w_t = \bar Q_t(\cdot \mid c)^{w}\, \bar Q_t^{1 - w}$ (Nisonoff et al., *Unlocking
    Guidance for Discrete State-Space Diffusion and Flow Models*, 2024; Schiff et al., *Simple
    Guidance Mechanisms for Discrete Diffusion Models*, 2024, for masked and uniform diffusion).
    The object is a score function: pass it to any sampler in place of a network.

    **Which law is sampled.** Weight 0 is the unconditional model and weight 1 the conditional
    one, so with exact scores a sampler draws $p(x)$ and $p(x \mid c)$ there (tested on exact
    oracles). Any other weight **changes the law**: the guided rates are not the reverse rates
    of any noising of a fixed distribution, so the samples follow neither $p(x \mid c)$ nor the
    tilted law $p(x \mid c)^w p(x)^{1-w} / Z$ exactly (only for one position at a time). Above 1
    they are sharper than $p(x \mid c)$: tokens favoured by the label are favoured more, and
    $p(c \mid x)$ of the samples rises with the weight.

    **Absorbing graphs, and `graph=`.** At a masked position the exact score of a data token
    $v$ is $p(x_0^i = v \mid x_t) / (e^{\bar\sigma} - 1)$: a distribution over data tokens times
    a total, $1 / (e^{\bar\sigma} - 1)$, that is the same for every data distribution. The total
    sets *when* the position unmasks, the distribution *to what*. The plain geometric mix keeps
    the distribution's log-linear mix but not the total: by Hölder's inequality the guided total
    is below the common one for $0 < w < 1$ and, at $w > 1$, above it wherever the two
    distributions disagree, so positions unmask late (or early) and the denoise step unmasks
    what is left. Given `graph`, the guided scores at each position are renormalised so that
    the total reverse rate out of it, $\sum_{y \ne x} s_y Q[x, y]$, is the geometric mix of the
    two models' totals: for absorbing graphs that is renormalisation over the data tokens of a
    masked position, Schiff et al.'s rule of mixing the denoising distributions, and it keeps
    the unmasking times exact whatever the weight. With exact scores it changes nothing at
    weights 0 and 1 (the two totals are equal) and for any score at weights 0 and 1. For other
    graphs the totals differ between models, and renormalising is a choice (the rate of leaving
    becomes the geometric mix of the two rates), not a correction. Without `graph` (the
    default) the mix is the plain formula above.

    Weights 0 and 1 call one model only. The entry at the current token is exactly 0.

    Args:
        cond_fn: the conditional score function `(x_t [B, L], sigma [B]) -> log-scores
            [B, L, S]` (e.g. a label-conditioned network with the label bound).
        uncond_fn: the unconditional one (e.g. the same network with the null label).
        weight: $w \ge 0$.
        graph: if given, renormalise the total reverse rate out of each position as described
            above (recommended for absorbing graphs).

    Raises:
        ValueError: if `weight` is negative or not finite.

    Entries that are $-\infty$ (impossible neighbours, e.g. from exact oracles) stay $-\infty$
    when either model says so at a weight where it counts ($w > 0$ for the conditional model,
    $w \ne 1$ for the unconditional one).

    Calling it as `guidance(x_t, sigma, condition=clamp)` (samplers do so with
    `pass_condition=True`) passes the condition on to both score functions.

    Example:
        >>> import torch
        >>> from ddiff import AbsorbingGraph, AnalyticSampler, LogLinearSchedule
        >>> from ddiff.guidance import ClassifierFreeGuidance
        >>> from ddiff.testing import LabelledOracle
        >>> graph = AbsorbingGraph(3)
        >>> oracle = LabelledOracle.random(graph, length=2, num_labels=2, seed=0)
        >>> guided = ClassifierFreeGuidance(oracle.conditional(1), oracle.unconditional, 1.0)
        >>> sampler = AnalyticSampler(graph, LogLinearSchedule())
        >>> x = sampler.sample(guided, 4_000, 2, 32, generator=torch.Generator().manual_seed(0))
        >>> oracle.conditional(1).total_variation(x) < 0.05  # weight 1: p(x | c)
        True
    """

    def __init__(
        self,
        cond_fn: ScoreFunction,
        uncond_fn: ScoreFunction,
        weight: float,
        *,
        graph: Graph | None = None,
    ) -> None:
        check_callable(cond_fn, "cond_fn")
        check_callable(uncond_fn, "uncond_fn")
        if graph is not None and not isinstance(graph, Graph):
            raise TypeError(f"graph must be a ddiff Graph or None, got {type(graph).__name__}")
        self.cond_fn = cond_fn
        self.uncond_fn = uncond_fn
        self.weight = check_weight(weight)
        self.graph = graph

    def __repr__(self) -> str:
        renorm = "" if self.graph is None else f", graph={self.graph!r}"
        return f"ClassifierFreeGuidance(weight={self.weight}{renorm})"

    def __call__(self, x_t: Tensor, sigma: Tensor, *, condition: Clamp | None = None) -> Tensor:
        """Guided log-scores `[B, L, S]` of `x_t` `[B, L]` at total noise `sigma` `[B]`."""
        w = self.weight
        if w == 0.0:
            out = check_log_score(call(self.uncond_fn, x_t, sigma, condition), x_t, "uncond_fn")
            return zero_at_current(out.clone(), x_t)
        cond = check_log_score(call(self.cond_fn, x_t, sigma, condition), x_t, "cond_fn")
        if w == 1.0:
            return zero_at_current(cond.clone(), x_t)
        uncond = check_log_score(call(self.uncond_fn, x_t, sigma, condition), x_t, "uncond_fn")
        if cond.shape != uncond.shape:
            raise ValueError(
                f"cond_fn and uncond_fn disagree on the shape of the log-scores: "
                f"{list(cond.shape)} and {list(uncond.shape)}"
            )
        out = _mix(cond, uncond, w)
        if self.graph is not None:
            out = _renormalise(self.graph, out, cond, uncond, x_t, w)
        return zero_at_current(out, x_t)


def _renormalise(
    graph: Graph, out: Tensor, cond: Tensor, uncond: Tensor, x_t: Tensor, w: float
) -> Tensor:
    r"""Scale each position's scores so that $\sum_{y \ne x} s_y Q[x, y]$ is the mix of totals."""
    if out.shape[-1] != graph.num_states:
        raise ValueError(
            f"the score functions return {out.shape[-1]} states but the graph has "
            f"{graph.num_states}; pass the graph the models were trained with"
        )
    log_q = torch.log(graph.rates_in(x_t, dtype=out.dtype).clamp_min(0.0))
    log_q = log_q.scatter(-1, x_t.long().unsqueeze(-1), -torch.inf)  # y != x only

    def log_total(log_score: Tensor) -> Tensor:
        return torch.logsumexp(log_score + log_q, dim=-1, keepdim=True)

    shift = _mix(log_total(cond), log_total(uncond), w) - log_total(out)
    # Positions no state jumps into (all totals 0: the shift is NaN) keep the plain mix.
    return out + torch.where(torch.isfinite(shift), shift, 0.0)


def _mix(cond: Tensor, uncond: Tensor, w: float) -> Tensor:
    """`w cond + (1 - w) uncond` for `w` not in {0, 1}, with -inf kept where a model says so."""
    out = torch.add(cond * w, uncond, alpha=1.0 - w)
    neg_inf = torch.isneginf(cond) | torch.isneginf(uncond)
    return out.masked_fill_(neg_inf, -torch.inf)
