r"""Statistics shared by evaluation and training: ratio estimates, paired differences, subsamples.

Bits per token is a ratio of sums over sequences, $\hat r = \sum_b n_b / \sum_b \ell_b$ (nats
$n_b$ and real tokens $\ell_b$ of sequence b); `ratio_sums` gives the sums that add over batches
and ranks, `ratio_estimate` the ratio and its delta-method standard error over sequences.
`ddiff.eval.bits_per_token` and `ddiff.training.AutoregressiveModule`'s validation both use
them, so a logged figure and an evaluated one are the same number.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

__all__ = ["paired_difference", "ratio_estimate", "ratio_sums", "subsample"]


def ratio_sums(nats: Tensor, lengths: Tensor) -> Tensor:
    r"""The float64 sums `[6]` that the ratio estimate and its standard error need.

    They add over batches and ranks (streaming validation sums them): sequences, $\sum n_b$,
    $\sum \ell_b$, $\sum n_b^2$, $\sum n_b \ell_b$, $\sum \ell_b^2$, for `nats` $n_b$ and
    real tokens $\ell_b$ of each sequence; on the device of `nats`.

    Args:
        nats: `[B]` negative log-likelihood (or bound) of each sequence.
        lengths: `[B]` real tokens of each sequence.

    Example:
        >>> import torch
        >>> ratio_sums(torch.tensor([2.0, 4.0]), torch.tensor([1, 2])).tolist()
        [2.0, 6.0, 3.0, 20.0, 10.0, 5.0]
    """
    n = nats.detach().double()
    ell = lengths.to(device=n.device, dtype=torch.float64)
    count = torch.tensor(float(n.numel()), dtype=torch.float64, device=n.device)
    return torch.stack(
        [count, n.sum(), ell.sum(), (n * n).sum(), (n * ell).sum(), (ell * ell).sum()]
    )


def ratio_estimate(sums: list[float]) -> tuple[float, float]:
    r"""The ratio $\hat r = \sum_b n_b / \sum_b \ell_b$ and its delta-method standard error.

    $\mathrm{se}(\hat r) = \sqrt{\frac{B}{B - 1} \sum_b (n_b - \hat r \ell_b)^2} / \sum_b \ell_b$
    over the B sequences, from the sums of `ratio_sums` (reduced over batches and ranks); NaN
    for a single sequence. In the unit of the `n_b` (divide both by log 2 for bits).

    Example:
        >>> import torch
        >>> ratio_estimate(ratio_sums(torch.tensor([2.0, 4.0]), torch.tensor([1, 2])).tolist())
        (2.0, 0.0)
    """
    count, n, ell, nn, nl, ll = sums
    ratio = n / ell
    if count < 2:
        return ratio, math.nan
    # sum_b (n_b - ratio l_b)^2, expanded; cancellation is harmless at float64 for these sums.
    residual = max(nn - 2.0 * ratio * nl + ratio * ratio * ll, 0.0)
    return ratio, math.sqrt(count / (count - 1.0) * residual) / ell


def paired_difference(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Mean of `a - b` over paired sequences and its standard error.

    Args:
        a: `[N]` per-sequence figures of one model (e.g. `LikelihoodEstimate.per_sequence`).
        b: `[N]` the same sequences' figures under another model.

    Returns:
        The mean difference and its standard error over the N pairs (NaN for N = 1).

    Example:
        >>> import numpy as np
        >>> paired_difference(np.array([1.0, 2.0, 3.0]), np.array([0.5, 1.0, 2.5]))
        (0.6666666666666666, 0.16666666666666666)
    """
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    se = float(d.std(ddof=1) / math.sqrt(d.size)) if d.size > 1 else math.nan
    return float(d.mean()), se


def subsample(n: int, k: int, seed: int) -> np.ndarray:
    """`min(k, n)` distinct indices of `range(n)`, seeded, in increasing order.

    Example:
        >>> subsample(10, 3, seed=0).tolist(), subsample(2, 5, seed=0).tolist()
        ([5, 6, 9], [0, 1])
    """
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=min(k, n), replace=False))
