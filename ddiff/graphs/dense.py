"""A graph from any small, user-supplied rate matrix."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ddiff.graphs.base import Graph, _float_dtype


class DenseGraph(Graph):
    r"""Any valid rate matrix `Q` (`S x S`, column convention), with exact transition kernels.

    `Q[j, i]` is the rate from i to j: off-diagonals must be >= 0 and every column must sum to 0.
    Kernels $\exp(\bar\sigma Q)$ are exact: when `Q` is reversible (detailed balance
    $Q[j, i]\pi_i = Q[i, j]\pi_j$ with a positive stationary $\pi$, as for every time-reversible
    substitution model) the symmetric matrix $\Pi^{-1/2} Q \Pi^{1/2}$ is diagonalised once and
    kernels cost one batched product; otherwise `torch.linalg.matrix_exp` is used, in float64.

    Args:
        rate_matrix: the generator `Q`, `[S, S]`, any real dtype (stored as float64).
        num_tokens: size of the data alphabet, the first `num_tokens` states (default: all S).
        labels: optional names of the states (e.g. `"ACGT"`), used by `repr` and the domains.
        atol: tolerance of the column-sum check.

    Raises:
        ValueError: if `Q` is not square, has a negative off-diagonal or a column that does not
            sum to 0; the message names the entry or column.

    Example:
        >>> import torch
        >>> from ddiff import DenseGraph
        >>> q = torch.tensor([[-1.0, 2.0], [1.0, -2.0]])
        >>> g = DenseGraph(q, labels="ab")
        >>> g.limit_distribution()
        tensor([0.6667, 0.3333], dtype=torch.float64)
        >>> g.transition(torch.tensor([[0]]), torch.tensor([50.0]))[0, 0]
        tensor([0.6667, 0.3333])
    """

    def __init__(
        self,
        rate_matrix: Tensor | Sequence[Sequence[float]],
        num_tokens: int | None = None,
        labels: Sequence[str] | None = None,
        atol: float = 1e-8,
    ) -> None:
        q = torch.as_tensor(rate_matrix, dtype=torch.float64).detach().cpu().clone()
        validate_rate_matrix(q, atol=atol)
        s = q.shape[0]
        if num_tokens is None:
            num_tokens = s
        if not 1 <= int(num_tokens) <= s:
            raise ValueError(
                f"num_tokens must be in [1, {s}] for a {s}-state matrix, got {num_tokens}"
            )
        if labels is not None and len(labels) != s:
            raise ValueError(f"labels must name all {s} states, got {len(labels)}")
        # Make columns sum to exactly 0 (within the tolerance they already did).
        q.diagonal().sub_(q.sum(dim=0))
        self._q = q
        self._n = int(num_tokens)
        self.labels = None if labels is None else list(labels)
        self._pi = super().limit_distribution()
        self._eig = _symmetric_eigen(q, self._pi)

    @property
    def num_tokens(self) -> int:
        return self._n

    @property
    def num_states(self) -> int:
        return self._q.shape[0]

    def rate_matrix(self, dtype: torch.dtype = torch.float64) -> Tensor:
        return self._q.to(dtype)

    def limit_distribution(self, dtype: torch.dtype = torch.float64) -> Tensor:
        return self._pi.to(dtype)

    def kernel(self, sigma: Tensor) -> Tensor:
        if self._eig is None:
            return super().kernel(sigma)
        evals, left, right = (t.to(sigma.device) for t in self._eig)
        s64 = sigma.to(torch.float64).reshape(-1, 1, 1)
        # P = Pi^{1/2} U exp(sigma Lambda) U^T Pi^{-1/2}: `left` = Pi^{1/2} U, `right` = U^T Pi^{-1/2}
        # inf * 0 at the zero eigenvalue (sigma = inf, the limit) is NaN: its exponent is 0.
        p = (left * torch.exp(torch.nan_to_num(s64 * evals, nan=0.0))) @ right
        if bool((sigma >= 0).all()):
            # Clean up round-off: a kernel is a stochastic matrix.
            p = p.clamp_min(0.0)
            p = p / p.sum(dim=1, keepdim=True)
        return p.to(_float_dtype(sigma))

    def __repr__(self) -> str:
        names = "" if self.labels is None else f", labels={''.join(self.labels)!r}"
        return f"DenseGraph(num_states={self.num_states}, num_tokens={self._n}{names})"


def validate_rate_matrix(q: Tensor, atol: float = 1e-8) -> None:
    """Raise `ValueError` unless `q` is a square generator with columns summing to 0."""
    if q.dim() != 2 or q.shape[0] != q.shape[1]:
        raise ValueError(f"a rate matrix must be square [S, S], got shape {list(q.shape)}")
    if q.shape[0] < 2:
        raise ValueError("a rate matrix needs at least 2 states")
    if not bool(torch.isfinite(q).all()):
        i, j = (~torch.isfinite(q)).nonzero()[0].tolist()
        raise ValueError(f"rate matrix entry Q[{i}, {j}] = {q[i, j].item()} is not finite")
    off = q - torch.diag(torch.diagonal(q))
    if bool((off < 0).any()):
        i, j = (off < 0).nonzero()[0].tolist()
        raise ValueError(
            f"off-diagonal Q[{i}, {j}] = {q[i, j].item():.6g} is negative: Q[j, i] is the rate from "
            "i to j and must be >= 0"
        )
    col = q.sum(dim=0)
    scale = max(1.0, float(off.abs().max()))
    bad = (col.abs() > atol * scale).nonzero()
    if bad.numel():
        j = int(bad[0, 0])
        raise ValueError(
            f"column {j} of the rate matrix sums to {col[j].item():.6g}, not 0: set Q[{j}, {j}] to "
            "minus the sum of the column's off-diagonal rates (columns are 'from' states)"
        )


def _symmetric_eigen(q: Tensor, pi: Tensor) -> tuple[Tensor, Tensor, Tensor] | None:
    """Eigendecomposition through detailed balance, or None when `q` is not reversible."""
    if bool((pi <= 1e-12).any()):
        return None
    root = pi.sqrt()
    a = q / root[:, None] * root[None, :]  # Pi^{-1/2} Q Pi^{1/2}
    if not torch.allclose(a, a.T, atol=1e-10, rtol=1e-8):
        return None
    evals, u = torch.linalg.eigh((a + a.T) / 2)
    # The stationary direction's eigenvalue is 0 exactly in theory; make it so (sigma may be inf).
    evals = torch.where(evals.abs() <= 1e-12 * evals.abs().max(), 0.0, evals)
    return evals, root[:, None] * u, u.T / root[None, :]
