r"""DNA: the `ACGT` alphabet, FASTA/GenBank input and output, windows, splits and shipped data.

Tokens follow `ddiff.graphs.substitution.DNA_ALPHABET`: `A=0, C=1, G=2, T=3`, the state order of
the DNA substitution graphs (`jc69`, `k80`, `hky85`, `gtr`). With this order the complement of a
token is `3 - token`.

**Letters.** Input may be upper or lower case (soft-masked repeats are lower case; the mask is
dropped, output is upper case). The IUPAC ambiguity codes `N R Y S W K M B D H V` are valid in
files but are never mapped to a base: readers take an explicit policy, `ambiguous=`

- `"error"` (the default): raise `ValueError` naming the file, record and 1-based position;
- `"split"`: cut the record at every run of ambiguity codes into unambiguous fragments, with ids
  `"{record_id}:{start}-{end}"` (0-based, end exclusive, as `bedtools getfasta`);
- `"skip"`: drop every record that contains an ambiguity code.

Gaps (`-`, `.`), `U`, `X`, `*`, digits and any other letter raise under every policy.

**Splits.** Windows cut from one genome overlap or sit next to each other, so a random split of
windows leaks sequence between training and held-out data. `split_by_coordinate` holds out one
contiguous block of coordinates and keeps a gap (default: one window length) between it and the
training windows.

**Shipped data.** `load_promoters` returns the 150 bp upstream of every predicted gene start of
*E. coli* 536 (RefSeq NC_008253.1), split by coordinate; `load_genes` one in-frame 150 bp
window from inside every predicted gene, split by the same coordinates; `load_labelled` both,
with labels (`LABELS`). See `domains/dna/README.md` in the repository for the source, the build
command, the split rule and checksums.
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from ddiff.domains._seqio import (
    AmbiguityPolicy,
    LetterTable,
    SequenceRecord,
    read_records,
    write_records,
)
from ddiff.graphs.substitution import DNA_ALPHABET

__all__ = [
    "DNA_ALPHABET",
    "IUPAC_AMBIGUITY",
    "LABELS",
    "PROMOTER_LENGTH",
    "AmbiguityPolicy",
    "CoordinateSplit",
    "SequenceRecord",
    "SplitRegions",
    "WindowSplit",
    "coordinate_regions",
    "decode",
    "encode",
    "load_genes",
    "load_labelled",
    "load_promoters",
    "random_reverse_complement",
    "read_fasta",
    "read_genbank",
    "read_pwm_consensus",
    "reverse_complement",
    "split_by_coordinate",
    "split_windows",
    "windows",
    "write_fasta",
]

IUPAC_AMBIGUITY = "NRYSWKMBDHV"
"""IUPAC nucleotide ambiguity codes (Cornish-Bowden, NAR 13:3021, 1985): valid, never a base."""

PROMOTER_LENGTH = 150
"""Length of the shipped promoter windows (bp upstream of each predicted start codon)."""

_TABLE = LetterTable(
    DNA_ALPHABET,
    IUPAC_AMBIGUITY,
    "DNA",
    hints={
        "-": "an alignment gap: remove gaps before reading",
        ".": "an alignment gap: remove gaps before reading",
        "U": "uracil is RNA: convert U to T first",
        "u": "uracil is RNA: convert U to T first",
        "X": "not an IUPAC nucleotide code; use N for unknown bases",
        "x": "not an IUPAC nucleotide code; use N for unknown bases",
        "*": "a stop/translation symbol, not a nucleotide",
    },
)


def encode(seq: str) -> Tensor:
    """Tokens of a DNA string.

    Args:
        seq: letters `A, C, G, T` in any case.

    Returns:
        `[len(seq)]` int64 tokens, `A=0, C=1, G=2, T=3`.

    Raises:
        ValueError: at the first letter that is not a base, with its 1-based position; an
            ambiguity code such as `N` is never mapped to a base (read files with
            `ambiguous="split"` or `"skip"`).

    Example:
        >>> encode("ACgt")
        tensor([0, 1, 2, 3])
        >>> encode("ACNT")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
            ...
        ValueError: position 3: ambiguity code 'N' cannot be encoded as a DNA token ...
    """
    return _TABLE.encode(seq)


def decode(tokens: Tensor | np.ndarray | Sequence[int]) -> str:
    """Upper-case DNA string of a 1-D sequence of tokens.

    Args:
        tokens: `[length]` integer tokens in `0..3` (tensor, array or list).

    Raises:
        ValueError: if `tokens` is not 1-D or holds a value outside `0..3` (position named).

    Example:
        >>> decode(encode("acgt")), decode([3, 0])
        ('ACGT', 'TA')
    """
    return _TABLE.decode(tokens)


def reverse_complement(tokens: Tensor) -> Tensor:
    """Reverse complement along the last axis: `A<->T`, `C<->G`, read backwards.

    Args:
        tokens: `[..., length]` DNA tokens.

    Returns:
        A new tensor of the same shape.

    Example:
        >>> decode(reverse_complement(encode("AACGT")))
        'ACGTT'
    """
    # A=0, C=1, G=2, T=3: the complement is 3 - x.
    return (3 - tokens).flip(-1)


def random_reverse_complement(
    tokens: Tensor, generator: torch.Generator | None = None, p: float = 0.5
) -> Tensor:
    """Augmentation: reverse-complement each sequence independently with probability `p`.

    Both strands of a genome carry the same information; training on both doubles the data and
    makes the model strand-symmetric. Do not use it on data whose orientation is meaningful to
    the task (the shipped promoters are oriented towards their gene).

    Args:
        tokens: `[..., length]` DNA tokens; every leading index is one sequence.
        generator: source of randomness (seed it for reproducible batches).
        p: probability of flipping each sequence, in [0, 1].

    Returns:
        A new tensor of the same shape.

    Raises:
        ValueError: if `p` is not in [0, 1].

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> x = encode("AAAC").expand(4, 4)
        >>> [decode(row) for row in random_reverse_complement(x, g)]
        ['GTTT', 'AAAC', 'GTTT', 'GTTT']
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be a probability in [0, 1], got {p}")
    flip = torch.rand(tokens.shape[:-1], generator=generator, device=tokens.device) < p
    return torch.where(flip.unsqueeze(-1), reverse_complement(tokens), tokens)


