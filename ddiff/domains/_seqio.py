"""Letter tables and Biopython `SeqIO` readers shared by the sequence domains (DNA, protein).

A `LetterTable` sorts every byte into one of three classes: a token of the alphabet (case
folded), an *ambiguity* code (e.g. `N` in DNA) that a reader handles by an explicit policy, or an
invalid letter that always raises. A table may also name a *terminal* letter (the stop `*` of
translated proteins) that is dropped at the very end of a sequence and invalid anywhere else.
Errors name the file, the record and the 1-based position.
"""

from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

import numpy as np
import torch
from torch import Tensor

AmbiguityPolicy = Literal["split", "skip", "error"]
"""How readers treat ambiguity codes: cut the record into fragments, drop it, or raise."""

_AMBIGUOUS = -1
_INVALID = -2


@dataclass(frozen=True)
class SequenceRecord:
    """One sequence read from a file, as tokens.

    Attributes:
        id: the record id; a fragment cut out by `ambiguous="split"` gets
            `"{record_id}:{start}-{end}"` (0-based, end exclusive, as BED and `bedtools getfasta`).
        tokens: `[length]` int64 token ids.
        start: 0-based offset of the first token in the source record (0 unless split).
    """

    id: str
    tokens: Tensor
    start: int = 0


class LetterTable:
    """Maps letters to token ids; sorts the rest into ambiguity codes and invalid letters.

    Args:
        alphabet: the token letters in token order (upper case); lower case is accepted on input.
        ambiguous: letters that are valid in the domain's files but are not tokens.
        name: the domain's name, for error messages (`"DNA"`).
        hints: extra explanations for particular invalid letters or ambiguity codes, shown in
            error messages, e.g. `{"-": "a gap ..."}`.
        terminal: a letter (e.g. `"*"`, a stop) that is dropped when it is the last letter of a
            sequence and is invalid anywhere else; `""` (the default) for none.
    """

    def __init__(
        self,
        alphabet: str,
        ambiguous: str,
        name: str,
        hints: dict[str, str] | None = None,
        terminal: str = "",
    ) -> None:
        if len(terminal) > 1 or (terminal and terminal.upper() in alphabet + ambiguous.upper()):
            raise ValueError(
                f"terminal must be one letter that is neither a token nor an ambiguity code, "
                f"got {terminal!r}"
            )
        self.alphabet = alphabet
        self.ambiguous = ambiguous
        self.name = name
        self.hints = dict(hints or {})
        self.terminal = terminal
        lut = np.full(256, _INVALID, dtype=np.int64)
        for i, letter in enumerate(alphabet):
            lut[ord(letter.upper())] = lut[ord(letter.lower())] = i
        for letter in ambiguous:
            lut[ord(letter.upper())] = lut[ord(letter.lower())] = _AMBIGUOUS
        self._lut = lut

    def classify(self, text: str) -> np.ndarray:
        """Per-letter codes: a token id (>= 0), -1 for an ambiguity code, -2 for invalid."""
        # One byte per character (non-ASCII becomes "?", which is invalid), so indices match.
        raw = np.frombuffer(text.encode("ascii", errors="replace"), dtype=np.uint8)
        return self._lut[raw]

    def strip_terminal(self, text: str) -> str:
        """`text` without its last letter if that is the terminal letter (positions unchanged)."""
        return text[:-1] if self.terminal and text.endswith(self.terminal) else text

    def describe_ambiguous(self, letter: str) -> str:
        """`ambiguity code 'X'`, with the letter's hint if there is one."""
        hint = self.hints.get(letter, "")
        return f"ambiguity code {letter!r}{f' ({hint})' if hint else ''}"

    def describe_invalid(self, letter: str) -> str:
        """Why `letter` is rejected and what the input may contain instead."""
        hint = self.hints.get(letter, "")
        allowed = f"{self.name} input may contain {', '.join(self.alphabet)} (any case)"
        if self.ambiguous:
            allowed += f" and the ambiguity codes {''.join(self.ambiguous)}"
        return f"invalid letter {letter!r}{f' ({hint})' if hint else ''}; {allowed}"

    def encode(self, text: str, where: str = "") -> Tensor:
        """Tokens of `text`; raises on any ambiguity code or invalid letter, naming its position.

        Args:
            text: letters of the alphabet, any case (and the terminal letter, if any, last).
            where: context prepended to error messages (file and record).

        Raises:
            ValueError: at the first letter that is not a token.
        """
        text = self.strip_terminal(text)
        codes = self.classify(text)
        bad = np.flatnonzero(codes < 0)
        if bad.size:
            pos = int(bad[0])
            letter = text[pos]
            prefix = f"{where}, position {pos + 1}" if where else f"position {pos + 1}"
            if codes[pos] == _AMBIGUOUS:
                raise ValueError(
                    f"{prefix}: {self.describe_ambiguous(letter)} cannot be encoded as a "
                    f"{self.name} token (it is never mapped to a letter silently); read files with "
                    f"ambiguous='split' or 'skip', or remove it"
                )
            raise ValueError(f"{prefix}: {self.describe_invalid(letter)}")
        return torch.from_numpy(codes.copy())

    def decode(self, tokens: Tensor | np.ndarray | Sequence[int]) -> str:
        """Upper-case letters of a 1-D sequence of token ids.

        Raises:
            ValueError: if `tokens` is not 1-D or holds an id outside `[0, len(alphabet))`.
        """
        arr = np.asarray(tokens.detach().cpu() if isinstance(tokens, Tensor) else tokens)
        if arr.ndim != 1:
            raise ValueError(
                f"decode takes one sequence (a 1-D array), got shape {tuple(arr.shape)}; "
                f"decode a batch with [decode(row) for row in batch]"
            )
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"decode needs integer token ids, got dtype {arr.dtype}")
        bad = np.flatnonzero((arr < 0) | (arr >= len(self.alphabet)))
        if bad.size:
            pos = int(bad[0])
            raise ValueError(
                f"position {pos + 1}: token id {int(arr[pos])} is not a {self.name} token "
                f"(ids are 0..{len(self.alphabet) - 1} for {self.alphabet})"
            )
        letters = np.frombuffer(self.alphabet.encode("ascii"), dtype=np.uint8)
        return letters[arr.astype(np.int64)].tobytes().decode("ascii")


