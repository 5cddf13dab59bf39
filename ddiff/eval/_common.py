"""Token handling and k-mer statistics shared by the domain metrics (internal)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from torch import Tensor

Sequences = Tensor | Sequence[str] | Sequence[Tensor]
"""A `[N, length]` token tensor, or a list of strings or 1-D token tensors."""


def token_arrays(
    seqs: Sequences,
    encode: Callable[[str], Tensor],
    num_tokens: int,
    domain: str,
    hints: dict[int, str] | None = None,
) -> list[np.ndarray]:
    """Validated int64 token arrays (values in `[0, num_tokens)`) of a collection of sequences.

    Strings are encoded with `encode`; tensors and arrays are checked. Errors name the sequence
    index and the 1-based position; `hints` adds a remark for particular bad token values.
    """
    if isinstance(seqs, str):
        raise TypeError("pass a list of sequences, not a single string")
    if isinstance(seqs, Tensor):
        if seqs.dim() != 2:
            raise ValueError(
                f"a tensor of sequences must be [N, length], got shape {tuple(seqs.shape)}"
            )
        seqs = list(seqs.detach().cpu().long().numpy())
    rows = []
    for i, s in enumerate(seqs):
        try:
            if isinstance(s, str):
                rows.append(encode(s).numpy())
            else:
                rows.append(check_token_array(s, num_tokens, domain, hints))
        except ValueError as err:
            raise ValueError(f"sequence {i}: {err}") from err
    return rows


def check_token_array(
    tokens: Tensor | np.ndarray, num_tokens: int, domain: str, hints: dict[int, str] | None = None
) -> np.ndarray:
    """One validated 1-D int64 token array."""
    a = np.asarray(tokens.detach().cpu() if isinstance(tokens, Tensor) else tokens)
    if a.ndim != 1 or not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"need a 1-D integer token array, got shape {a.shape} and {a.dtype}")
    bad = np.flatnonzero((a < 0) | (a >= num_tokens))
    if bad.size:
        value = int(a[bad[0]])
        raise ValueError(
            f"position {bad[0] + 1}: token {value} is not a {domain} token "
            f"(0..{num_tokens - 1}){(hints or {}).get(value, '')}"
        )
    return a.astype(np.int64, copy=False)


def packed_kmers(a: np.ndarray, k: int, base: int) -> np.ndarray:
    """The k-mers of one token array packed in base `base` into int64 (first token most
    significant; exact while `base**k < 2**63`)."""
    if a.size < k:
        return np.empty(0, np.int64)
    powers = base ** np.arange(k - 1, -1, -1, dtype=np.int64)
    return sliding_window_view(a, k) @ powers


def js_divergence_bits(p: np.ndarray, q: np.ndarray, what: str) -> float:
    r"""Jensen-Shannon divergence of two count vectors, base 2, no pseudo-counts, in [0, 1].

    Raises `ValueError` naming `what` (e.g. "3-mers") if either vector is all zero.
    """
    if p.sum() == 0 or q.sum() == 0:
        raise ValueError(f"no {what} in the {'samples' if p.sum() == 0 else 'reference'}")
    p_f, q_f = p / p.sum(), q / q.sum()
    m = 0.5 * (p_f + q_f)

    def kl_to_m(a: np.ndarray) -> float:
        nz = a > 0
        return float(np.sum(a[nz] * np.log2(a[nz] / m[nz])))

    return float(min(max(0.5 * kl_to_m(p_f) + 0.5 * kl_to_m(q_f), 0.0), 1.0))