def read_fasta(
    path: str | Path, ambiguous: AmbiguityPolicy = "error", min_length: int = 1
) -> list[SequenceRecord]:
    """Read a (possibly gzipped) FASTA file with `Bio.SeqIO` into token sequences.

    Args:
        path: a FASTA file; a `.gz` suffix is decompressed.
        ambiguous: what to do with IUPAC ambiguity codes (`N`, `R`, `Y` ...): `"error"` raises,
            `"split"` cuts records into unambiguous fragments, `"skip"` drops the record.
        min_length: records and fragments shorter than this are dropped.

    Returns:
        One `SequenceRecord` per record (or fragment), in file order.

    Raises:
        ValueError: naming the file, record and 1-based position of the first gap or invalid
            letter (any policy) or ambiguity code (`"error"`), or if the file holds no records.

    Example:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "x.fasta")
        >>> with open(path, "w") as f:
        ...     _ = f.write(">r1\\nACGTNNacg\\n>r2\\nTTTT\\n")
        >>> [(r.id, decode(r.tokens)) for r in read_fasta(path, ambiguous="split")]
        [('r1:0-4', 'ACGT'), ('r1:6-9', 'ACG'), ('r2', 'TTTT')]
        >>> [r.id for r in read_fasta(path, ambiguous="skip")]
        ['r2']
    """
    return read_records(path, "fasta", _TABLE, ambiguous, min_length)


