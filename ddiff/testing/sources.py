"""Synthetic data sources with exactly known entropy, for training tests and benchmarks."""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor

from ddiff._categorical import sample_categorical


class MarkovSource:
    r"""Sequences of a fixed length from a first-order Markov chain over N tokens.

    $$p(x^1 \dots x^L) = \pi_0(x^1) \prod_{i=2}^{L} T[x^{i-1}, x^i],$$

    with **row**-stochastic `transition` (`T[a, b]` is the probability that b follows a; every row
    sums to 1; the usual Markov-chain convention, not the column convention of rate matrices).
    The entropy of a sequence is exact:
    $H = H(\pi_0) + \sum_{i=1}^{L-1} \sum_a p_i(a)\, H(T[a, :])$, where $p_i$ is the marginal
    of position i. A model trained on this source cannot beat `entropy_per_token()`, and the
    uniform baseline is $\log N$: a likelihood bound between the two measures what was learned.

    Args:
        transition: `[N, N]` non-negative, rows summing to 1 (within 1e-6; renormalised).
        initial: `[N]` distribution of the first token (default: the uniform distribution).
        length: sequence length L >= 1.

    Raises:
        ValueError: if the shapes disagree, an entry is negative, or a row does not sum to 1.

    Example:
        >>> import torch
        >>> from ddiff.testing import MarkovSource
        >>> source = MarkovSource(torch.tensor([[0.9, 0.1], [0.1, 0.9]]), length=4)
        >>> round(source.entropy_per_token("bits"), 4)  # (1 + 3 H(0.1)) / 4
        0.6017
        >>> source.sample(3, torch.Generator().manual_seed(0)).shape
        torch.Size([3, 4])
    """

    def __init__(self, transition: Tensor, initial: Tensor | None = None, length: int = 16) -> None:
        t = torch.as_tensor(transition, dtype=torch.float64)
        if t.dim() != 2 or t.shape[0] != t.shape[1] or t.shape[0] < 1:
            raise ValueError(f"transition must have shape [N, N], got {list(t.shape)}")
        n = t.shape[0]
        p0 = torch.full((n,), 1.0 / n, dtype=torch.float64) if initial is None else initial
        p0 = torch.as_tensor(p0, dtype=torch.float64)
        if p0.shape != (n,):
            raise ValueError(
                f"initial must have shape [{n}] to match transition, got {list(p0.shape)}"
            )
        _check_distribution(t, "transition rows")
        _check_distribution(p0[None], "initial")
        if isinstance(length, bool) or int(length) != length or length < 1:
            raise ValueError(f"length must be a positive integer, got {length!r}")
        self.transition = t / t.sum(dim=-1, keepdim=True)
        self.initial = p0 / p0.sum()
        self.length = int(length)

    @classmethod
    def random(
        cls, num_tokens: int, length: int, seed: int = 0, concentration: float = 0.3
    ) -> MarkovSource:
        """A chain whose rows (and initial distribution) are Dirichlet(`concentration`) draws.

        Small concentrations give peaked rows, hence a low entropy and an easy learning target.
        """
        if num_tokens < 1:
            raise ValueError(f"num_tokens must be >= 1, got {num_tokens}")
        if not concentration > 0:
            raise ValueError(f"concentration must be > 0, got {concentration!r}")
        g = torch.Generator().manual_seed(seed)
        alpha = torch.full((num_tokens + 1, num_tokens), float(concentration), dtype=torch.float64)
        gamma = torch._standard_gamma(alpha, generator=g).clamp_min(1e-12)
        probs = gamma / gamma.sum(dim=-1, keepdim=True)
        return cls(probs[1:], probs[0], length)

    @property
    def num_tokens(self) -> int:
        """Alphabet size N."""
        return self.transition.shape[0]

    def marginals(self) -> Tensor:
        """`[L, N]`: the distribution of each position (float64)."""
        p = [self.initial]
        for _ in range(self.length - 1):
            p.append(p[-1] @ self.transition)
        return torch.stack(p)

    def entropy(self) -> float:
        """Exact entropy of a whole sequence, nats."""
        row_entropy = -torch.xlogy(self.transition, self.transition).sum(dim=-1)  # [N]
        first = -torch.xlogy(self.initial, self.initial).sum()
        rest = (self.marginals()[:-1] @ row_entropy).sum()
        return float(first + rest)

    def entropy_per_token(self, unit: Literal["nats", "bits"] = "nats") -> float:
        """Exact entropy per token, `entropy() / L`, in nats or bits."""
        if unit not in ("nats", "bits"):
            raise ValueError(f"unit must be 'nats' or 'bits', got {unit!r}")
        h = self.entropy() / self.length
        return h / math.log(2.0) if unit == "bits" else h

    def nll(self, x: Tensor) -> Tensor:
        """Exact $-\\log p(x)$ per sequence of `x` `[B, L]`, nats, float64 `[B]`."""
        if x.dim() != 2 or x.shape[1] != self.length:
            raise ValueError(f"x must have shape [batch, {self.length}], got {list(x.shape)}")
        x = x.long().cpu()
        log_p = torch.log(self.initial)[x[:, 0]]
        log_p = log_p + torch.log(self.transition)[x[:, :-1], x[:, 1:]].sum(dim=-1)
        return -log_p

    def sample(self, num: int, generator: torch.Generator | None = None) -> Tensor:
        """`num` independent sequences, LongTensor `[num, L]`."""
        if num < 0:
            raise ValueError(f"num must be >= 0, got {num}")
        x = torch.empty(num, self.length, dtype=torch.long)
        x[:, 0] = sample_categorical(self.initial.expand(num, -1), generator)
        for i in range(1, self.length):
            x[:, i] = sample_categorical(self.transition[x[:, i - 1]], generator)
        return x

    def __repr__(self) -> str:
        h = self.entropy_per_token("bits")
        return f"MarkovSource(num_tokens={self.num_tokens}, length={self.length}, entropy={h:.4f} bits/token)"


def _check_distribution(p: Tensor, name: str) -> None:
    if not bool(torch.isfinite(p).all()) or bool((p < 0).any()):
        raise ValueError(f"{name} must be finite and non-negative")
    sums = p.sum(dim=-1)
    bad = ((sums - 1.0).abs() > 1e-6).nonzero()
    if bad.numel():
        i = int(bad[0, 0])
        raise ValueError(f"{name} must sum to 1, but entry {i} sums to {float(sums[i]):.6g}")
