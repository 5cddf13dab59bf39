r"""Proteins: the 20 canonical amino acids, FASTA input and output, padding and shipped data.

Tokens follow `ddiff.graphs.substitution.PROTEIN_ALPHABET = "ARNDCQEGHILKMFPSTWYV"`: `A=0,
R=1, ..., V=19`, the state order of the protein substitution graphs (BLOSUM-derived) and of the
NCBI matrices.

**Letters.** Input may be upper or lower case; output is upper case. Letters that are valid in
protein files but are not one of the 20 states are never mapped to a residue silently; readers
take an explicit policy, `ambiguous=`, for all of them (`AMBIGUOUS_RESIDUES`):

- `X` (unknown), `B` (D or N), `Z` (E or Q), `J` (I or L): IUPAC ambiguity codes;
- `U` (selenocysteine) and `O` (pyrrolysine): real, genetically encoded residues, but not among
  the 20 states. Mapping them to `C` and `K` (as some tools do) changes the protein, so they
  are treated like ambiguity codes.

The policies are those of the DNA readers:

- `"error"` (the default): raise `ValueError` naming the file, record and 1-based position;
- `"split"`: cut the record at every run of such letters into fragments, with ids
  `"{record_id}:{start}-{end}"` (0-based, end exclusive). For proteins a fragment is rarely a
  meaningful sequence; prefer `"skip"` for training data;
- `"skip"`: drop every record that contains one.

A stop `*` as the **last** letter of a sequence (translated coding sequences end with one) is
dropped, by `encode` and by the readers alike; a `*` anywhere else raises under every policy (a
translated pseudogene or frame shift is not a protein). Alignment gaps `-` and `.` raise under
every policy: aligned input (A2M/A3M, aligned FASTA, Stockholm) is not supported; remove the gaps
and read the unaligned sequences. Digits and every other letter raise too.

**Variable lengths.** Proteins have different lengths. `ddiff.data.TokenDataset` (which the
training data module `ddiff.training.TokenDataModule` serves) batches them by padding every sequence at the end to a fixed length with a pad token that the
model learns as data (so it also learns where a protein ends); use `PAD_TOKEN` (20, one past the
residues) with a graph of `num_tokens = 21` data tokens, e.g.
`TokenDataModule(load_uniprot("train"), load_uniprot("heldout"), length=MAX_LENGTH,
pad_token=PAD_TOKEN, num_tokens=PAD_TOKEN + 1, batch_size=...)` and `AbsorbingGraph(21)`.
`strip_padding` turns sampled rows back into proteins; `pad_sequences` pads without lightning.

**Shipped data.** `load_uniprot` returns a small UniProtKB sample (CC BY 4.0, the UniProt
Consortium) filtered to canonical letters and lengths 50-256, de-duplicated, and split by
clusters at 50% identity so that no held-out protein is a close homolog of a training protein;
see `domains/protein/README.md` in the repository for the source, the build command, the rules
and checksums.
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Sequence
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
from ddiff.graphs.substitution import PROTEIN_ALPHABET

__all__ = [
    "AMBIGUOUS_RESIDUES",
    "MAX_LENGTH",
    "MIN_LENGTH",
    "PAD_TOKEN",
    "PROTEIN_ALPHABET",
    "AmbiguityPolicy",
    "SequenceRecord",
    "decode",
    "encode",
    "load_uniprot",
    "pad_sequences",
    "read_fasta",
    "strip_padding",
    "write_fasta",
]

AMBIGUOUS_RESIDUES = "XBZJUO"
"""Letters valid in protein files that are not one of the 20 states: the IUPAC ambiguity codes
`X B Z J` and the non-canonical residues `U` (selenocysteine) and `O` (pyrrolysine)."""

PAD_TOKEN = len(PROTEIN_ALPHABET)
"""The token (20) that pads variable-length proteins to a fixed length: one past the residues."""

MIN_LENGTH = 50
"""Shortest protein in the shipped UniProt sample."""

MAX_LENGTH = 256
"""Longest protein in the shipped UniProt sample (the padded length to train with)."""

_GAP = (
    "an alignment gap: aligned input (A2M/A3M, aligned FASTA, Stockholm) is not supported; "
    "remove the gaps and read the unaligned sequences"
)
_HINTS = {
    "X": "unknown residue",
    "B": "Asx: D or N",
    "Z": "Glx: E or Q",
    "J": "Xle: I or L",
    "U": "selenocysteine: not one of the 20 states, never mapped to C",
    "O": "pyrrolysine: not one of the 20 states, never mapped to K",
}
_TABLE = LetterTable(
    PROTEIN_ALPHABET,
    AMBIGUOUS_RESIDUES,
    "protein",
    hints={
        **_HINTS,
        **{letter.lower(): hint for letter, hint in _HINTS.items()},
        "-": _GAP,
        ".": _GAP,
        "*": "a stop inside the sequence; only a final stop is accepted (and dropped)",
    },
    terminal="*",
)


def encode(seq: str) -> Tensor:
    """Tokens of a protein string.

    Args:
        seq: one-letter amino-acid codes of the 20 canonical residues, any case; a final stop
            `*` is dropped.

    Returns:
        `[len(seq)]` int64 tokens in `PROTEIN_ALPHABET` order (`A=0, R=1, ..., V=19`).

    Raises:
        ValueError: at the first letter that is not a canonical residue, with its 1-based
            position; `X B Z J U O` are never mapped to a residue (read files with
            `ambiguous="skip"` or `"split"`), an internal `*` and gaps always raise.

    Example:
        >>> encode("ARNdcq")
        tensor([0, 1, 2, 3, 4, 5])
        >>> encode("MKV*")  # a final stop is dropped
        tensor([12, 11, 19])
        >>> encode("MKU")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
            ...
        ValueError: position 3: ambiguity code 'U' (selenocysteine: ... never mapped to C) ...
    """
    return _TABLE.encode(seq)


def decode(tokens: Tensor | np.ndarray | Sequence[int]) -> str:
    """Upper-case protein string of a 1-D sequence of tokens.

    Args:
        tokens: `[length]` integer tokens in `0..19` (tensor, array or list). Strip padding
            first (`strip_padding`): `PAD_TOKEN` is not a residue.

    Raises:
        ValueError: if `tokens` is not 1-D or holds a value outside `0..19` (position named).

    Example:
        >>> decode(encode("mkv")), decode([19, 0])
        ('MKV', 'VA')
    """
    return _TABLE.decode(tokens)


def read_fasta(
    path: str | Path, ambiguous: AmbiguityPolicy = "error", min_length: int = 1
) -> list[SequenceRecord]:
    """Read a (possibly gzipped) protein FASTA file with `Bio.SeqIO` into token sequences.

    Args:
        path: a FASTA file; a `.gz` suffix is decompressed.
        ambiguous: what to do with `X B Z J U O`: `"error"` raises, `"skip"` drops the record,
            `"split"` cuts it into fragments without them.
        min_length: records and fragments shorter than this are dropped (after a final stop
            is removed).

    Returns:
        One `SequenceRecord` per record (or fragment), in file order; ids as `Bio.SeqIO` gives
        them (the header up to the first space, e.g. `sp|P69905|HBA_HUMAN`).

    Raises:
        ValueError: naming the file, record and 1-based position of the first gap, internal
            stop or invalid letter (any policy) or ambiguous residue (`"error"`), or if the
            file holds no records.

    Example:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "x.fasta")
        >>> with open(path, "w") as f:
        ...     _ = f.write(">p1\\nMKVLA*\\n>p2 has X\\nMKXLA\\n")
        >>> [(r.id, decode(r.tokens)) for r in read_fasta(path, ambiguous="skip")]
        [('p1', 'MKVLA')]
        >>> read_fasta(path)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
            ...
        ValueError: ...x.fasta: record 'p2' (#2), position 3: ambiguity code 'X' (unknown residue) ...
    """
    return read_records(path, "fasta", _TABLE, ambiguous, min_length)


def write_fasta(
    path: str | Path,
    sequences: Tensor | Sequence[str | Tensor],
    ids: Sequence[str] | None = None,
) -> None:
    """Write proteins as FASTA (upper case, 60 letters per line) with `Bio.SeqIO`.

    Args:
        path: output file (overwritten).
        sequences: a `[N, length]` token tensor, or a sequence of protein strings / 1-D token
            tensors of any lengths (strip padding first). Strings are validated like `encode`
            (a final `*` is dropped).
        ids: one record id per sequence, without whitespace; default `seq0, seq1, ...`.

    Raises:
        ValueError: if the number of ids differs from the number of sequences, an id is empty or
            has whitespace, or a sequence is not a canonical protein (its index and position
            named).

    Example:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "x.fasta")
        >>> write_fasta(path, ["mkv*", encode("GG")], ids=["a", "b"])
        >>> open(path).read()
        '>a\\nMKV\\n>b\\nGG\\n'
    """
    write_records(path, sequences, ids, _TABLE)


def pad_sequences(
    sequences: Sequence[Tensor], length: int = MAX_LENGTH, pad_token: int = PAD_TOKEN
) -> Tensor:
    """Pad variable-length token sequences at the end to one length.

    This is the layout `ddiff.data.TokenDataset` gives the training data module (it pads the
    same way); use it to score or condition on proteins without the training package.

    Args:
        sequences: 1-D token tensors, each at most `length` long.
        length: the padded length.
        pad_token: the padding token (default `PAD_TOKEN`).

    Returns:
        `[len(sequences), length]` int64 tokens.

    Raises:
        ValueError: if a sequence is not 1-D or is longer than `length` (its index named).

    Example:
        >>> pad_sequences([encode("MK"), encode("MKV")], length=4)
        tensor([[12, 11, 20, 20],
                [12, 11, 19, 20]])
    """
    out = torch.full((len(sequences), length), pad_token, dtype=torch.long)
    for i, seq in enumerate(sequences):
        if seq.dim() != 1:
            raise ValueError(f"sequence {i}: need a 1-D token tensor, got {tuple(seq.shape)}")
        if seq.numel() > length:
            raise ValueError(
                f"sequence {i} has {seq.numel()} tokens, more than length = {length}; "
                f"crop it or raise length"
            )
        out[i, : seq.numel()] = seq
    return out


def strip_padding(tokens: Tensor, pad_token: int = PAD_TOKEN) -> list[Tensor]:
    """Cut each row at its first pad token: sampled padded rows back to proteins.

    A model trained on end-padded data puts pads only at the end of well-formed samples; any
    residue after the first pad is dropped with it.

    Args:
        tokens: `[N, length]` tokens (e.g. samples of a model trained with `PAD_TOKEN`).
        pad_token: the padding token.

    Returns:
        `N` 1-D int64 tensors (views are not returned: each is a copy), possibly empty.

    Raises:
        ValueError: if `tokens` is not 2-D.

    Example:
        >>> rows = strip_padding(torch.tensor([[12, 11, 20, 3], [0, 1, 2, 3]]))
        >>> [decode(r) for r in rows]
        ['MK', 'ARND']
    """
    if tokens.dim() != 2:
        raise ValueError(f"tokens must be [N, length], got shape {tuple(tokens.shape)}")
    is_pad = tokens == pad_token
    # first pad per row, or the row length when there is none
    ends = torch.where(is_pad.any(dim=1), is_pad.int().argmax(dim=1), tokens.shape[1])
    return [row[:end].long().clone() for row, end in zip(tokens, ends.tolist(), strict=True)]


def load_uniprot(split: Literal["train", "heldout"]) -> list[Tensor]:
    """The shipped UniProtKB sample: proteins of 50-256 canonical residues, de-duplicated.

    Source: 20,000 UniProtKB entries (Swiss-Prot and TrEMBL) distributed as the example data of
    MMseqs2; UniProt, CC BY 4.0, attribution "UniProt Consortium". Records with a letter
    outside the 20 canonical residues are dropped and identical sequences kept once. Proteins
    are clustered by single linkage at 50% local identity (of the shorter protein) and ~10% of
    the clusters are held out, so every held-out protein has `nearest_identity` < 0.5 to the
    training set. 5,783 training and 655 held-out proteins. Build script, counts and
    checksums: `domains/protein/` in the repository.

    Args:
        split: `"train"` or `"heldout"`.

    Returns:
        One `[length]` int64 tensor per protein (`PROTEIN_ALPHABET` order), in file order.

    Raises:
        ValueError: for an unknown split.

    Example:
        >>> x = load_uniprot("heldout")
        >>> min(len(s) for s in x) >= MIN_LENGTH, max(len(s) for s in x) <= MAX_LENGTH
        (True, True)
    """
    if split not in ("train", "heldout"):
        raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
    resource = importlib.resources.files("ddiff.domains") / "data" / f"uniprot_{split}.fasta.gz"
    with importlib.resources.as_file(resource) as path:
        records = read_fasta(path, ambiguous="error")
    return [r.tokens for r in records]