def read_genbank(
    path: str | Path, ambiguous: AmbiguityPolicy = "error", min_length: int = 1
) -> list[SequenceRecord]:
    """Read the sequences of a (possibly gzipped) GenBank file with `Bio.SeqIO`.

    Annotations and features are not kept (parse with `Bio.SeqIO` directly for them).

    Args:
        path: a GenBank flat file; a `.gz` suffix is decompressed.
        ambiguous: the ambiguity-code policy, as in `read_fasta`.
        min_length: records and fragments shorter than this are dropped.

    Returns:
        One `SequenceRecord` per record (or fragment), ids as `Bio.SeqIO` gives them
        (accession.version).

    Raises:
        ValueError: as `read_fasta`, and for records without a sequence (CONTIG-only entries).
    """
    return read_records(path, "genbank", _TABLE, ambiguous, min_length)


def write_fasta(
    path: str | Path,
    sequences: Tensor | Sequence[str | Tensor],
    ids: Sequence[str] | None = None,
) -> None:
    """Write DNA sequences as FASTA (upper case, 60 letters per line) with `Bio.SeqIO`.

    Args:
        path: output file (overwritten).
        sequences: a `[N, length]` token tensor, or a sequence of DNA strings / 1-D token
            tensors of any lengths. Strings are validated like `encode`.
        ids: one record id per sequence, without whitespace; default `seq0, seq1, ...`.

    Raises:
        ValueError: if the number of ids differs from the number of sequences, an id is empty or
            has whitespace, or a sequence is not valid DNA (its index and position named).

    Example:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "x.fasta")
        >>> write_fasta(path, ["acgt", encode("GG")], ids=["a", "b"])
        >>> open(path).read()
        '>a\\nACGT\\n>b\\nGG\\n'
    """
    write_records(path, sequences, ids, _TABLE)


def windows(seq_tokens: Tensor, length: int, stride: int | None = None) -> Tensor:
    """Windows of a long sequence, starting at 0, `stride` apart; an incomplete tail is dropped.

    Args:
        seq_tokens: `[genome_length]` tokens.
        length: window length, >= 1.
        stride: distance between window starts, >= 1 (default `length`: non-overlapping tiles).

    Returns:
        `[num_windows, length]`, a view of `seq_tokens` (clone it before writing into it);
        window `i` starts at `i * stride`.

    Raises:
        ValueError: if `seq_tokens` is not 1-D or `length`/`stride` is not >= 1.

    Example:
        >>> windows(torch.arange(7), 3, stride=2)
        tensor([[0, 1, 2],
                [2, 3, 4],
                [4, 5, 6]])
    """
    stride = length if stride is None else stride
    if seq_tokens.dim() != 1:
        raise ValueError(f"seq_tokens must be 1-D [genome_length], got {tuple(seq_tokens.shape)}")
    if length < 1 or stride < 1:
        raise ValueError(f"length and stride must be >= 1, got length={length}, stride={stride}")
    if seq_tokens.numel() < length:
        return seq_tokens.new_empty((0, length))
    return seq_tokens.unfold(0, length, stride)


@dataclass(frozen=True)
class SplitRegions:
    """Coordinate regions of a genome for a split without leakage (0-based, end exclusive).

    Attributes:
        train: the training regions; a training window must lie inside one of them.
        heldout: the held-out block; a held-out window must lie inside it.
        gap: the minimum distance between the held-out block and any training region.
    """

    train: tuple[tuple[int, int], ...]
    heldout: tuple[int, int]
    gap: int

    def assign(self, start: int, end: int) -> Literal["train", "heldout"] | None:
        """Which side the window `[start, end)` belongs to, or `None` if it straddles or sits
        in a gap (such windows are dropped).

        Example:
            >>> r = coordinate_regions(1000, 10, heldout_fraction=0.1)
            >>> r.assign(0, 10), r.assign(900, 910), r.assign(885, 895)
            ('train', 'heldout', None)
        """
        h0, h1 = self.heldout
        if h0 <= start and end <= h1:
            return "heldout"
        if any(a <= start and end <= b for a, b in self.train):
            return "train"
        return None