@contextmanager
def open_text(path: str | Path) -> Iterator[IO[str]]:
    """Open a text file for reading, transparently decompressing a `.gz` suffix."""
    path = Path(path)
    if path.suffix == ".gz":
        with gzip.open(path, "rb") as raw, io.TextIOWrapper(raw, encoding="utf-8") as handle:
            yield handle
    else:
        with open(path, encoding="utf-8") as handle:
            yield handle


def read_records(
    path: str | Path,
    fmt: Literal["fasta", "genbank"],
    table: LetterTable,
    ambiguous: AmbiguityPolicy,
    min_length: int,
) -> list[SequenceRecord]:
    """Read every record of a FASTA or GenBank file with `Bio.SeqIO` and tokenise it.

    See `ddiff.domains.dna.read_fasta` for the policies; this is the alphabet-generic worker.
    """
    from Bio import SeqIO  # biopython is an optional dependency (the `domains` extra)

    if ambiguous not in ("split", "skip", "error"):
        raise ValueError(f"ambiguous must be 'split', 'skip' or 'error', got {ambiguous!r}")
    if min_length < 0:
        raise ValueError(f"min_length must be >= 0, got {min_length}")
    out: list[SequenceRecord] = []
    n_records = 0
    try:
        with open_text(path) as handle:
            for n_records, rec in enumerate(SeqIO.parse(handle, fmt), start=1):
                where = f"{path}: record {rec.id!r} (#{n_records})"
                try:
                    text = str(rec.seq)
                except Exception as err:  # Bio.Seq.UndefinedSequenceError: CONTIG-only records
                    raise ValueError(f"{where}: the record has no sequence ({err})") from err
                out.extend(_tokenise(text, rec.id, where, table, ambiguous, min_length))
    except UnicodeDecodeError as err:
        raise ValueError(
            f"{path}: the (decompressed) file is not UTF-8 text ({err.reason}); is it a {fmt} file?"
        ) from err
    except gzip.BadGzipFile as err:
        raise ValueError(
            f"{path}: the name ends in .gz but the file is not gzip-compressed ({err}); "
            "decompress it properly or remove the .gz from its name"
        ) from err
    except (EOFError, zlib.error) as err:
        raise ValueError(
            f"{path}: the gzip stream is damaged or ends early ({err}): an interrupted download "
            "or copy? Fetch the file again"
        ) from err
    except ValueError as err:
        if str(err).startswith(str(path)):
            raise  # ours: already names the file, record and position
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{path}: not a valid {fmt} file ({first_line})") from err
    if n_records == 0:
        raise ValueError(f"{path}: no {fmt} records found; is it a {fmt} file?")
    return out


