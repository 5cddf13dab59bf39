"""The absorbing graph: every token decays to a MASK state and stays there."""

from __future__ import annotations

import torch
from torch import Tensor

from ddiff._checks import batch_sigma, check_tokens, renamed_keywords
from ddiff.graphs.base import Graph


class AbsorbingGraph(Graph):
    r"""Absorbing (masking) noise over N data tokens plus MASK $= N$.

    $Q[\mathrm{M}, i] = 1$ and $Q[i, i] = -1$ for every data token $i$; the MASK column is zero.
    A data token survives to total noise $\bar\sigma$ with probability $e^{-\bar\sigma}$ and is
    masked otherwise; the limit puts all mass on MASK. Every member is O(S) per position.
    (Austin et al., *D3PM*, NeurIPS 2021; Lou, Meng & Ermon, ICML 2024; Sahoo et al., *MDLM*,
    NeurIPS 2024.)

    Args:
        num_tokens: data alphabet size N (>= 1); the graph has `N + 1` states.

    Example:
        >>> import torch
        >>> from ddiff import AbsorbingGraph
        >>> g = AbsorbingGraph(4)
        >>> g.mask_token, g.num_states
        (4, 5)
        >>> g.transition(torch.tensor([[2]]), torch.tensor([float("inf")]))[0, 0]
        tensor([0., 0., 0., 0., 1.])
    """

    def __init__(self, num_tokens: int) -> None:
        if int(num_tokens) < 1:
            raise ValueError(f"num_tokens must be >= 1, got {num_tokens}")
        self._n = int(num_tokens)

    @property
    def num_tokens(self) -> int:
        return self._n

    @property
    def num_states(self) -> int:
        return self._n + 1

    @property
    def mask_token(self) -> int:
        """Index of the MASK state (`num_tokens`)."""
        return self._n

    def rate_matrix(self, dtype: torch.dtype = torch.float64) -> Tensor:
        q = torch.zeros(self.num_states, self.num_states, dtype=dtype)
        idx = torch.arange(self._n)
        q[idx, idx] = -1.0
        q[self._n, : self._n] = 1.0
        return q

    def limit_distribution(self, dtype: torch.dtype = torch.float64) -> Tensor:
        pi = torch.zeros(self.num_states, dtype=dtype)
        pi[self._n] = 1.0
        return pi

    def frozen_states(self) -> Tensor:
        # Only MASK receives jumps (from every data token); a data token is never re-entered.
        return torch.arange(self.num_states) < self._n

    def rates_out(self, x: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
        check_tokens(x, self.num_states)
        data = (x < self._n).to(dtype).unsqueeze(-1)  # a data token leaves at rate 1 to MASK
        out = torch.zeros(*x.shape, self.num_states, dtype=dtype, device=x.device)
        out[..., self._n : self._n + 1] = data
        return out.scatter_add_(-1, x.long().unsqueeze(-1), -data)

    def rates_in(self, x: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
        check_tokens(x, self.num_states)
        masked = (x == self._n).to(dtype).unsqueeze(-1)
        # Into MASK: rate 1 from every data token. Into a data token: only its own -1 diagonal.
        out = masked.expand(*x.shape, self.num_states).clone()
        out[..., self._n] = 0.0
        return out.scatter_add_(-1, x.long().unsqueeze(-1), masked - 1.0)

    def transition(self, x_0: Tensor, sigma: Tensor | float) -> Tensor:
        check_tokens(x_0, self.num_states, "x_0")
        sig = batch_sigma(sigma, x_0).unsqueeze(-1)
        stay = torch.exp(-sig).expand(*x_0.shape, 1)
        data = (x_0 < self._n).unsqueeze(-1)
        stay = torch.where(data, stay, torch.ones_like(stay))
        out = torch.zeros(*x_0.shape, self.num_states, dtype=stay.dtype, device=x_0.device)
        out[..., self._n : self._n + 1] = torch.where(data, -torch.expm1(-sig), 0.0)
        return out.scatter_add_(-1, x_0.long().unsqueeze(-1), stay)

    def transition_in(self, x: Tensor, sigma: Tensor | float) -> Tensor:
        check_tokens(x, self.num_states)
        sig = batch_sigma(sigma, x).unsqueeze(-1)
        masked = (x == self._n).unsqueeze(-1)
        # P[M, y] = 1 - e^{-sigma} for data y and 1 for y = M; P[x, y] = e^{-sigma} delta for data x.
        out = torch.where(masked, -torch.expm1(-sig), 0.0).expand(*x.shape, self.num_states).clone()
        out[..., self._n] = masked[..., 0].to(out.dtype)
        stay = torch.where(masked, 0.0, torch.exp(-sig)).expand(*x.shape, 1)
        return out.scatter_add_(-1, x.long().unsqueeze(-1), stay)

    def sample_transition(
        self,
        x_0: Tensor,
        sigma: Tensor | float,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        check_tokens(x_0, self.num_states, "x_0")
        sig = batch_sigma(sigma, x_0).to(torch.float64)
        u = torch.rand(x_0.shape, dtype=torch.float64, device=x_0.device, generator=generator)
        return torch.where(u < -torch.expm1(-sig), torch.full_like(x_0, self._n), x_0)

    def sample_limit(
        self,
        shape: tuple[int, ...] | torch.Size,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> Tensor:
        return torch.full(tuple(shape), self._n, dtype=torch.long, device=device)

    @renamed_keywords(dsigma="delta_sigma")
    def staggered_score(self, score: Tensor, delta_sigma: Tensor | float) -> Tensor:
        if score.shape[-1] != self.num_states:
            raise ValueError(
                f"score must have {self.num_states} states in its last axis, got {score.shape[-1]}"
            )
        d = batch_sigma(delta_sigma, score[..., 0], "delta_sigma").unsqueeze(-1).to(score.dtype)
        out = score * torch.exp(d)
        # The MASK entry gathers (1 - e^{d}) times the data entries and keeps its own score.
        out[..., self._n] = score[..., self._n] - (
            torch.expm1(d[..., 0]) * score[..., : self._n].sum(dim=-1)
        )
        return out