def coordinate_regions(
    genome_length: int,
    window_length: int,
    heldout_fraction: float = 0.1,
    heldout_start: int | None = None,
    gap: int | None = None,
    circular: bool = False,
) -> SplitRegions:
    """A contiguous held-out block and the training regions at least `gap` away from it.

    Windows cut from either side never overlap, and no training window is within `gap` bases
    of a held-out one. With `circular=True` (bacterial chromosomes, plasmids) the distance is
    also kept across the origin, so a block that touches one end of the coordinates pushes
    the training region away from the other end.

    Args:
        genome_length: number of bases.
        window_length: length of the windows that will be assigned (the block must hold one).
        heldout_fraction: size of the held-out block as a fraction of the genome, in (0, 1).
        heldout_start: 0-based start of the block; default the last `heldout_fraction` of the
            coordinates.
        gap: minimum distance between the block and the training regions, >= 0 (default
            `window_length`).
        circular: whether the sequence is circular.

    Returns:
        The regions; `SplitRegions.assign` sorts windows into them.

    Raises:
        ValueError: if the block does not fit, cannot hold one window, or leaves no room for a
            training window.

    Example:
        >>> coordinate_regions(1000, 10, heldout_fraction=0.2, heldout_start=400)
        SplitRegions(train=((0, 390), (610, 1000)), heldout=(400, 600), gap=10)
        >>> coordinate_regions(1000, 10, heldout_fraction=0.2, circular=True).train
        ((10, 790),)
    """
    gap = window_length if gap is None else gap
    if window_length < 1 or gap < 0:
        raise ValueError(f"need window_length >= 1 and gap >= 0, got {window_length} and {gap}")
    if not 0.0 < heldout_fraction < 1.0:
        raise ValueError(f"heldout_fraction must be in (0, 1), got {heldout_fraction}")
    size = round(heldout_fraction * genome_length)
    if size < window_length:
        raise ValueError(
            f"the held-out block ({heldout_fraction} of {genome_length} = {size} bases) cannot "
            f"hold a window of {window_length}; raise heldout_fraction"
        )
    h0 = genome_length - size if heldout_start is None else heldout_start
    h1 = h0 + size
    if not 0 <= h0 <= genome_length - size:
        raise ValueError(
            f"heldout_start must be in [0, {genome_length - size}] for a block of {size} "
            f"in a genome of {genome_length}, got {heldout_start}"
        )
    if circular:  # the training arc runs from h1 + gap round the origin to h0 - gap
        s, e = h1 + gap, h0 - gap + genome_length
        pieces = [
            (s, min(e, genome_length)),
            (max(s, genome_length) - genome_length, e - genome_length),
        ]
    else:
        pieces = [(0, h0 - gap), (h1 + gap, genome_length)]
    train = tuple((a, b) for a, b in pieces if b - a >= window_length)
    if not train:
        raise ValueError(
            f"no room for a training window of {window_length} outside the held-out block "
            f"[{h0}, {h1}) with gap {gap} in a genome of {genome_length}"
        )
    return SplitRegions(train=train, heldout=(h0, h1), gap=gap)


@dataclass(frozen=True)
class CoordinateSplit:
    """Training and held-out windows of one genome, split by coordinate.

    Attributes:
        train: `[num_train, length]` training windows.
        heldout: `[num_heldout, length]` held-out windows.
        train_starts: `[num_train]` 0-based genome coordinate of each training window.
        heldout_starts: `[num_heldout]` 0-based coordinate of each held-out window.
        regions: the coordinate regions the windows were cut from.
    """

    train: Tensor
    heldout: Tensor
    train_starts: Tensor
    heldout_starts: Tensor
    regions: SplitRegions


