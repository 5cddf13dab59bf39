r"""Baselines that a diffusion model's likelihood is compared with.

`MarkovChain` is an order-k n-gram model with an exact likelihood: on data from an order-k
source it approaches the source's entropy rate, so the gap between it and a diffusion model's
bound says how much the network learnt beyond k-token contexts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["MarkovChain"]


class MarkovChain:
    r"""An order-k Markov chain over `num_tokens` symbols, smoothed towards lower orders.

    Position i >= k of a sequence is predicted from the previous k tokens; the first k positions
    have their own tables, fitted on the starts of the training sequences only (position i from
    the i tokens before it), so the chain also learns how sequences begin (e.g. never with a
    padding token). Every table is smoothed towards a shorter context (a Dirichlet prior of total
    mass $\alpha S$ centred on it):

    $$p_j(b \mid c) = \frac{n(c, b) + \alpha S\, p_{j-1}(b \mid c')}{n(c) + \alpha S},$$

    with $c'$ the context without its oldest token and $p_{-1}$ uniform (order 0 is add-$\alpha$
    smoothing); a start table for position i is centred on the all-positions table of context
    length i. The likelihood is exact: `nll_bits` is the negative log-likelihood of each
    sequence in bits, the number to compare with a diffusion model's bound.

    Args:
        num_tokens: alphabet size S.
        order: k >= 0 (tables have S^(k+1) entries: keep it small for large alphabets).
        alpha: prior strength per symbol, > 0.

    Example:
        Fitted on samples of an order-1 source, the chain's held-out NLL approaches the
        source's exact entropy (bits per token):

        >>> import torch
        >>> from ddiff.data import MarkovSource
        >>> source = MarkovSource.random(4, length=32, seed=0)
        >>> g = torch.Generator().manual_seed(0)
        >>> train, heldout = source.sample(2000, g).numpy(), source.sample(500, g).numpy()
        >>> chain = MarkovChain(num_tokens=4, order=1).fit(train)
        >>> nll = float(chain.nll_bits(heldout).mean()) / 32
        >>> exact = source.entropy_per_token("bits")
        >>> round(exact, 2), abs(nll - exact) < 0.03
        (0.41, True)
    """

    def __init__(self, num_tokens: int, order: int, alpha: float = 0.5) -> None:
        if order < 0 or num_tokens < 1 or alpha <= 0:
            raise ValueError("need num_tokens >= 1, order >= 0 and alpha > 0")
        self.num_tokens, self.order, self.alpha = num_tokens, order, alpha
        self.log_probs: list[np.ndarray] = []  # position i < k: [S^i, S]; then k: [S^k, S]

    def fit(self, sequences: Sequence[np.ndarray]) -> MarkovChain:
        """Count (j+1)-grams over all positions and at the sequence starts."""
        s, mass = self.num_tokens, self.alpha * self.num_tokens
        seqs = [np.asarray(seq, dtype=np.int64) for seq in sequences]
        prior = np.full((1, s), 1.0 / s)
        general = []  # context length j, every position >= j
        for j in range(self.order + 1):
            counts = np.zeros((s**j, s), dtype=np.float64)
            for seq in seqs:
                if seq.size > j:
                    np.add.at(counts, (_context_codes(seq, j, s), seq[j:]), 1.0)
            lower = prior[np.arange(s**j) % prior.shape[0]]  # p_{j-1}(. | context suffix)
            prior = (counts + mass * lower) / (counts.sum(axis=1, keepdims=True) + mass)
            general.append(prior)
        self.log_probs = []
        for i in range(self.order):  # position i, from the sequence start
            counts = np.zeros((s**i, s), dtype=np.float64)
            for seq in seqs:
                if seq.size > i:
                    counts[_code(seq[:i], s), seq[i]] += 1.0
            start = (counts + mass * general[i]) / (counts.sum(axis=1, keepdims=True) + mass)
            self.log_probs.append(np.log(start))
        self.log_probs.append(np.log(general[self.order]))
        return self

    def nll_bits(self, sequences: Sequence[np.ndarray]) -> np.ndarray:
        """`[N]` exact negative log-likelihood of each sequence, bits."""
        out = np.zeros(len(sequences))
        for n, seq in enumerate(sequences):
            seq = np.asarray(seq, dtype=np.int64)
            total = 0.0
            for i in range(min(self.order, seq.size)):  # the start tables
                total += self.log_probs[i][_code(seq[:i], self.num_tokens), seq[i]]
            if seq.size > self.order:
                ctx = _context_codes(seq, self.order, self.num_tokens)
                total += self.log_probs[self.order][ctx, seq[self.order :]].sum()
            out[n] = -total / math.log(2.0)
        return out

    def sample(self, num: int, length: int, generator: np.random.Generator) -> np.ndarray:
        """`[num, length]` sequences drawn from the chain."""
        s, k = self.num_tokens, self.order
        out = np.zeros((num, length), dtype=np.int64)
        for i in range(length):
            j = min(i, k)
            ctx = np.zeros(num, dtype=np.int64)
            for col in range(i - j, i):
                ctx = ctx * s + out[:, col]
            cdf = np.exp(self.log_probs[j][ctx]).cumsum(axis=1)
            u = generator.random((num, 1)) * cdf[:, -1:]
            out[:, i] = np.minimum((cdf < u).sum(axis=1), s - 1)
        return out


def _code(tokens: np.ndarray, base: int) -> int:
    value = 0
    for t in tokens.tolist():
        value = value * base + int(t)
    return value


def _context_codes(seq: np.ndarray, j: int, base: int) -> np.ndarray:
    """Codes of the j tokens before each position j..len-1 (0 for j = 0)."""
    n = seq.size - j
    codes = np.zeros(n, dtype=np.int64)
    for offset in range(j):
        codes = codes * base + seq[offset : offset + n]
    return codes
