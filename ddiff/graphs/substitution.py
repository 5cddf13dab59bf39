r"""Ready-made biological substitution models (DNA and protein) as `DenseGraph`s.

Every model here is time-reversible and normalised so that the expected substitution rate at
stationarity is 1, $\sum_i \pi_i (-Q_{ii}) = 1$: a total noise $\bar\sigma = 1$ means one
expected substitution per site, the usual unit of branch lengths in phylogenetics.

DNA states are ordered `A, C, G, T` (`DNA_ALPHABET`); transitions are A<->G and C<->T, the other
four pairs are transversions. Protein states are the 20 canonical amino acids in the order
`ARNDCQEGHILKMFPSTWYV` (`PROTEIN_ALPHABET`, the order of the NCBI matrices).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from ddiff.graphs.dense import DenseGraph

DNA_ALPHABET = "ACGT"
PROTEIN_ALPHABET = "ARNDCQEGHILKMFPSTWYV"

# The six unordered DNA pairs, in the order `gtr` takes exchangeabilities: AC, AG, AT, CG, CT, GT.
_DNA_PAIRS = ((0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3))
_FREQS_TOL = 1e-6

# BLOSUM62 (Henikoff & Henikoff 1992), the standard NCBI table restricted to the 20 canonical
# residues; rows and columns in `PROTEIN_ALPHABET` order, scores in half-bit units.
# fmt: off
BLOSUM62: tuple[tuple[int, ...], ...] = (
    #A   R   N   D   C   Q   E   G   H   I   L   K   M   F   P   S   T   W   Y   V
    ( 4, -1, -2, -2,  0, -1, -1,  0, -2, -1, -1, -1, -1, -2, -1,  1,  0, -3, -2,  0),  # A
    (-1,  5,  0, -2, -3,  1,  0, -2,  0, -3, -2,  2, -1, -3, -2, -1, -1, -3, -2, -3),  # R
    (-2,  0,  6,  1, -3,  0,  0,  0,  1, -3, -3,  0, -2, -3, -2,  1,  0, -4, -2, -3),  # N
    (-2, -2,  1,  6, -3,  0,  2, -1, -1, -3, -4, -1, -3, -3, -1,  0, -1, -4, -3, -3),  # D
    ( 0, -3, -3, -3,  9, -3, -4, -3, -3, -1, -1, -3, -1, -2, -3, -1, -1, -2, -2, -1),  # C
    (-1,  1,  0,  0, -3,  5,  2, -2,  0, -3, -2,  1,  0, -3, -1,  0, -1, -2, -1, -2),  # Q
    (-1,  0,  0,  2, -4,  2,  5, -2,  0, -3, -3,  1, -2, -3, -1,  0, -1, -3, -2, -2),  # E
    ( 0, -2,  0, -1, -3, -2, -2,  6, -2, -4, -4, -2, -3, -3, -2,  0, -2, -2, -3, -3),  # G
    (-2,  0,  1, -1, -3,  0,  0, -2,  8, -3, -3, -1, -2, -1, -2, -1, -2, -2,  2, -3),  # H
    (-1, -3, -3, -3, -1, -3, -3, -4, -3,  4,  2, -3,  1,  0, -3, -2, -1, -3, -1,  3),  # I
    (-1, -2, -3, -4, -1, -2, -3, -4, -3,  2,  4, -2,  2,  0, -3, -2, -1, -2, -1,  1),  # L
    (-1,  2,  0, -1, -3,  1,  1, -2, -1, -3, -2,  5, -1, -3, -1,  0, -1, -3, -2, -2),  # K
    (-1, -1, -2, -3, -1,  0, -2, -3, -2,  1,  2, -1,  5,  0, -2, -1, -1, -1, -1,  1),  # M
    (-2, -3, -3, -3, -2, -3, -3, -3, -1,  0,  0, -3,  0,  6, -4, -2, -2,  1,  3, -1),  # F
    (-1, -2, -2, -1, -3, -1, -1, -2, -2, -3, -3, -1, -2, -4,  7, -1, -1, -4, -3, -2),  # P
    ( 1, -1,  1,  0, -1,  0,  0,  0, -1, -2, -2,  0, -1, -2, -1,  4,  1, -3, -2, -2),  # S
    ( 0, -1,  0, -1, -1, -1, -1, -2, -2, -1, -1, -1, -1, -2, -1,  1,  5, -2, -2,  0),  # T
    (-3, -3, -4, -4, -2, -2, -3, -2, -2, -3, -2, -3, -1,  1, -4, -3, -2, 11,  2, -3),  # W
    (-2, -2, -2, -3, -2, -1, -2, -3,  2, -1, -1, -2, -1,  3, -3, -2, -2,  2,  7, -1),  # Y
    ( 0, -3, -3, -3, -1, -2, -2, -3, -3,  3,  1, -2,  1, -1, -2, -2,  0, -3, -1,  4),  # V
)
# fmt: on

# Known score matrices: name -> (integer scores, bits per score unit). BLOSUM62 is in half bits.
_SCORE_MATRICES: dict[str, tuple[tuple[tuple[int, ...], ...], float]] = {
    "BLOSUM62": (BLOSUM62, 0.5),
}


def jc69() -> DenseGraph:
    r"""The Jukes-Cantor model: every base changes to each other base at the same rate.

    $Q_{ji} = \frac{1}{3}$ for $j \ne i$ (one expected substitution per unit of $\bar\sigma$),
    with a uniform limit and the closed form
    $P_{ii}(\bar\sigma) = \frac14 + \frac34 e^{-4\bar\sigma/3}$.
    Jukes & Cantor, *Evolution of protein molecules*, in Mammalian Protein Metabolism (1969).

    Returns:
        A 4-state `DenseGraph` over `A, C, G, T`.

    Example:
        >>> import torch
        >>> g = jc69()
        >>> "".join(g.labels)
        'ACGT'
        >>> p = g.transition(torch.tensor([[0]]), torch.tensor([1.0], dtype=torch.float64))
        >>> [round(v, 4) for v in p[0, 0].tolist()]
        [0.4477, 0.1841, 0.1841, 0.1841]
    """
    return gtr([1.0] * 6, [0.25] * 4)


def k80(kappa: float = 2.0) -> DenseGraph:
    r"""Kimura's two-parameter model: transitions at `kappa` times the rate of transversions.

    $Q_{ji} = \alpha$ for transitions (A<->G, C<->T) and $\beta$ for each of the two transversions
    out of a base, with $\alpha = \kappa / (\kappa + 2)$ and $\beta = 1 / (\kappa + 2)$ so that
    $\alpha + 2\beta = 1$ expected substitution per unit of $\bar\sigma$. The limit is uniform.
    Kimura, *J. Mol. Evol.* 16:111 (1980).

    Args:
        kappa: transition/transversion rate ratio, finite and > 0 (`kappa = 1` is `jc69()`).

    Returns:
        A 4-state `DenseGraph` over `A, C, G, T`.

    Raises:
        ValueError: if `kappa` is not finite or not > 0.

    Example:
        >>> g = k80(kappa=2.0)
        >>> [round(v, 3) for v in g.rate_matrix()[:, 0].tolist()]  # rates out of A
        [-1.0, 0.25, 0.5, 0.25]
    """
    return hky85(kappa, [0.25] * 4)


def hky85(kappa: float = 2.0, freqs: Sequence[float] = (0.25, 0.25, 0.25, 0.25)) -> DenseGraph:
    r"""The Hasegawa-Kishino-Yano model: K80's transition bias plus unequal base frequencies.

    $Q_{ji} = c\,\pi_j \kappa$ for transitions (A<->G, C<->T) and $c\,\pi_j$ for transversions,
    with $c$ chosen so that $\sum_i \pi_i (-Q_{ii}) = 1$ (one expected substitution per unit of
    $\bar\sigma$). The limit distribution is $\pi$ = `freqs`.
    Hasegawa, Kishino & Yano, *J. Mol. Evol.* 22:160 (1985).

    Args:
        kappa: transition/transversion rate ratio, finite and > 0.
        freqs: stationary base frequencies $\pi$ in the order A, C, G, T; each > 0, summing to 1
            (within 1e-6; they are not renormalised for you).

    Returns:
        A 4-state `DenseGraph` over `A, C, G, T` with `limit_distribution()` equal to `freqs`.

    Raises:
        ValueError: if `kappa` is not finite and > 0, or `freqs` is not 4 positive numbers
            summing to 1.

    Example:
        >>> g = hky85(kappa=4.0, freqs=[0.1, 0.4, 0.4, 0.1])
        >>> [round(v, 3) for v in g.limit_distribution().tolist()]
        [0.1, 0.4, 0.4, 0.1]
    """
    k = _check_kappa(kappa)
    return gtr([1.0, k, 1.0, 1.0, k, 1.0], freqs)


def gtr(exchangeabilities: Sequence[float], freqs: Sequence[float]) -> DenseGraph:
    r"""The general time-reversible DNA model.

    $Q_{ji} = c\,\pi_j r_{ij}$ for $j \ne i$, with symmetric exchangeabilities $r_{ij} = r_{ji}$,
    stationary frequencies $\pi$ and $c$ chosen so that $\sum_i \pi_i (-Q_{ii}) = 1$ (one expected
    substitution per unit of $\bar\sigma$). Detailed balance $Q_{ji}\pi_i = Q_{ij}\pi_j$ holds by
    construction, so $\pi$ is the limit distribution. JC69, K80 and HKY85 are special cases.
    Tavaré, *Lectures on Mathematics in the Life Sciences* 17:57 (1986).

    Args:
        exchangeabilities: the six $r_{ij} \ge 0$ in the order AC, AG, AT, CG, CT, GT (only
            ratios matter). The pairs with $r_{ij} > 0$ must connect all four bases.
        freqs: stationary base frequencies $\pi$ in the order A, C, G, T; each > 0, summing to 1
            (within 1e-6; they are not renormalised for you).

    Returns:
        A 4-state `DenseGraph` over `A, C, G, T` with `limit_distribution()` equal to `freqs`.

    Raises:
        ValueError: if `exchangeabilities` is not 6 finite non-negative numbers connecting all
            bases, or `freqs` is not 4 positive numbers summing to 1.

    Example:
        >>> g = gtr([1.0, 4.0, 1.0, 1.0, 4.0, 1.0], freqs=[0.3, 0.2, 0.2, 0.3])
        >>> q, pi = g.rate_matrix(), g.limit_distribution()
        >>> round(float((pi * -q.diagonal()).sum()), 6)  # expected rate at stationarity
        1.0
    """
    pi = _check_freqs(freqs)
    r = _check_exchangeabilities(exchangeabilities)
    exch = torch.zeros(4, 4, dtype=torch.float64)
    for (i, j), r_ij in zip(_DNA_PAIRS, r.tolist(), strict=True):
        exch[i, j] = exch[j, i] = r_ij
    return _unit_rate_graph(pi[:, None] * exch, pi, DNA_ALPHABET)


def protein_graph(matrix: str = "BLOSUM62") -> DenseGraph:
    r"""A 20-state amino-acid rate matrix derived from a BLOSUM log-odds score matrix.

    BLOSUM scores are rounded log-odds of aligned pairs,
    $s_{ij} = \operatorname{round}(2\log_2 \frac{q_{ij}}{p_i p_j})$ for BLOSUM62 (half-bit units;
    Henikoff & Henikoff, *PNAS* 89:10915, 1992). Every score matrix implies target frequencies
    $q_{ij}$ and a background $p$ (Altschul, *J. Mol. Biol.* 219:555, 1991).
    With $M_{ij} = 2^{s_{ij}/2}$:

    1. the background solves $M p = \mathbf 1$, rescaled to sum to 1 (it must be positive);
    2. the target frequencies are $q_{ij} = p_i p_j M_{ij}$, rescaled to sum to 1 (symmetric,
       with marginals $p$);
    3. the rate from $i$ to $j \ne i$ is $Q_{ji} = c\, q_{ij} / p_i$ ($q_{ij} / p_i$ is the
       probability that a given $i$ is aligned to $j$), which satisfies detailed balance with
       stationary distribution $p$;
    4. $c$ makes the expected rate at stationarity 1, $\sum_i p_i(-Q_{ii}) = 1$ (one expected
       substitution per site per unit of $\bar\sigma$).

    The implied background differs slightly from the frequencies Henikoff & Henikoff counted
    (the scores are rounded): leucine is the most frequent residue (about 0.090) and tryptophan
    the rarest (about 0.012).

    Args:
        matrix: name of the score matrix (case-insensitive); known: `"BLOSUM62"`.

    Returns:
        A 20-state `DenseGraph` labelled `ARNDCQEGHILKMFPSTWYV`, limit distribution $p$.

    Raises:
        ValueError: if `matrix` is not a known score matrix name.

    Example:
        >>> g = protein_graph("BLOSUM62")
        >>> g.num_states, "".join(g.labels)
        (20, 'ARNDCQEGHILKMFPSTWYV')
        >>> pi = g.limit_distribution()
        >>> g.labels[int(pi.argmax())], round(float(pi.max()), 3)
        ('L', 0.09)
    """
    key = matrix.upper() if isinstance(matrix, str) else matrix
    if key not in _SCORE_MATRICES:
        raise ValueError(
            f"unknown substitution matrix {matrix!r}; known matrices: {', '.join(_SCORE_MATRICES)}"
        )
    table, bits = _SCORE_MATRICES[key]
    odds = 2.0 ** (bits * torch.tensor(table, dtype=torch.float64))  # M_ij = q_ij / (p_i p_j)
    p = torch.linalg.solve(odds, torch.ones(odds.shape[0], dtype=torch.float64))
    if not bool((p > 0).all()):
        raise ValueError(
            f"score matrix {key} implies a background frequency <= 0 ({p.min().item():.3g}); "
            "it cannot define a substitution model"
        )
    p = p / p.sum()
    target = p[:, None] * odds * p[None, :]
    target = target / target.sum()
    # Q[j, i] = q_ij / p_i: `target` is symmetric, so target[j, i] / p[i] is that rate.
    return _unit_rate_graph(target / p[None, :], p, PROTEIN_ALPHABET)


def _unit_rate_graph(rates: Tensor, pi: Tensor, labels: str) -> DenseGraph:
    """A `DenseGraph` from off-diagonal rates `rates[j, i]` (i to j), scaled to unit mean rate."""
    q = rates.clone()
    q.fill_diagonal_(0.0)
    q = q / (q.sum(dim=0) * pi).sum()  # sum_i pi_i * (total rate out of i) = 1
    q.diagonal().sub_(q.sum(dim=0))
    return DenseGraph(q, labels=labels)


def _check_kappa(kappa: float) -> float:
    k = float(kappa)
    if not math.isfinite(k) or k <= 0:
        raise ValueError(
            f"kappa (the transition/transversion rate ratio) must be finite and > 0, got {kappa}"
        )
    return k


def _check_freqs(freqs: Sequence[float]) -> Tensor:
    pi = torch.as_tensor(freqs, dtype=torch.float64).detach().cpu().reshape(-1)
    if pi.numel() != 4:
        raise ValueError(
            f"freqs must hold 4 base frequencies in the order A, C, G, T, got {pi.numel()}"
        )
    if not bool(torch.isfinite(pi).all()) or bool((pi <= 0).any()):
        raise ValueError(
            "freqs must be finite and > 0 (every base needs a positive frequency), "
            f"got {pi.tolist()}"
        )
    total = float(pi.sum())
    if abs(total - 1.0) > _FREQS_TOL:
        raise ValueError(
            f"freqs must sum to 1 (within {_FREQS_TOL:g}), got a sum of {total:.8g}; they are not "
            "renormalised for you: divide counts by their total first"
        )
    return pi / total  # removes only round-off below the tolerance


def _check_exchangeabilities(exchangeabilities: Sequence[float]) -> Tensor:
    r = torch.as_tensor(exchangeabilities, dtype=torch.float64).detach().cpu().reshape(-1)
    if r.numel() != 6:
        raise ValueError(
            "exchangeabilities must hold 6 rates in the order AC, AG, AT, CG, CT, GT, "
            f"got {r.numel()}"
        )
    if not bool(torch.isfinite(r).all()) or bool((r < 0).any()):
        raise ValueError(f"exchangeabilities must be finite and >= 0, got {r.tolist()}")
    # The chain must be irreducible, or its limit would depend on the start state.
    reached = {0}
    for _ in range(3):  # a path between two of 4 states has at most 3 steps
        for (a, b), r_ab in zip(_DNA_PAIRS, r.tolist(), strict=True):
            if r_ab > 0 and (a in reached or b in reached):
                reached |= {a, b}
    if len(reached) < 4:
        cut = "".join(DNA_ALPHABET[i] for i in sorted(reached))
        raise ValueError(
            f"exchangeabilities {r.tolist()} leave bases {cut} disconnected from the others: make "
            "enough of them > 0 that every base can reach every other"
        )
    return r