def split_by_coordinate(
    seq_tokens: Tensor,
    length: int,
    stride: int | None = None,
    heldout_fraction: float = 0.1,
    heldout_start: int | None = None,
    gap: int | None = None,
    circular: bool = False,
) -> CoordinateSplit:
    """Cut a genome into training and held-out windows without overlap between the two.

    The held-out windows tile one contiguous block of coordinates (`coordinate_regions`); the
    training windows tile the rest, at least `gap` bases (default one window length) away from
    the block. Windows never cross a region boundary or the origin. Random windows would leak:
    overlapping or adjacent windows share sequence and local composition.

    Args:
        seq_tokens: `[genome_length]` tokens.
        length: window length.
        stride: distance between window starts within a region (default `length`).
        heldout_fraction: size of the held-out block as a fraction of the genome.
        heldout_start: 0-based start of the block (default: the end of the genome).
        gap: minimum distance between training and held-out windows (default `length`).
        circular: keep the gap across the origin too (circular chromosomes).

    Returns:
        The windows, their start coordinates and the regions.

    Raises:
        ValueError: if `seq_tokens` is not 1-D, or as `coordinate_regions`.

    Example:
        >>> g = torch.randint(0, 4, (1000,), generator=torch.Generator().manual_seed(0))
        >>> s = split_by_coordinate(g, 50, heldout_fraction=0.2)
        >>> s.train.shape, s.heldout.shape, s.regions.heldout
        (torch.Size([15, 50]), torch.Size([4, 50]), (800, 1000))
    """
    if seq_tokens.dim() != 1:
        raise ValueError(f"seq_tokens must be 1-D [genome_length], got {tuple(seq_tokens.shape)}")
    stride = length if stride is None else stride
    regions = coordinate_regions(
        seq_tokens.numel(), length, heldout_fraction, heldout_start, gap, circular
    )

    def tile(spans: Sequence[tuple[int, int]]) -> tuple[Tensor, Tensor]:
        parts = [windows(seq_tokens[a:b], length, stride) for a, b in spans]
        starts = [
            a + stride * torch.arange(p.shape[0]) for (a, _), p in zip(spans, parts, strict=True)
        ]
        return torch.cat(parts), torch.cat(starts)

    train, train_starts = tile(regions.train)
    heldout, heldout_starts = tile([regions.heldout])
    return CoordinateSplit(train, heldout, train_starts, heldout_starts, regions)


LABELS = ("promoter", "gene")
"""Label names of `load_labelled`, in label-index order: `0 = promoter`, `1 = gene`."""

_LABEL_FILES = {"promoter": "ecoli_promoters", "gene": "ecoli_genes"}


def _load_shipped(stem: str, split: str) -> Tensor:
    """`[N, 150]` tokens of the shipped file `ddiff/domains/data/{stem}_{split}.fasta`."""
    if split not in ("train", "heldout"):
        raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
    resource = importlib.resources.files("ddiff.domains") / "data" / f"{stem}_{split}.fasta"
    if not resource.is_file():
        raise FileNotFoundError(
            f"shipped data file {stem}_{split}.fasta is missing from ddiff/domains/data; "
            "reinstall ddiff, or rebuild it with domains/dna/build_promoters.py (see "
            "domains/dna/README.md in the repository)"
        )
    with importlib.resources.as_file(resource) as path:
        records = read_fasta(path, ambiguous="error")
    return torch.stack([r.tokens for r in records])


def load_promoters(split: Literal["train", "heldout"]) -> Tensor:
    """The shipped *E. coli* 536 promoter windows: 150 bp upstream of predicted gene starts.

    Each window ends at the base before a start codon predicted by Prodigal (via pyrodigal) and
    is oriented 5'->3' on the gene's strand. The held-out windows come from the last 10% of the
    chromosome coordinates, at least one window length from every training window; identical
    windows (and reverse complements) were removed. Source: NCBI RefSeq NC_008253.1; build
    script, counts and checksums in `domains/dna/` of the repository.

    Args:
        split: `"train"` or `"heldout"`.

    Returns:
        `[N, 150]` int64 tokens (`A=0, C=1, G=2, T=3`).

    Raises:
        ValueError: for an unknown split.
        FileNotFoundError: if the shipped file is missing.

    Example:
        >>> x = load_promoters("heldout")
        >>> x.shape[1], bool(((x >= 0) & (x <= 3)).all())
        (150, True)
    """
    return _load_shipped(_LABEL_FILES["promoter"], split)


