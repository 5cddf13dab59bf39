"""The uniform graph: every token jumps to any other at the same rate."""

from __future__ import annotations

import torch
from torch import Tensor

from ddiff._checks import batch_sigma, check_tokens, renamed_keywords
from ddiff.graphs.base import Graph


class UniformGraph(Graph):
    r"""Uniform noise: $Q = \frac{1}{S}\mathbf{1}\mathbf{1}^\top - I$, limit uniform over S tokens.

    Closed forms with $\Pi = \frac{1}{S}\mathbf{1}\mathbf{1}^\top$:
    $P(\bar\sigma) = \Pi + e^{-\bar\sigma}(I - \Pi)$ and
    $\exp(-\Delta Q) = e^{\Delta} I - \operatorname{expm1}(\Delta)\,\Pi$. Every member is O(S) per
    position and never builds an `S x S` matrix, so GPT-2 sized vocabularies (50,257) work.
    (Lou, Meng & Ermon, ICML 2024; Austin et al., *D3PM*, NeurIPS 2021.)

    Args:
        num_tokens: alphabet size S (>= 2); there is no extra state.

    Example:
        >>> import torch
        >>> from ddiff import UniformGraph
        >>> g = UniformGraph(4)
        >>> g.transition(torch.tensor([[0, 3]]), torch.tensor([0.0]))[0, 1]
        tensor([0., 0., 0., 1.])
        >>> float(g.rate_matrix().sum(0).abs().max())
        0.0
    """

    def __init__(self, num_tokens: int) -> None:
        if int(num_tokens) < 2:
            raise ValueError(f"num_tokens must be >= 2, got {num_tokens}")
        self._n = int(num_tokens)

    @property
    def num_tokens(self) -> int:
        return self._n

    @property
    def num_states(self) -> int:
        return self._n

    def rate_matrix(self, dtype: torch.dtype = torch.float64) -> Tensor:
        s = self._n
        return torch.full((s, s), 1.0 / s, dtype=dtype) - torch.eye(s, dtype=dtype)

    def limit_distribution(self, dtype: torch.dtype = torch.float64) -> Tensor:
        return torch.full((self._n,), 1.0 / self._n, dtype=dtype)

    def frozen_states(self) -> Tensor:
        # Every state receives rate 1/S from every other.
        return torch.zeros(self._n, dtype=torch.bool)

    def rates_out(self, x: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
        check_tokens(x, self._n)
        out = torch.full((*x.shape, self._n), 1.0 / self._n, dtype=dtype, device=x.device)
        return out.scatter_add_(-1, x.long().unsqueeze(-1), torch.full_like(out[..., :1], -1.0))

    # Q is symmetric.
    rates_in = rates_out

    def transition(self, x_0: Tensor, sigma: Tensor | float) -> Tensor:
        check_tokens(x_0, self._n, "x_0")
        sig = batch_sigma(sigma, x_0).unsqueeze(-1)
        stay = torch.exp(-sig)
        # (1 - e^{-sigma}) / S via expm1: exact for tiny sigma in float32.
        move = -torch.expm1(-sig) / self._n
        out = move.expand(*x_0.shape, self._n).clone()
        return out.scatter_add_(-1, x_0.long().unsqueeze(-1), stay.expand(*x_0.shape, 1))

    # P is symmetric too.
    def transition_in(self, x: Tensor, sigma: Tensor | float) -> Tensor:
        return self.transition(x, sigma)

    def sample_transition(
        self,
        x_0: Tensor,
        sigma: Tensor | float,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        check_tokens(x_0, self._n, "x_0")
        sig = batch_sigma(sigma, x_0).to(torch.float64)
        # With probability 1 - e^{-sigma} the token is redrawn uniformly (possibly unchanged).
        u = torch.rand(x_0.shape, dtype=torch.float64, device=x_0.device, generator=generator)
        fresh = torch.randint(
            self._n, x_0.shape, device=x_0.device, generator=generator, dtype=x_0.dtype
        )
        return torch.where(u < -torch.expm1(-sig), fresh, x_0)

    def sample_limit(
        self,
        shape: tuple[int, ...] | torch.Size,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> Tensor:
        return torch.randint(self._n, tuple(shape), generator=generator, device=device)

    @renamed_keywords(dsigma="delta_sigma")
    def staggered_score(self, score: Tensor, delta_sigma: Tensor | float) -> Tensor:
        if score.shape[-1] != self._n:
            raise ValueError(
                f"score must have {self._n} states in its last axis, got {score.shape[-1]}"
            )
        d = batch_sigma(delta_sigma, score[..., 0], "delta_sigma").unsqueeze(-1).to(score.dtype)
        return score * torch.exp(d) - torch.expm1(d) * score.mean(dim=-1, keepdim=True)
