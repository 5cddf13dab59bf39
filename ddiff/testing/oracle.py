"""Exact marginals and concrete scores on tiny state spaces, by enumeration."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ddiff._categorical import sample_categorical
from ddiff._checks import batch_sigma, check_tokens
from ddiff.conditioning import Clamp, Condition
from ddiff.graphs import Graph


class ExactOracle:
    r"""The exact forward marginals $p_t$ and concrete scores of a tiny problem.

    Every sequence of length L over the graph's S states is enumerated (S^L <= ~10^5), the data
    distribution $p_0$ over the N data tokens is given as a tensor, and
    $p_t = (P \otimes \dots \otimes P)\, p_0$ with $P = \exp(\bar\sigma Q)$ from
    `graph.kernel`. Calling the oracle returns exact log concrete scores
    $\log p_t(x^{i \leftarrow v}) - \log p_t(x)$, so it can stand in for a trained network
    anywhere a score function is expected (samplers, the likelihood bound, the loss).

    Args:
        graph: the forward process (its kernels must be exact: every shipped graph's are).
        data_probs: $p_0$ as a tensor of shape `[N] * L` (entry `[a, b, c]` is the probability
            of the sequence `abc`); non-negative, normalised to sum 1 (within 1e-6).

    Example:
        >>> import torch
        >>> from ddiff import UniformGraph
        >>> from ddiff.testing import ExactOracle
        >>> oracle = ExactOracle(UniformGraph(2), torch.tensor([0.75, 0.25]))
        >>> oracle(torch.tensor([[0]]), torch.tensor([0.0])).exp()  # p_0(1) / p_0(0) = 1/3
        tensor([[[1.0000, 0.3333]]], dtype=torch.float64)
    """

    def __init__(self, graph: Graph, data_probs: Tensor) -> None:
        p0 = torch.as_tensor(data_probs, dtype=torch.float64)
        n, s, length = graph.num_tokens, graph.num_states, p0.dim()
        if length < 1 or any(d != n for d in p0.shape):
            raise ValueError(
                f"data_probs must have shape [{n}] * L for a graph with {n} data tokens, got "
                f"{list(p0.shape)}"
            )
        if s**length > 200_000:
            raise ValueError(
                f"{s}^{length} sequences is too many to enumerate; use a smaller problem"
            )
        if bool((p0 < 0).any()) or abs(float(p0.sum()) - 1.0) > 1e-6:
            raise ValueError("data_probs must be non-negative and sum to 1")
        self.graph = graph
        self.length = length
        self.data_probs = p0 / p0.sum()
        padded = torch.zeros([s] * length, dtype=torch.float64)
        padded[tuple(slice(0, n) for _ in range(length))] = self.data_probs
        self._p0 = padded
        self._strides = torch.tensor([s ** (length - 1 - i) for i in range(length)])

    @classmethod
    def random(
        cls, graph: Graph, length: int, seed: int = 0, concentration: float = 0.5
    ) -> ExactOracle:
        """A random data distribution, Dirichlet(`concentration`) over all N^L sequences."""
        g = torch.Generator().manual_seed(seed)
        n = graph.num_tokens
        gamma = torch._standard_gamma(
            torch.full((n**length,), concentration, dtype=torch.float64), generator=g
        )
        return cls(graph, (gamma / gamma.sum()).reshape([n] * length))

    # -- enumeration ----------------------------------------------------------------------------

    @property
    def num_sequences(self) -> int:
        """S^L, the number of sequences over all states."""
        return self.graph.num_states**self.length

    def all_sequences(self, data_only: bool = False) -> Tensor:
        """Every sequence in lexicographic order, `[S^L, L]` (`[N^L, L]` if `data_only`)."""
        k = self.graph.num_tokens if data_only else self.graph.num_states
        grids = torch.meshgrid(*[torch.arange(k)] * self.length, indexing="ij")
        return torch.stack([g.reshape(-1) for g in grids], dim=-1)

    def index(self, x: Tensor) -> Tensor:
        """Position of each sequence `x` `[..., L]` in `all_sequences()`."""
        return (x.long() * self._strides.to(x.device)).sum(dim=-1)

    def marginal(self, sigma: Tensor | float) -> Tensor:
        """$p_t$ over all S^L sequences at total noise `sigma`: `[S^L]` (or `[B, S^L]` for `[B]`)."""
        sig = torch.as_tensor(sigma, dtype=torch.float64)
        batched = sig.dim() > 0
        kernels = self.graph.kernel(sig.reshape(-1).to(torch.float64))  # [B, S, S]
        p = self._p0.expand(kernels.shape[0], *self._p0.shape)
        for axis in range(1, self.length + 1):
            # Apply P along this position: p'[..., j, ...] = sum_i P[j, i] p[..., i, ...]
            p = torch.movedim(
                torch.einsum("bji,b...i->b...j", kernels, torch.movedim(p, axis, -1)), -1, axis
            )
        p = p.reshape(kernels.shape[0], -1).clamp_min(0.0)
        return p if batched else p[0]

    def generator_matrix(self) -> Tensor:
        """The rate matrix of whole sequences, $\\sum_i I \\otimes \\dots Q \\dots \\otimes I$, `[S^L, S^L]`."""
        q = self.graph.rate_matrix(torch.float64)
        eye = torch.eye(q.shape[0], dtype=torch.float64)
        total = torch.zeros(self.num_sequences, self.num_sequences, dtype=torch.float64)
        for i in range(self.length):
            term = torch.ones(1, 1, dtype=torch.float64)
            for j in range(self.length):
                term = torch.kron(term, q if i == j else eye)
            total += term
        return total

    # -- scores -----------------------------------------------------------------------------------

    def log_score(self, x_t: Tensor, sigma: Tensor | float) -> Tensor:
        """Exact log concrete scores `[B, L, S]` (float64) of `x_t` `[B, L]` at `sigma` (`[B]` or scalar).

        Entry `[b, i, v]` is $\\log p_t(x^{i \\leftarrow v}) - \\log p_t(x)$; 0 at `v = x^i`.
        Sequences with $p_t(x) = 0$ give NaN (they cannot be reached from the data).
        """
        check_tokens(x_t, self.graph.num_states, "x_t")
        if x_t.dim() != 2 or x_t.shape[1] != self.length:
            raise ValueError(f"x_t must have shape [batch, {self.length}], got {list(x_t.shape)}")
        sig = batch_sigma(sigma, x_t).reshape(-1).to(torch.float64).cpu()
        unique, inverse = torch.unique(sig, return_inverse=True)
        log_p = torch.log(self.marginal(unique))[inverse]  # [B, S^L]
        x = x_t.long().cpu()
        base = self.index(x)  # [B]
        v = torch.arange(self.graph.num_states)
        # Neighbour index: change position i from x_i to v.
        nb = base[:, None, None] + (v[None, None, :] - x[:, :, None]) * self._strides[None, :, None]
        scores = log_p.gather(1, nb.reshape(x.shape[0], -1)).reshape(*x.shape, -1)
        scores = scores - log_p.gather(1, base[:, None])[:, :, None]
        return scores.to(x_t.device)

    __call__ = log_score

    # -- data -----------------------------------------------------------------------------------

    def entropy(self) -> float:
        """Exact entropy of the data distribution, nats per sequence."""
        p = self.data_probs.reshape(-1)
        return float(-torch.xlogy(p, p).sum())

    def nll(self, x_0: Tensor) -> Tensor:
        """Exact $-\\log p_0(x_0)$ per sequence, nats, `[B]`."""
        check_tokens(x_0, self.graph.num_tokens, "x_0")
        return -torch.log(self._p0.reshape(-1)[self.index(x_0.cpu())])

    def sample_data(self, num: int, generator: torch.Generator | None = None) -> Tensor:
        """`num` i.i.d. sequences from $p_0$, `[num, L]`."""
        flat = sample_categorical(self.data_probs.reshape(1, -1).expand(num, -1), generator)
        return self.all_sequences(data_only=True)[flat]

    def total_variation(self, samples: Tensor) -> float:
        """TV distance between the empirical distribution of `samples` `[M, L]` and $p_0$."""
        counts = torch.bincount(self.index(samples.cpu()), minlength=self.num_sequences).double()
        return 0.5 * float((counts / counts.sum() - self._p0.reshape(-1)).abs().sum())

    # -- conditioning ---------------------------------------------------------------------------

    def conditional(self, condition: Condition | Clamp) -> ConditionalOracle:
        r"""The exact oracle of $p_0$ conditioned on the fixed tokens of `condition`.

        Its scores are those of the process in which the fixed positions stay clean (clamped)
        and only the free positions are noised, with data $p_0(\cdot \mid$ fixed tokens$)$:
        the scores an exact conditional sampler needs. See `ConditionalOracle`.
        """
        return ConditionalOracle(self, condition)

    def conditional_log_score(
        self, x_t: Tensor, sigma: Tensor | float, *, condition: Clamp
    ) -> Tensor:
        """Exact conditional log-scores, in the form samplers call with `pass_condition=True`.

        `condition` is a `Clamp` of shape `[L]` or `[B, L]` (rows may differ: each distinct
        condition gets its own `ConditionalOracle`). Returns `[B, L, S]` float64, like `log_score`.
        """
        if not isinstance(condition, Clamp):
            raise TypeError(f"condition must be a Clamp, got {type(condition).__name__}")
        clamp = condition.expand(x_t.shape[0]).to("cpu")
        sig = batch_sigma(sigma, x_t).reshape(-1)
        # One integer per row's condition (0 = free, token + 1 = fixed): S^L is tiny here.
        code = torch.where(clamp.mask, clamp.tokens + 1, 0)
        keys = (code * (self.graph.num_tokens + 1) ** torch.arange(self.length)).sum(dim=-1)
        unique, group = torch.unique(keys, return_inverse=True)
        out = torch.empty(*x_t.shape, self.graph.num_states, dtype=torch.float64)
        for k in range(unique.shape[0]):
            rows = (group == k).nonzero().squeeze(-1)
            first = int(rows[0])
            single = Clamp(clamp.mask[first], clamp.tokens[first])
            out[rows] = self.conditional(single).log_score(x_t[rows].cpu(), sig[rows].cpu())
        return out.to(x_t.device)

    def __repr__(self) -> str:
        h = self.entropy() / math.log(2.0)
        return f"ExactOracle({self.graph!r}, length={self.length}, entropy={h:.4f} bits)"


class ConditionalOracle(ExactOracle):
    r"""The exact oracle of a conditional problem: fixed positions clean, the others noised.

    Given an `ExactOracle` for $p_0$ and a condition fixing tokens $c$ at positions F, this is
    the oracle of the data distribution $p_0(\cdot \mid x^F = c)$ under a forward process that
    noises only the free positions (the fixed ones are clamped, as samplers do):

    $$p_t^c(x) = \mathbb{1}[x^F = c] \sum_{x_0} p_0(x_0 \mid x_0^F = c)
      \prod_{i \notin F} P[x^i, x_0^i].$$

    Its log-scores at the free positions are what an exact conditional sampler needs; at the
    fixed positions they are $-\infty$ off the fixed token (those positions never move).
    `total_variation` and `sample_data` refer to the conditional distribution.

    Args:
        oracle: the unconditional oracle.
        condition: a `Condition`, or a `Clamp` of shape `[L]`.

    Raises:
        ValueError: if the condition does not fit the oracle or has probability 0 under $p_0$.

    Example:
        >>> import torch
        >>> from ddiff import UniformGraph
        >>> from ddiff.conditioning import Condition
        >>> from ddiff.testing import ExactOracle
        >>> oracle = ExactOracle(UniformGraph(2), torch.tensor([[0.4, 0.1], [0.2, 0.3]]))
        >>> oracle.conditional(Condition.at({0: 1})).data_probs  # p(x_1 | x_0 = 1)
        tensor([[0.0000, 0.0000],
                [0.4000, 0.6000]], dtype=torch.float64)
    """

    def __init__(self, oracle: ExactOracle, condition: Condition | Clamp) -> None:
        n, length = oracle.graph.num_tokens, oracle.length
        if isinstance(condition, Condition):
            clamp = condition.resolve(length, n)
        elif isinstance(condition, Clamp):
            if condition.mask.dim() != 1 or condition.length != length:
                raise ValueError(
                    f"the clamp must have shape [{length}] (one condition for the oracle), got "
                    f"{list(condition.mask.shape)}"
                )
            clamp = Clamp.from_tensors(condition.tokens.cpu(), condition.mask.cpu(), n)
        else:
            raise TypeError(
                f"condition must be a Condition or Clamp, got {type(condition).__name__}"
            )
        seqs = oracle.all_sequences(data_only=True)  # [N^L, L]
        agrees = ((seqs == clamp.tokens) | ~clamp.mask).all(dim=-1)
        p0 = torch.where(agrees, oracle.data_probs.reshape(-1), 0.0)
        if float(p0.sum()) <= 0.0:
            raise ValueError(
                f"the condition {clamp.tokens.tolist()} at {clamp.mask.nonzero().squeeze(-1).tolist()} "
                "has probability 0 under the data distribution"
            )
        super().__init__(oracle.graph, (p0 / p0.sum()).reshape(oracle.data_probs.shape))
        self.clamp = clamp
        self._free = [i for i in range(length) if not bool(clamp.mask[i])]

    def marginal(self, sigma: Tensor | float) -> Tensor:
        """$p_t^c$ over all S^L sequences: only the free positions are noised."""
        sig = torch.as_tensor(sigma, dtype=torch.float64)
        batched = sig.dim() > 0
        kernels = self.graph.kernel(sig.reshape(-1).to(torch.float64))  # [B, S, S]
        p = self._p0.expand(kernels.shape[0], *self._p0.shape)
        for i in self._free:
            axis = i + 1
            p = torch.movedim(
                torch.einsum("bji,b...i->b...j", kernels, torch.movedim(p, axis, -1)), -1, axis
            )
        p = p.reshape(kernels.shape[0], -1).clamp_min(0.0)
        return p if batched else p[0]

    def generator_matrix(self) -> Tensor:
        """The rate matrix of whole sequences with the fixed positions frozen, `[S^L, S^L]`."""
        q = self.graph.rate_matrix(torch.float64)
        eye = torch.eye(q.shape[0], dtype=torch.float64)
        total = torch.zeros(self.num_sequences, self.num_sequences, dtype=torch.float64)
        for i in self._free:
            term = torch.ones(1, 1, dtype=torch.float64)
            for j in range(self.length):
                term = torch.kron(term, q if i == j else eye)
            total += term
        return total

    def __repr__(self) -> str:
        fixed = self.clamp.mask.nonzero().squeeze(-1).tolist()
        return f"ConditionalOracle({self.graph!r}, length={self.length}, fixed={fixed})"