def load_genes(split: Literal["train", "heldout"]) -> Tensor:
    """The shipped *E. coli* 536 coding windows: 150 bp from the middle of predicted genes.

    One window per gene predicted by Prodigal (the same predictions as `load_promoters`), on the
    gene's strand, in frame (its offset from the start codon is a multiple of 3, so no window
    holds an in-frame stop codon) and at least 30 bp from both ends of the coding sequence;
    genes shorter than 210 bp have none. Same coordinate split and de-duplication as the
    promoters, done jointly: no window is shared between the two labels or between training and
    held-out data (reverse complements included). Counts and checksums in `domains/dna/` of
    the repository.

    Args:
        split: `"train"` or `"heldout"`.

    Returns:
        `[N, 150]` int64 tokens (`A=0, C=1, G=2, T=3`), codon-aligned: `x[:, 0:3]` is a codon.

    Raises:
        ValueError: for an unknown split.
        FileNotFoundError: if the shipped file is missing.

    Example:
        >>> x = load_genes("heldout")
        >>> x.shape[1], decode(x[0, :3]) in ("TAA", "TAG", "TGA")
        (150, False)
    """
    return _load_shipped(_LABEL_FILES["gene"], split)


def load_labelled(split: Literal["train", "heldout"]) -> tuple[Tensor, Tensor]:
    """The shipped labelled DNA windows: promoters (label 0) and coding sequence (label 1).

    The two labels of `LABELS`, for label-conditioned generation and for judging it: the
    promoter windows of `load_promoters` followed by the gene windows of `load_genes`. Both
    come from one gene prediction on *E. coli* 536 and one coordinate split, so no held-out
    window of either label overlaps a training window of either label.

    Args:
        split: `"train"` or `"heldout"`.

    Returns:
        `(tokens, labels)`: `[N, 150]` int64 tokens (`A=0, C=1, G=2, T=3`), promoters first,
        then genes; `[N]` int64 labels, `0 = "promoter"`, `1 = "gene"` (`LABELS[label]`).

    Raises:
        ValueError: for an unknown split.
        FileNotFoundError: if a shipped file is missing.

    Example:
        >>> x, y = load_labelled("heldout")
        >>> x.shape[1], [LABELS[i] for i in y.unique().tolist()], len(x) == len(y)
        (150, ['promoter', 'gene'], True)
    """
    parts = [_load_shipped(_LABEL_FILES[name], split) for name in LABELS]
    labels = torch.cat([torch.full((len(x),), i, dtype=torch.long) for i, x in enumerate(parts)])
    return torch.cat(parts), labels


@dataclass(frozen=True)
class WindowSplit:
    """Training and held-out windows cut from several records.

    Attributes:
        train: `[num_train, length]` training windows.
        heldout: `[num_heldout, length]` held-out windows.
        split: how they were split: `"records"` or `"coordinates"`.
        usable_records: how many records were at least one window long.
    """

    train: Tensor
    heldout: Tensor
    split: Literal["records", "coordinates"]
    usable_records: int


