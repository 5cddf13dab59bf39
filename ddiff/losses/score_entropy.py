"""Score entropy and the denoising score entropy (DSE) loss, generic over any `Graph`."""

from __future__ import annotations

from functools import singledispatch

import torch
from torch import Tensor

from ddiff._checks import batch_sigma, check_last_dim, check_tokens
from ddiff.graphs import AbsorbingGraph, Graph, UniformGraph

# Above this log-ratio gap the form r (e^u - 1 - u) would overflow; s - r (1 + u) is exact there.
_FAR = 30.0


def score_entropy(log_score: Tensor, log_ratio: Tensor) -> Tensor:
    r"""Elementwise score entropy $s - r \log s + K(r)$, $K(a) = a(\log a - 1)$.

    With $u = \log s - \log r$ it equals $r(e^u - 1 - u) \ge 0$, which is how it is computed:
    non-negative by construction and exactly 0 at $s = r$, with no cancellation between large
    terms. A zero ratio ($\log r = -\infty$) gives $s$. Computed in float32 or wider whatever
    the input dtype (Lou, Meng & Ermon, ICML 2024, eq. 5).

    Args:
        log_score: $\log s$, the model's log concrete score (any shape).
        log_ratio: $\log r$, the target log ratio (broadcastable; may be $-\infty$).

    Returns:
        The elementwise loss, broadcast shape, float32 or wider.

    Example:
        >>> import torch
        >>> from ddiff.losses import score_entropy
        >>> score_entropy(torch.tensor([0.0, 1.0]), torch.tensor([0.0, 0.0]))
        tensor([0.0000, 0.7183])
    """
    dtype = torch.promote_types(
        torch.promote_types(log_score.dtype, log_ratio.dtype), torch.float32
    )
    log_score, log_ratio = log_score.to(dtype), log_ratio.to(dtype)
    positive = log_ratio > -torch.inf
    ratio = torch.exp(log_ratio)
    u = torch.where(positive, log_score - log_ratio, 0.0)
    near = positive & (u < _FAR)
    u_near = torch.where(near, u, 0.0)
    # expm1(u) - u >= 0 mathematically; clamp only removes a possible last-bit rounding below 0.
    near_term = ratio * (torch.expm1(u_near) - u_near).clamp_min(0.0)
    far_term = torch.exp(log_score) - ratio * (1.0 + u)
    return torch.where(near, near_term, far_term)


@singledispatch
def denoising_score_entropy(
    graph: Graph,
    log_score: Tensor,
    x_t: Tensor,
    x_0: Tensor,
    sigma: Tensor | float,
) -> Tensor:
    r"""Denoising score entropy per position (Lou, Meng & Ermon, ICML 2024, eq. 8).

    $$\ell(x_t, x_0) = \sum_{y \ne x_t} Q[x_t, y]\,\bigl(s_y - r_y \log s_y + K(r_y)\bigr),
      \qquad r_y = \frac{P[y, x_0]}{P[x_t, x_0]},$$

    weights from `graph.rates_in(x_t)` and ratios from `graph.transition(x_0, sigma)`. This
    generic path works for any `Graph`; `UniformGraph` and `AbsorbingGraph` have closed-form
    registrations (O(S) per position, ratios in log space with `expm1`/`log1p` so that float32
    is exact from sigma = 1e-5 to 20). Register a fast path for your own graph type with
    `@denoising_score_entropy.register(MyGraph)`.

    Args:
        graph: the forward process.
        log_score: network output, log concrete scores `[B, ..., S]` (entry at `x_t` ignored).
        x_t: noised tokens `[B, ...]`, a draw from `graph.transition(x_0, sigma)`.
        x_0: clean tokens `[B, ...]`.
        sigma: total noise $\bar\sigma$, a scalar or `[B]`.

    Returns:
        Loss per position `[B, ...]` in nats, float32 or wider; multiply by the schedule's rate
        $\sigma(t)$ and sum over positions for the integrand of the likelihood bound.

    Example:
        >>> import torch
        >>> from ddiff import AbsorbingGraph
        >>> from ddiff.losses import denoising_score_entropy
        >>> g = AbsorbingGraph(3)
        >>> x_0, x_t = torch.tensor([[0, 1]]), torch.tensor([[3, 1]])
        >>> exact = torch.full((1, 2, 4), -torch.inf)
        >>> exact[0, 0, 0] = -torch.log(torch.expm1(torch.tensor(0.5)))  # r = 1 / (e^sigma - 1)
        >>> denoising_score_entropy(g, exact, x_t, x_0, torch.tensor([0.5]))
        tensor([[0., 0.]])
    """
    _check(graph, log_score, x_t, x_0)
    dtype = torch.promote_types(log_score.dtype, torch.float32)
    weights = graph.rates_in(x_t, dtype=dtype).scatter(-1, x_t.long().unsqueeze(-1), 0.0)
    sig = torch.as_tensor(sigma, dtype=torch.float64) if not isinstance(sigma, Tensor) else sigma
    log_p = torch.log(graph.transition(x_0, sig.to(torch.float64))).to(dtype)
    log_ratio = log_p - log_p.gather(-1, x_t.long().unsqueeze(-1))
    terms = score_entropy(log_score, log_ratio)
    return torch.where(weights > 0, weights * terms, 0.0).sum(dim=-1)