def _tokenise(
    text: str,
    record_id: str,
    where: str,
    table: LetterTable,
    ambiguous: AmbiguityPolicy,
    min_length: int,
) -> list[SequenceRecord]:
    text = table.strip_terminal(text)
    codes = table.classify(text)
    invalid = np.flatnonzero(codes == _INVALID)
    if invalid.size:  # invalid letters raise under every policy
        pos = int(invalid[0])
        raise ValueError(f"{where}, position {pos + 1}: {table.describe_invalid(text[pos])}")
    amb = codes == _AMBIGUOUS
    if not amb.any():
        tokens = torch.from_numpy(codes.copy())
        return [SequenceRecord(record_id, tokens)] if len(text) >= min_length else []
    if ambiguous == "error":
        pos = int(np.flatnonzero(amb)[0])
        raise ValueError(
            f"{where}, position {pos + 1}: {table.describe_ambiguous(text[pos])} "
            f"({int(amb.sum())} ambiguous letters in this record); pass ambiguous='split' to cut "
            f"the record into unambiguous fragments or ambiguous='skip' to drop such records"
        )
    if ambiguous == "skip":
        return []
    # "split": maximal runs of tokens between ambiguity codes become fragments.
    edges = np.flatnonzero(np.diff(np.concatenate([[True], amb, [True]]).astype(np.int8)))
    out = []
    for start, end in zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True):
        if end - start >= max(min_length, 1):
            tokens = torch.from_numpy(codes[start:end].copy())
            out.append(SequenceRecord(f"{record_id}:{start}-{end}", tokens, start))
    return out


def write_records(
    path: str | Path,
    sequences: Tensor | Sequence[str | Tensor],
    ids: Sequence[str] | None,
    table: LetterTable,
) -> None:
    """Write sequences as FASTA (upper case, 60 letters per line) with `Bio.SeqIO`.

    The alphabet-generic worker of the domains' `write_fasta` (see `ddiff.domains.protein`).

    Args:
        path: output file (overwritten).
        sequences: a `[N, length]` token tensor, or a sequence of strings / 1-D token tensors
            of any lengths. Strings are validated with `table.encode`.
        ids: one record id per sequence, without whitespace; default `seq0, seq1, ...`.
        table: the domain's letters.

    Raises:
        ValueError: if the number of ids differs from the number of sequences, an id is empty or
            has whitespace, or a sequence is not valid (its index and position named).
    """
    from Bio import SeqIO
    from Bio.Seq import Seq
    from Bio.SeqRecord import SeqRecord

    if isinstance(sequences, Tensor) and sequences.dim() != 2:
        raise ValueError(
            f"a tensor of sequences must be [N, length], got shape {tuple(sequences.shape)}"
        )
    rows = list(sequences.unbind(0)) if isinstance(sequences, Tensor) else list(sequences)
    if ids is None:
        ids = [f"seq{i}" for i in range(len(rows))]
    if len(ids) != len(rows):
        raise ValueError(f"got {len(ids)} ids for {len(rows)} sequences")
    records = []
    for i, (rid, row) in enumerate(zip(ids, rows, strict=True)):
        if not rid or any(c.isspace() for c in rid):
            raise ValueError(
                f"sequence {i}: FASTA ids must be non-empty without whitespace, got {rid!r}"
            )
        try:
            text = table.decode(table.encode(row) if isinstance(row, str) else row)
        except ValueError as err:
            raise ValueError(f"sequence {i} ({rid!r}), {err}") from err
        records.append(SeqRecord(Seq(text), id=rid, description=""))
    with open(path, "w", encoding="ascii", newline="\n") as handle:
        SeqIO.write(records, handle, "fasta")