def split_windows(
    records: Sequence[SequenceRecord],
    length: int,
    *,
    stride: int | None = None,
    split: Literal["auto", "records", "coordinates"] = "auto",
    heldout_fraction: float = 0.1,
    seed: int = 0,
) -> WindowSplit:
    """Cut windows from sequence records and hold some out, with no window on both sides.

    Records shorter than one window are skipped. `split="records"` holds out a seeded random
    `heldout_fraction` of the records (all their windows); `"coordinates"` holds out the last
    `heldout_fraction` of each record's coordinates, one window length away from its training
    windows (`split_by_coordinate`; a record too short for that trains whole); `"auto"` splits
    by records when at least 10 records are usable, else by coordinates (e.g. one genome).

    Args:
        records: the records (`read_fasta`).
        length: window length.
        stride: distance between window starts within a record (default `length`).
        split: `"auto"`, `"records"` or `"coordinates"`.
        heldout_fraction: the share held out, in (0, 1).
        seed: seeds the choice of held-out records.

    Returns:
        The windows and how they were split.

    Raises:
        ValueError: if no record is one window long, a split by records has fewer than two
            usable records, or no held-out window fits.

    Example:
        >>> genome = torch.randint(0, 4, (1000,), generator=torch.Generator().manual_seed(0))
        >>> s = split_windows([SequenceRecord("chr", genome)], 50)
        >>> s.split, s.train.shape, s.heldout.shape
        ('coordinates', torch.Size([17, 50]), torch.Size([2, 50]))
    """
    stride = stride or length
    usable = [r for r in records if r.tokens.numel() >= length]
    if not usable:
        longest = max((r.tokens.numel() for r in records), default=0)
        raise ValueError(
            f"no record is at least length={length} bases long (the longest has {longest})"
        )
    if split == "auto":
        split = "records" if len(usable) >= 10 else "coordinates"
    train: list[Tensor] = []
    heldout: list[Tensor] = []
    if split == "records":
        if len(usable) < 2:
            raise ValueError(
                f"a split by records needs at least 2 records of >= {length} bases; use "
                "split='coordinates'"
            )
        order = np.random.default_rng(seed).permutation(len(usable))
        num_held = min(max(1, round(heldout_fraction * len(usable))), len(usable) - 1)
        held = set(order[:num_held].tolist())
        for i, r in enumerate(usable):
            (heldout if i in held else train).append(windows(r.tokens, length, stride).clone())
    else:
        for r in usable:
            try:
                s = split_by_coordinate(r.tokens, length, stride, heldout_fraction)
            except ValueError:  # too short to hold out a block: all of it trains
                train.append(windows(r.tokens, length, stride).clone())
                continue
            train.append(s.train)
            heldout.append(s.heldout)
    if not heldout:
        raise ValueError(
            "no held-out window: the records are too short for a coordinate split with "
            f"windows of {length}; give more or longer records"
        )
    empty = torch.zeros(0, length, dtype=torch.long)
    x_train = torch.cat(train) if train else empty
    return WindowSplit(x_train, torch.cat(heldout), split, len(usable))


def read_pwm_consensus(path: str | Path) -> str:
    """The consensus of the first position weight matrix in a JASPAR or `.pfm` file.

    Read with `Bio.motifs` (format from the suffix: `.pfm`, `.sites`, else JASPAR).

    Args:
        path: the matrix file.

    Returns:
        The consensus as upper-case `ACGT` letters.

    Raises:
        ValueError: naming the file, if it is missing, unreadable, holds no matrix, or its
            consensus is not `ACGT`.
    """
    from Bio import motifs

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no such file {path}")
    fmt = {".pfm": "pfm", ".sites": "sites"}.get(path.suffix.lower(), "jaspar")
    try:
        with open(path, encoding="utf-8") as handle:
            found = list(motifs.parse(handle, fmt))
    except Exception as err:  # Bio.motifs raises bare Exception (e.g. rows of unequal length)
        raise ValueError(
            f"{path} is not a {fmt.upper()} matrix file ({' '.join(str(err).split())})"
        ) from err
    if not found:
        raise ValueError(f"{path} holds no motif")
    consensus = str(found[0].consensus).upper()
    if not consensus or set(consensus) - set(DNA_ALPHABET):
        raise ValueError(f"{path}: the motif's consensus {consensus!r} is not ACGT")
    return consensus
