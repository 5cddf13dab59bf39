r"""Sample-quality metrics for DNA: k-mer spectra, GC content, promoter PWM hits, memorisation.

A position weight matrix (PWM: `Bio.motifs.Motif` in Biopython) scores every window of a
sequence; in ddiff a *motif* is a fixed run of tokens (`ddiff.conditioning.Motif`), so the
scans here are named after the matrices: `promoter_pwms`, `pwm_hit_rates`.

Every function takes collections of sequences: a `[N, length]` token tensor, or a list of DNA
strings or 1-D token tensors (any lengths). Compare generated samples with *held-out* data
(never the training set) for the distribution metrics, and with the training set for
`copied_kmer_rate`. The likelihood bound in bits per base is `ddiff.losses.likelihood_bound`
(one token is one base).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from ddiff._checks import renamed_keywords, warn_renamed
from ddiff.domains.dna import decode, encode
from ddiff.eval._common import (
    Sequences,
    js_divergence_bits,
    packed_kmers,
    token_arrays,
)

if TYPE_CHECKING:
    from Bio.motifs import Motif as PWM  # Biopython's name for a position weight matrix

__all__ = [
    "PROMOTER_CONSENSUS",
    "GCContent",
    "Sequences",
    "copied_kmer_rate",
    "gc_content",
    "kmer_counts",
    "kmer_js_divergence",
    "motif_rates",
    "promoter_motifs",
    "promoter_pwms",
    "pwm_hit_rates",
]


PROMOTER_CONSENSUS: dict[str, str] = {
    "sigma70_-35": "TTGACA",
    "sigma70_-10": "TATAAT",
    "shine_dalgarno": "AGGAGG",
}
"""Consensus sites of *E. coli* sigma-70 promoters (Harley & Reynolds, NAR 15:2343, 1987) and
the Shine-Dalgarno ribosome-binding site (Shine & Dalgarno, PNAS 71:1342, 1974)."""

_MAX_PACKED_K = 31  # 4^31 < 2^63: a k-mer packs exactly into one int64


def _as_arrays(seqs: Sequences) -> list[np.ndarray]:
    """Token arrays (int64, values 0..3) of a collection of sequences, validated."""
    return token_arrays(seqs, encode, 4, "DNA")


def _packed_kmers(arrays: list[np.ndarray], k: int, both_strands: bool) -> list[np.ndarray]:
    """Per sequence, its k-mers packed base-4 into int64 (a perfect hash for k <= 31)."""
    out = []
    for a in arrays:
        strands = [a, 3 - a[::-1]] if both_strands else [a]
        out.append(np.concatenate([packed_kmers(strand, k, 4) for strand in strands]))
    return out


def _check_k(k: int, upper: int) -> None:
    if not 1 <= k <= upper:
        raise ValueError(f"k must be in [1, {upper}], got {k}")


def kmer_counts(seqs: Sequences, k: int, both_strands: bool = False) -> np.ndarray:
    """Counts of every k-mer, indexed by its base-4 value (`AA..A = 0`, `TT..T = 4^k - 1`).

    Args:
        seqs: the sequences; a sequence shorter than `k` contributes nothing.
        k: k-mer length, in [1, 12] (the result has `4^k` entries).
        both_strands: also count the k-mers of the reverse complements.

    Returns:
        `[4^k]` int64 counts.

    Example:
        >>> kmer_counts(["ACGT"], 2).nonzero()[0].tolist()  # AC, CG, GT
        [1, 6, 11]
    """
    _check_k(k, 12)
    codes = _packed_kmers(_as_arrays(seqs), k, both_strands)
    return np.bincount(np.concatenate(codes), minlength=4**k) if codes else np.zeros(4**k, np.int64)


def kmer_js_divergence(
    samples: Sequences, reference: Sequences, k: int, both_strands: bool = False
) -> float:
    r"""Jensen-Shannon divergence between the k-mer spectra of two sets, in bits.

    With $P$ and $Q$ the k-mer frequencies pooled over each set and $M = (P + Q)/2$,

    $$\mathrm{JS}(P, Q) = \tfrac12 \mathrm{KL}(P \| M) + \tfrac12 \mathrm{KL}(Q \| M),$$

    with base-2 logarithms and no pseudo-counts ($0 \log 0 = 0$), so $0 \le \mathrm{JS} \le 1$,
    0 exactly when the spectra are equal (Lin, IEEE Trans. Inf. Theory 37:145, 1991). Use
    k = 3..6 against held-out data. The estimate is biased upwards for small sets (unseen
    k-mers): compare models on sets of equal size, and read it next to the JS of the training
    set to the held-out set.

    Args:
        samples: generated sequences.
        reference: held-out sequences.
        k: k-mer length, in [1, 12].
        both_strands: pool the reverse complements too. Off by default: oriented data (promoters
            are oriented towards their gene) has strand-specific composition worth matching.

    Returns:
        The divergence in bits, in [0, 1].

    Raises:
        ValueError: if a set has no k-mer (all its sequences are shorter than `k`).

    Example:
        >>> import torch
        >>> g = torch.Generator().manual_seed(0)
        >>> x = torch.randint(0, 4, (200, 50), generator=g)
        >>> kmer_js_divergence(x, x, 3)
        0.0
        >>> round(kmer_js_divergence(x, torch.zeros(10, 50, dtype=torch.long), 3), 3)
        0.939
    """
    p, q = kmer_counts(samples, k, both_strands), kmer_counts(reference, k, both_strands)
    return js_divergence_bits(p, q, f"{k}-mers")


class GCContent(NamedTuple):
    """Mean and standard deviation of the per-sequence GC fraction."""

    mean: float
    std: float


def gc_content(seqs: Sequences) -> GCContent:
    r"""GC content: the fraction of `G` and `C` in each sequence, summarised over the set.

    Each sequence gets $\mathrm{GC} = (n_G + n_C) / n$; the result is the mean and the
    population standard deviation ($\mathrm{ddof} = 0$) of these fractions, so sets whose
    pooled GC agrees but whose spread differs (a model that makes every sequence average) are
    told apart.

    Args:
        seqs: the sequences, each non-empty.

    Returns:
        `GCContent(mean, std)`.

    Raises:
        ValueError: if the set or one of its sequences is empty.

    Example:
        >>> gc_content(["GGCC"])
        GCContent(mean=1.0, std=0.0)
        >>> gc_content(["GGCC", "AATT"])
        GCContent(mean=0.5, std=0.5)
    """
    arrays = _as_arrays(seqs)
    if not arrays:
        raise ValueError("gc_content needs at least one sequence")
    fractions = []
    for i, a in enumerate(arrays):
        if a.size == 0:
            raise ValueError(f"sequence {i} is empty")
        fractions.append(np.mean((a == 1) | (a == 2)))  # C = 1, G = 2
    f = np.asarray(fractions, dtype=np.float64)
    return GCContent(float(f.mean()), float(f.std()))


def promoter_pwms(pseudocount: float = 0.5) -> dict[str, PWM]:
    r"""PWMs for the sigma-70 -35 and -10 boxes and the Shine-Dalgarno site.

    Prokaryotic promoter elements are not in JASPAR; each motif is built with
    `Bio.motifs.create` from its consensus instance (`PROMOTER_CONSENSUS`) and `pseudocount`
    added to every letter, against a uniform background. With the default 0.5 a consensus
    letter scores $\log_2(0.5/0.25) = +1$ bit and any other letter
    $\log_2((1/6)/0.25) \approx -0.585$ bits, so a 6-mer scores from -3.51 to 6 bits and each
    mismatch costs 1.585 bits.

    Args:
        pseudocount: added to each letter count, > 0.

    Returns:
        Name -> `Bio.motifs.Motif` (names as in `PROMOTER_CONSENSUS`).

    Example:
        >>> m = promoter_pwms()["sigma70_-10"]
        >>> str(m.consensus), round(m.pssm.max, 3), round(m.pssm.min, 3)
        ('TATAAT', 6.0, -3.51)
    """
    from Bio import motifs
    from Bio.Seq import Seq

    if pseudocount <= 0:
        raise ValueError(f"pseudocount must be > 0, got {pseudocount}")
    out = {}
    for name, consensus in PROMOTER_CONSENSUS.items():
        m = motifs.create([Seq(consensus)], alphabet="ACGT")
        m.pseudocounts = pseudocount
        m.background = None  # uniform
        m.name = name
        out[name] = m
    return out


@renamed_keywords(motifs="pwms")
def pwm_hit_rates(
    seqs: Sequences,
    pwms: Mapping[str, PWM] | None = None,
    threshold: float = 0.8,
    region: slice | None = None,
) -> dict[str, float]:
    r"""Fraction of sequences with at least one PWM hit on the forward strand, per PWM.

    Each sequence is scanned with the PWM's position-specific scoring matrix
    (`Bio.motifs` `pssm.calculate`, forward strand only: the shipped promoters are oriented
    towards their gene). A window is a hit when its log-odds score $s$ reaches the relative
    threshold $\tau$: $(s - s_{\min}) / (s_{\max} - s_{\min}) \ge \tau$, the usual relative-score
    convention of PWM scanners. For the consensus PWMs of `promoter_pwms` the default
    $\tau = 0.8$ accepts the consensus and every one-mismatch variant (one mismatch scores
    0.833, two 0.667) and $\tau = 1$ only the exact consensus; exact hexamers are rare (a few
    percent of 150 bp windows), so the default gives rates with a much smaller sampling error.
    Compare the rates of samples with those of held-out data.

    Where a site sits matters as much as whether it occurs: in the shipped promoter windows the
    Shine-Dalgarno site is concentrated in the last 20 bases (`region=slice(-20, None)`),
    while over whole windows A/T-rich composition alone produces -10-like hexamers.

    Args:
        seqs: the sequences; one shorter than a PWM (or its region) has no hit for it.
        pwms: name -> `Bio.motifs.Motif` (default `promoter_pwms()`; formerly `motifs`).
        threshold: relative score threshold, in [0, 1].
        region: only occurrences lying entirely inside `seq[region]` count (Python slice
            semantics: `slice(-20, None)` is the last 20 bases); default the whole sequence.

    Returns:
        Name -> fraction of sequences with a hit, in [0, 1].

    Raises:
        ValueError: if `threshold` is not in [0, 1] or the set is empty.

    Example:
        >>> pwm_hit_rates(["GGTATAATGG", "GGTATGATGG", "CCCCCCCCCC", "TTGACACCCC"])
        {'sigma70_-35': 0.25, 'sigma70_-10': 0.5, 'shine_dalgarno': 0.0}
        >>> rates = pwm_hit_rates(["GGTATAATGG", "GGTATGATGG", "CCCCCCCCCC", "TTGACACCCC"], threshold=1.0)
        >>> rates["sigma70_-10"]
        0.25
        >>> pwm_hit_rates(["GGTATAATGG", "TATAATGGGG"], region=slice(2, None))["sigma70_-10"]
        0.5
    """
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be a relative score in [0, 1], got {threshold}")
    texts = [decode(a) for a in _as_arrays(seqs)]
    if region is not None:
        texts = [text[region] for text in texts]
    if not texts:
        raise ValueError("pwm_hit_rates needs at least one sequence")
    pwms = promoter_pwms() if pwms is None else pwms
    rates = {}
    for name, pwm in pwms.items():
        pssm = pwm.pssm
        cutoff = pssm.min + threshold * (pssm.max - pssm.min)
        tol = 1e-4 * max(1.0, abs(pssm.max))  # `calculate` returns float32 scores
        hits = 0
        for text in texts:
            if len(text) >= pwm.length:
                scores = np.atleast_1d(pssm.calculate(text))
                hits += bool(np.any(scores >= cutoff - tol))
        rates[name] = hits / len(texts)
    return rates


def promoter_motifs(pseudocount: float = 0.5) -> dict[str, PWM]:
    """Deprecated name of `promoter_pwms` (a ddiff motif is a fixed run of tokens)."""
    warn_renamed("promoter_motifs", "promoter_pwms")
    return promoter_pwms(pseudocount)


def motif_rates(seqs: Sequences, *args: Any, **kwargs: Any) -> dict[str, float]:
    """Deprecated name of `pwm_hit_rates` (a ddiff motif is a fixed run of tokens)."""
    warn_renamed("motif_rates", "pwm_hit_rates")
    return pwm_hit_rates(seqs, *args, **kwargs)


def copied_kmer_rate(
    samples: Sequences, train: Sequences, k: int = 20, both_strands: bool = True
) -> float:
    """Memorisation: the fraction of samples that contain any k-mer of the training set.

    A sample containing a training substring of length >= k contains a training k-mer, so this
    is the rate of samples sharing a >= k-mer with the training data. At k = 20 a chance match
    is negligible for 150 bp samples (a few thousand training windows hold ~10^6 of the
    4^20 ~ 10^12 possible 20-mers), so a high rate means copying. k-mers are packed exactly
    into int64 (an exact hash: no collisions) and looked up by binary search in the sorted
    training k-mers.

    Args:
        samples: generated sequences; one shorter than `k` counts as not copied.
        train: the training sequences.
        k: minimum length of a copied substring, in [1, 31].
        both_strands: a copy of the reverse complement of training data counts too. On by
            default, unlike the distribution metrics: a reverse-complemented copy is still a
            copy (and reverse-complement augmentation teaches the model both strands).

    Returns:
        The fraction of samples with a copied k-mer, in [0, 1].

    Raises:
        ValueError: if `k` is out of range or there are no samples.

    Example:
        >>> import torch
        >>> g = torch.Generator().manual_seed(0)
        >>> train = torch.randint(0, 4, (50, 150), generator=g)
        >>> fresh = torch.randint(0, 4, (50, 150), generator=g)
        >>> copied_kmer_rate(train[:10], train), copied_kmer_rate(fresh, train)
        (1.0, 0.0)
    """
    _check_k(k, _MAX_PACKED_K)
    sample_codes = _packed_kmers(_as_arrays(samples), k, both_strands=False)
    if not sample_codes:
        raise ValueError("copied_kmer_rate needs at least one sample")
    train_codes = _packed_kmers(_as_arrays(train), k, both_strands)
    known = np.sort(np.concatenate([np.empty(0, np.int64), *train_codes]))
    lengths = np.array([c.size for c in sample_codes])
    flat = np.concatenate(sample_codes)
    if known.size:  # binary search in the sorted training k-mers
        found = known[np.minimum(np.searchsorted(known, flat), known.size - 1)] == flat
    else:
        found = np.zeros(flat.size, dtype=bool)
    owner = np.repeat(np.arange(lengths.size), lengths)  # sample index of every k-mer
    copied = np.bincount(owner[found], minlength=lengths.size) > 0
    return float(np.mean(copied))
