"""The `Graph` abstraction: a rate matrix over token states and everything derived from it."""

from __future__ import annotations

import abc

import torch
from torch import Tensor

from ddiff._categorical import sample_categorical
from ddiff._checks import batch_sigma, check_last_dim, check_tokens, renamed_keywords


class Graph(abc.ABC):
    r"""A continuous-time Markov chain on the states of one token.

    Each position of a sequence is noised independently by the CTMC

    $$\frac{d p_t}{dt} = \sigma(t)\, Q\, p_t, \qquad
      P(\bar\sigma) = \exp(\bar\sigma Q), \quad P[j, i] = p(x_t = j \mid x_0 = i),$$

    where `Q[j, i]` ($i \ne j$) is the rate of jumping **from i to j**, off-diagonals are
    non-negative and every column sums to 0 (Lou, Meng & Ermon, *Discrete Diffusion Modeling by
    Estimating the Ratios of the Data Distribution*, ICML 2024; Campbell et al., NeurIPS 2022).

    Subclasses implement `num_tokens`, `num_states` and `rate_matrix`; every other member has a
    generic default computed from the dense matrix (fine for small alphabets). Graphs with large
    alphabets (`UniformGraph`, `AbsorbingGraph`) override them with O(S) closed forms, and the
    contract tests check that each override equals the generic path.

    Shapes: tokens `x` are `[B, ...]` (usually `[B, L]`); `sigma` (total noise) is a scalar or
    `[B]`; members that return a distribution or rates over states return `[B, ..., S]`.

    Example:
        A subclass that only gives `Q`; the kernels and the limit are derived from it:

        >>> import torch
        >>> from ddiff.graphs import Graph
        >>> class TwoState(Graph):  # 0 -> 1 at rate 1, 1 -> 0 at rate 2
        ...     num_tokens = num_states = 2
        ...     def rate_matrix(self, dtype=torch.float64):
        ...         return torch.tensor([[-1.0, 2.0], [1.0, -2.0]], dtype=dtype)
        >>> g = TwoState()
        >>> g.rate_matrix().sum(dim=0)  # every column sums to 0
        tensor([0., 0.], dtype=torch.float64)
        >>> torch.linalg.matrix_exp(0.5 * g.rate_matrix())  # P = exp(sigma Q) at sigma = 0.5
        tensor([[0.7410, 0.5179],
                [0.2590, 0.4821]], dtype=torch.float64)
        >>> g.transition(torch.tensor([[0, 1]]), 0.5)[0]  # P[:, 0] and P[:, 1]
        tensor([[0.7410, 0.2590],
                [0.5179, 0.4821]])
        >>> g.limit_distribution()  # Q pi = 0
        tensor([0.6667, 0.3333], dtype=torch.float64)
    """

    # -- what a subclass must provide ------------------------------------------------------------

    @property
    @abc.abstractmethod
    def num_tokens(self) -> int:
        """Size N of the data alphabet (the states a clean sequence may hold)."""

    @property
    @abc.abstractmethod
    def num_states(self) -> int:
        """Total number of states S (>= N; an absorbing graph adds a MASK state)."""

    @abc.abstractmethod
    def rate_matrix(self, dtype: torch.dtype = torch.float64) -> Tensor:
        """The dense rate matrix `Q`, `[S, S]`, column convention. Small S only."""

    # -- generic members (derived from rate_matrix) -----------------------------------------------

    def limit_distribution(self, dtype: torch.dtype = torch.float64) -> Tensor:
        """The stationary distribution $\\pi$ with $Q\\pi = 0$, `[S]` (the limit as sigma -> inf)."""
        q = self.rate_matrix(torch.float64)
        s = q.shape[0]
        # Solve [Q; 1^T] pi = [0; 1] in the least-squares sense: exact for an irreducible chain.
        a = torch.cat([q, torch.ones(1, s, dtype=q.dtype)], dim=0)
        b = torch.zeros(s + 1, 1, dtype=q.dtype)
        b[-1] = 1.0
        pi = torch.linalg.lstsq(a, b).solution[:, 0].clamp_min(0.0) + 0.0  # no -0.0
        return (pi / pi.sum()).to(dtype)

    def kernel(self, sigma: Tensor) -> Tensor:
        """Dense transition matrices $P = \\exp(\\bar\\sigma Q)$ for each `sigma` `[B]`: `[B, S, S]`.

        Computed in float64 and returned in `sigma`'s floating dtype. A negative `sigma` gives the
        inverse kernel $\\exp(-|\\bar\\sigma| Q)$, which `staggered_score` uses.
        """
        q = self.rate_matrix(torch.float64).to(sigma.device)
        s64 = sigma.to(torch.float64).reshape(-1, 1, 1)
        limit = torch.isinf(s64) & (s64 > 0)
        p = torch.linalg.matrix_exp(torch.where(limit, 0.0, s64) * q)
        # At sigma = inf every column is the limit distribution.
        pi = self.limit_distribution(torch.float64).to(sigma.device)
        p = torch.where(limit, pi[:, None].expand_as(q), p)
        return p.to(_float_dtype(sigma))

    def rates_out(self, x: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
        """`Q[:, x]`: the rate from `x` to every state `y`, `[..., S]` (diagonal entry negative)."""
        check_tokens(x, self.num_states)
        return self.rate_matrix(dtype).to(x.device).T[x.long()]

    def rates_in(self, x: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
        """`Q[x, :]`: the rate from every state `y` into `x`, `[..., S]`."""
        check_tokens(x, self.num_states)
        return self.rate_matrix(dtype).to(x.device)[x.long()]

    def transition(self, x_0: Tensor, sigma: Tensor | float) -> Tensor:
        """`P[:, x_0]`: the distribution of $x_t$ given $x_0$ at total noise `sigma`, `[..., S]`."""
        check_tokens(x_0, self.num_states, "x_0")
        sig = batch_sigma(sigma, x_0)
        p = self.kernel(sig.reshape(-1))  # [B, S, S], p[b, j, i] = P[j, i]
        flat = x_0.reshape(x_0.shape[0], -1).long()
        rows = torch.arange(flat.shape[0], device=flat.device)[:, None]
        return p.transpose(1, 2)[rows, flat].reshape(*x_0.shape, self.num_states)

    def transition_in(self, x: Tensor, sigma: Tensor | float) -> Tensor:
        """`P[x, :]`: $p(x_t = x \\mid x_0 = y)$ for every state `y`, `[..., S]`."""
        check_tokens(x, self.num_states)
        sig = batch_sigma(sigma, x)
        p = self.kernel(sig.reshape(-1))
        flat = x.reshape(x.shape[0], -1).long()
        rows = torch.arange(flat.shape[0], device=flat.device)[:, None]
        return p[rows, flat].reshape(*x.shape, self.num_states)

    def sample_transition(
        self,
        x_0: Tensor,
        sigma: Tensor | float,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """A draw of $x_t \\sim P[:, x_0]$ at total noise `sigma`, same shape as `x_0`."""
        return sample_categorical(self.transition(x_0, sigma), generator)

    def sample_limit(
        self,
        shape: tuple[int, ...] | torch.Size,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> Tensor:
        """A draw of `shape` independent tokens from the limit distribution."""
        pi = self.limit_distribution().to(device)
        return sample_categorical(pi.expand(*shape, self.num_states), generator)

    def frozen_states(self) -> Tensor:
        """Bool `[S]`: the states no other state jumps into (`Q[x, y] = 0` for every `y != x`).

        The reverse chain cannot leave such a state: its reverse rates `score[y] * Q[x, y]` are
        0 whatever the score, and the analytic step's kernel row `P[x, :]` is one-hot. Samplers
        skip positions in these states. The generic default reads `rate_matrix()` for graphs of
        up to 4,096 states and marks none above (a state marked False is computed, never
        skipped: slower, not wrong); large graphs override it with a closed form.
        """
        if self.num_states > _DENSE_INSPECTION_LIMIT:
            return torch.zeros(self.num_states, dtype=torch.bool)
        q = self.rate_matrix(torch.float64)
        inflow = (q - torch.diag(torch.diagonal(q))).gt(0).any(dim=1)  # Q[x, y] > 0, some y != x
        return ~inflow

    def reverse_rates(
        self, x: Tensor, score: Tensor, *, scale: float = 1.0, out: Tensor | None = None
    ) -> Tensor:
        r"""Reverse-chain rates out of `x`, times `scale`: `[..., S]`.

        Entry `y != x` is `scale * score[..., y] * Q[x, y]` (the concrete score times the
        forward rate from y into x); entry `y == x` is minus the sum of the others, so each row
        sums to 0. `score` holds ratios $p_t(y)/p_t(x)$ (not their logs); its entry at `x` is
        ignored. The schedule's rate is not included: `scale` $= \sigma(t)$ gives the reverse
        chain's rates at time t, `scale` $= \sigma(t)\,\Delta t$ the jump probabilities of an
        Euler step (scaling before the diagonal is summed keeps the two routes bit-identical).

        Args:
            x: tokens `[B, ...]`.
            score: concrete scores `[*x.shape, S]`.
            scale: a factor applied to every rate.
            out: where to write the result (`[*x.shape, S]`, `score`'s dtype); `out=score`
                computes in place, as the samplers do, with no `[..., S]` temporary.
        """
        check_last_dim(score, x, self.num_states, "score")
        rates = torch.mul(score, self.rates_in(x, dtype=score.dtype), out=out)
        index = x.long().unsqueeze(-1)
        rates.scatter_(-1, index, 0.0).mul_(scale)
        return rates.scatter_(-1, index, -rates.sum(dim=-1, keepdim=True))

    @renamed_keywords(dsigma="delta_sigma")
    def staggered_score(self, score: Tensor, delta_sigma: Tensor | float) -> Tensor:
        r"""$\exp(-\Delta\bar\sigma\, Q)$ applied to the score vector of each position.

        With `transition_in(x, delta_sigma)` this gives the analytic (Tweedie) sampler's step
        probabilities. `score` is `[B, ..., S]` (ratios, with 1 at the current token) and
        `delta_sigma` $= \Delta\bar\sigma \ge 0$ (formerly `dsigma`), a difference of total
        noises, a scalar or `[B]`.
        """
        if score.shape[-1] != self.num_states:
            raise ValueError(
                f"score must have {self.num_states} states in its last axis, got {score.shape[-1]}"
            )
        delta = batch_sigma(delta_sigma, score[..., 0], "delta_sigma").reshape(-1)
        inv = self.kernel(-delta).to(score.dtype)  # [B, S, S]
        flat = score.reshape(score.shape[0], -1, self.num_states)
        return torch.einsum("bjk,blk->blj", inv, flat).reshape(score.shape)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_tokens={self.num_tokens}, num_states={self.num_states})"


# `frozen_states` reads the dense matrix of generic graphs up to this many states.
_DENSE_INSPECTION_LIMIT = 4096


def _float_dtype(t: Tensor) -> torch.dtype:
    return t.dtype if t.is_floating_point() else torch.get_default_dtype()