@denoising_score_entropy.register
def _uniform(
    graph: UniformGraph, log_score: Tensor, x_t: Tensor, x_0: Tensor, sigma: Tensor | float
) -> Tensor:
    _check(graph, log_score, x_t, x_0)
    s = graph.num_states
    dtype = torch.promote_types(log_score.dtype, torch.float32)
    sig = batch_sigma(sigma, x_0).to(torch.promote_types(dtype, torch.float64))
    # log(1 + S / expm1(sigma)): the ratio P[y, x0] / P[x0, x0] is exp(-this) for every y != x0,
    # and the ratio P[x0, x0] / P[x, x0] is exp(+this) when x_t = x != x0 (other ratios are 1).
    gap = torch.log1p(s / torch.expm1(sig)).to(dtype)
    same = x_t == x_0
    log_ratio = torch.where(same, -gap, 0.0).unsqueeze(-1)  # [B, ..., 1], broadcast over y
    terms = score_entropy(log_score, log_ratio)
    at_x0 = log_score.gather(-1, x_0.long().unsqueeze(-1)).squeeze(-1)
    correction = torch.where(
        same, 0.0, score_entropy(at_x0, gap) - score_entropy(at_x0, torch.zeros_like(gap))
    )
    at_xt = terms.gather(-1, x_t.long().unsqueeze(-1)).squeeze(-1)
    return (terms.sum(dim=-1) - at_xt + correction) / s


@denoising_score_entropy.register
def _absorbing(
    graph: AbsorbingGraph, log_score: Tensor, x_t: Tensor, x_0: Tensor, sigma: Tensor | float
) -> Tensor:
    _check(graph, log_score, x_t, x_0)
    n = graph.num_tokens
    dtype = torch.promote_types(log_score.dtype, torch.float32)
    sig = batch_sigma(sigma, x_0).to(torch.promote_types(dtype, torch.float64))
    masked = x_t == graph.mask_token
    # At MASK: r = 1 / expm1(sigma) for y = x_0 and 0 for the other data tokens.
    log_ratio = (-torch.log(torch.expm1(sig))).to(dtype).expand_as(x_0)
    data_scores = log_score[..., :n].to(dtype)
    index = x_0.long().clamp(max=n - 1).unsqueeze(-1)
    others = torch.exp(data_scores).scatter(-1, index, 0.0).sum(dim=-1)
    at_x0 = score_entropy(data_scores.gather(-1, index).squeeze(-1), log_ratio)
    return torch.where(masked, others + at_x0, 0.0)


def _check(graph: Graph, log_score: Tensor, x_t: Tensor, x_0: Tensor) -> None:
    check_tokens(x_t, graph.num_states, "x_t")
    check_tokens(x_0, graph.num_tokens, "x_0")
    if x_t.shape != x_0.shape:
        raise ValueError(
            f"x_t and x_0 must have the same shape, got {list(x_t.shape)} and {list(x_0.shape)}"
        )
    check_last_dim(log_score, x_t, graph.num_states, "log_score")
