r"""Text: a byte-level BPE tokenizer, documents, training windows and the shipped SOTU corpus.

**Tokenizer.** Text is tokenized by a byte-level BPE (Sennrich et al., ACL 2016; byte level as in
GPT-2, Radford et al. 2019) trained offline with Hugging Face `tokenizers` and shipped as a
`tokenizer.json` file (`load_tokenizer`; nothing is fetched from a hub). The text is first
encoded as UTF-8 and each byte is a base token, so every Unicode string has tokens and
`decode(encode(s)) == s` exactly: no normalisation, no unknown token, whitespace and case
kept. The shipped tokenizer (`VOCAB_SIZE = 2048` tokens) was trained on the training split of
the State of the Union corpus below; see `domains/text/README.md` in the repository.

**One special token**, `EOT = "<|endoftext|>"` (id `EOT_ID = 0`), ends a document when
documents are packed into one stream (`pack_windows`); it can also serve as the padding token
of `ddiff.data.TokenDataset`. It is never produced by `encode`: the literal text
`"<|endoftext|>"` inside a document is encoded as ordinary bytes, so that a document cannot
forge a boundary. `decode` renders the token as its literal text unless
`skip_special_tokens=True`.

**Documents and windows.** The addresses are long (2,000 to 55,000 tokens), so a model is
trained on fixed-length windows, not on whole padded documents: `pack_windows` concatenates
documents, each followed by `EOT`, and cuts the stream into windows (the incomplete tail is
dropped). The windows are fixed-length data (no padding):

```python
from ddiff.data import TokenDataset

train = TokenDataset(load_sotu_windows("train", 256), num_tokens=VOCAB_SIZE, name="train")
```

and the training data module (`ddiff.training.TokenDataModule`) takes the same arrays:
`TokenDataModule(load_sotu_windows("train", 256), load_sotu_windows("heldout", 256),
batch_size=32, num_tokens=VOCAB_SIZE)`.

An absorbing graph over this vocabulary has `VOCAB_SIZE + 1` states (the graph adds MASK;
the tokenizer does not).

**Bits per character.** `ddiff.losses.likelihood_bound` gives nats per sequence (and per
token). Per character, as the text-compression literature reports,

$$\mathrm{bpc} = \frac{\sum \text{bound (nats)}}{\ln 2 \cdot \#\text{characters}},$$

where the characters are the Unicode code points of the decoded scored tokens, special tokens
excluded (`count_characters`): the cost of the `EOT` tokens is part of the bound, as an
end-of-sequence token is part of a language model's perplexity per word. bpc = bits per token
$\times$ tokens / characters, so it compares models with different tokenizers.

**Shipped data.** `load_sotu` returns the post-1945 State of the Union addresses (public
domain; 78 addresses, 1946-2021), split by address: every 10th address in file-name order
(year, then president) is held out. Source, build command, rules and checksums:
`domains/text/README.md` in the repository.
"""

from __future__ import annotations

import functools
import gzip
import importlib.resources
import json
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from tokenizers import Tokenizer
from torch import Tensor

__all__ = [
    "EOT",
    "EOT_ID",
    "TOKENIZER_FILE",
    "VOCAB_SIZE",
    "SotuAddress",
    "bits_per_character",
    "count_characters",
    "decode",
    "encode",
    "load_sotu",
    "load_sotu_tokens",
    "load_sotu_windows",
    "load_tokenizer",
    "pack_windows",
    "read_addresses",
]

EOT = "<|endoftext|>"
"""The end-of-document token of the shipped tokenizer (GPT-2's name for it)."""

EOT_ID = 0
"""Token id of `EOT` in the shipped tokenizer."""

VOCAB_SIZE = 2048
"""Number of tokens of the shipped tokenizer: `EOT`, the 256 bytes and 1,791 merges."""

TOKENIZER_FILE = "sotu_tokenizer.json"
"""File name of the shipped tokenizer in `ddiff/domains/data/`."""

Split = Literal["train", "heldout"]

# Spaces, tabs, newlines, non-ASCII letters and punctuation, 4-byte UTF-8, a control character
# and the special token's literal text: a tokenizer that round-trips this is byte-level, has no
# normaliser and does not add a prefix space.
_PROBE = "Hello,  World!\n\tÜnïcödé — “quotes” 🙂 <|endoftext|> \x00 end"
_FIELDS = {"id": str, "year": int, "president": str, "party": str, "text": str}


@dataclass(frozen=True)
class SotuAddress:
    """One State of the Union address.

    Attributes:
        id: the source file's stem, `"{year}_{president}_{party letter}"`, e.g.
            `"1954_dwight_d_eisenhower_r"` (unique; two presidents spoke in 1953 and 1961).
        year: year of the address.
        president: e.g. `"Dwight D Eisenhower"`.
        party: e.g. `"Republican"`.
        text: the address, whitespace normalised (one line, single spaces; case, punctuation
            and non-ASCII characters kept).
    """

    id: str
    year: int
    president: str
    party: str
    text: str


# --- tokenizer ----------------------------------------------------------------------------------


@contextmanager
def _data_file(name: str) -> Iterator[Path]:
    resource = importlib.resources.files("ddiff.domains") / "data" / name
    with importlib.resources.as_file(resource) as path:
        yield path


def load_tokenizer(path: str | Path | None = None) -> Tokenizer:
    """Load a byte-level BPE tokenizer from a `tokenizer.json` file (never from a hub).

    The loaded tokenizer encodes the text of special tokens as ordinary bytes
    (`encode_special_tokens = True`) and has truncation and padding switched off, so that
    `encode` returns whole documents and `decode(encode(s)) == s`. A file that breaks the round
    trip (a normaliser, a prefix space, an incomplete byte alphabet) is rejected.

    Args:
        path: a file written by `tokenizers.Tokenizer.save`; default the shipped SOTU tokenizer.

    Returns:
        A new `tokenizers.Tokenizer` (safe to modify; `encode`/`decode` without a tokenizer use
        a shared copy of the shipped one).

    Raises:
        FileNotFoundError: if the file does not exist.
        ValueError: if the file is not a valid tokenizer or does not round-trip text.

    Example:
        >>> tok = load_tokenizer()
        >>> tok.get_vocab_size() == VOCAB_SIZE, tok.token_to_id(EOT) == EOT_ID
        (True, True)
    """
    if path is None:
        with _data_file(TOKENIZER_FILE) as shipped:
            return _load_tokenizer(shipped)
    return _load_tokenizer(Path(path))


def _load_tokenizer(path: Path) -> Tokenizer:
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no such tokenizer file; pass the path of a tokenizer.json saved by "
            "tokenizers.Tokenizer.save, or None for the shipped one"
        )
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as err:  # tokenizers raises a bare Exception for bad JSON or a bad model
        raise ValueError(
            f"{path}: not a valid tokenizer.json ({err}); rebuild the shipped one with "
            "domains/text/build_sotu.py"
        ) from err
    tokenizer.encode_special_tokens = True
    tokenizer.no_truncation()
    tokenizer.no_padding()
    decoded = tokenizer.decode(
        tokenizer.encode(_PROBE, add_special_tokens=False).ids, skip_special_tokens=False
    )
    if decoded != _PROBE:
        raise ValueError(
            f"{path}: decode(encode(s)) != s for s = {_PROBE!r} (got {decoded!r}); the text "
            "domain needs a byte-level BPE: ByteLevel pre-tokenizer with add_prefix_space=False, "
            "ByteLevel decoder, no normalizer, all 256 bytes in the vocabulary"
        )
    return tokenizer


@functools.cache
def _shipped_tokenizer() -> Tokenizer:
    return load_tokenizer()


def _usable(tokenizer: Tokenizer | None) -> Tokenizer:
    if tokenizer is None:
        return _shipped_tokenizer()
    if not isinstance(tokenizer, Tokenizer):
        raise TypeError(
            f"tokenizer must be a tokenizers.Tokenizer (see load_tokenizer), got "
            f"{type(tokenizer).__name__}"
        )
    if not tokenizer.encode_special_tokens or tokenizer.truncation or tokenizer.padding:
        raise ValueError(
            "the tokenizer must encode special-token text as plain text and neither truncate "
            "nor pad (else decode(encode(s)) != s); load it with load_tokenizer()"
        )
    return tokenizer


def _check_text(text: str, what: str = "text") -> None:
    if not isinstance(text, str):
        raise TypeError(f"{what} must be a str, got {type(text).__name__}")
    if not text:
        raise ValueError(f"{what} is empty: a document needs at least one character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise ValueError(
            f"{what}, position {err.start + 1}: {text[err.start]!r} is a lone surrogate, not a "
            "Unicode character (decode bytes with errors='replace' or 'surrogatepass' first)"
        ) from err


def encode(text: str, tokenizer: Tokenizer | None = None) -> Tensor:
    """Tokens of a text.

    Args:
        text: any non-empty Unicode string (without lone surrogates).
        tokenizer: from `load_tokenizer`; default the shipped one.

    Returns:
        `[num_tokens]` int64 token ids; `decode` gives `text` back exactly.

    Raises:
        TypeError: if `text` is not a string.
        ValueError: if `text` is empty or holds a lone surrogate (position named).

    Example:
        >>> x = encode("Mr. Speaker, Mr. Vice President")
        >>> x.dtype, decode(x)
        (torch.int64, 'Mr. Speaker, Mr. Vice President')
        >>> decode(encode("🇺🇸 <|endoftext|>")) == "🇺🇸 <|endoftext|>"  # literal, not EOT
        True
    """
    _check_text(text)
    ids = _usable(tokenizer).encode(text, add_special_tokens=False).ids
    return torch.tensor(ids, dtype=torch.long)


def _encode_many(
    texts: Sequence[str], tokenizer: Tokenizer | None, names: Sequence[str]
) -> list[Tensor]:
    for text, name in zip(texts, names, strict=True):
        _check_text(text, name)
    encodings = _usable(tokenizer).encode_batch(list(texts), add_special_tokens=False)
    return [torch.tensor(e.ids, dtype=torch.long) for e in encodings]


def _as_ids(tokens: Tensor | np.ndarray | Sequence[int], vocab_size: int) -> list[int]:
    if isinstance(tokens, Tensor):
        tokens = tokens.detach().cpu().numpy()
    array = np.asarray(tokens)
    if array.ndim != 1:
        raise ValueError(f"tokens must be 1-D [length], got shape {array.shape}")
    if array.size and (array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.integer)):
        raise ValueError(f"tokens must be integer ids, got dtype {array.dtype}")
    bad = np.flatnonzero((array < 0) | (array >= vocab_size))
    if bad.size:
        raise ValueError(
            f"position {bad[0] + 1}: token id {array[bad[0]]} is outside the vocabulary "
            f"[0, {vocab_size})"
        )
    return array.astype(np.int64).tolist()


def decode(
    tokens: Tensor | np.ndarray | Sequence[int],
    tokenizer: Tokenizer | None = None,
    skip_special_tokens: bool = False,
) -> str:
    """Text of a 1-D sequence of tokens.

    Any token sequence decodes: bytes that do not form valid UTF-8 (a model's sample may
    split a character) become U+FFFD, the replacement character.

    Args:
        tokens: `[length]` token ids (tensor, array or list).
        tokenizer: from `load_tokenizer`; default the shipped one.
        skip_special_tokens: drop `EOT` (and any other special token) instead of writing its
            literal text.

    Raises:
        ValueError: if `tokens` is not 1-D or holds an id outside the vocabulary (position
            named, 1-based).

    Example:
        >>> x = torch.cat([encode("Thank you."), torch.tensor([EOT_ID])])
        >>> decode(x), decode(x, skip_special_tokens=True)
        ('Thank you.<|endoftext|>', 'Thank you.')
    """
    tok = _usable(tokenizer)
    ids = _as_ids(tokens, tok.get_vocab_size())
    return tok.decode(ids, skip_special_tokens=skip_special_tokens)


def count_characters(tokens: Tensor | Sequence[Tensor], tokenizer: Tokenizer | None = None) -> int:
    """Number of characters (Unicode code points) the tokens decode to, special tokens excluded.

    The denominator of `bits_per_character`. A tensor of windows `[N, length]` is read in
    row-major order, which is stream order for non-overlapping windows of one stream
    (`pack_windows` with the default stride), so a character split between two windows counts
    once. Overlapping windows (stride < length) count shared characters more than once, as the
    bound scores their tokens more than once.

    Args:
        tokens: a token tensor of any shape, or a sequence of 1-D token tensors (concatenated).
        tokenizer: from `load_tokenizer`; default the shipped one.

    Example:
        >>> count_characters(torch.cat([encode("État"), torch.tensor([EOT_ID])]))
        4
    """
    flat = (
        tokens.reshape(-1)
        if isinstance(tokens, Tensor)
        else torch.cat([torch.as_tensor(t).reshape(-1) for t in tokens])
    )
    return len(decode(flat, tokenizer, skip_special_tokens=True))


def bits_per_character(total_nats: float | Tensor, num_characters: int) -> float:
    r"""Convert a likelihood bound in nats (summed over a text) to bits per character.

    $$\mathrm{bpc} = \frac{\text{total nats}}{\ln 2 \cdot \text{characters}}.$$

    Sum the bound over every scored sequence (`LikelihoodBound.nats.sum()`) and count the
    characters of the same tokens with `count_characters`.

    Args:
        total_nats: the bound summed over the text, >= 0 (may be `inf`).
        num_characters: characters of the decoded text, >= 1.

    Returns:
        Bits per character.

    Raises:
        ValueError: for a non-scalar, NaN or negative total, or fewer than one character.

    Example:
        >>> round(bits_per_character(1000 * math.log(2), 500), 6)  # 1000 bits over 500 chars
        2.0
    """
    if isinstance(total_nats, Tensor):
        if total_nats.numel() != 1:
            raise ValueError(
                f"total_nats must be a scalar (sum the bound over sequences first), got shape "
                f"{tuple(total_nats.shape)}"
            )
        total_nats = total_nats.item()
    total = float(total_nats)
    if math.isnan(total) or total < 0:
        raise ValueError(f"total_nats must be a bound >= 0, got {total}")
    if isinstance(num_characters, bool) or int(num_characters) != num_characters:
        raise ValueError(f"num_characters must be an integer, got {num_characters!r}")
    if num_characters < 1:
        raise ValueError(f"num_characters must be >= 1, got {num_characters}")
    return total / (math.log(2.0) * int(num_characters))


# --- documents and windows ---------------------------------------------------------------------


def pack_windows(
    documents: Sequence[Tensor],
    length: int,
    stride: int | None = None,
    separator: int | None = EOT_ID,
) -> Tensor:
    """Pack documents into one stream, each followed by `separator`, and cut it into windows.

    The standard way to train on a corpus of long, variable-length documents (GPT-2, SEDD):
    no padding, no token wasted, and a window that crosses a document boundary has the
    separator in it, so the model learns where documents end. The incomplete tail of the
    stream (fewer than `length` tokens) is dropped.

    Args:
        documents: 1-D token tensors, each non-empty.
        length: window length, >= 1.
        stride: distance between window starts, >= 1 (default `length`: non-overlapping).
        separator: token appended to every document; `None` concatenates documents directly.

    Returns:
        `[num_windows, length]` int64 tokens (a copy).

    Raises:
        ValueError: if there are no documents, a document is empty or not 1-D, `length` or
            `stride` is < 1, or the stream is shorter than one window.

    Example:
        >>> docs = [torch.tensor([5, 6, 7]), torch.tensor([8, 9])]
        >>> pack_windows(docs, 3)
        tensor([[5, 6, 7],
                [0, 8, 9]])
        >>> pack_windows(docs, 4, stride=2, separator=None)
        tensor([[5, 6, 7, 8]])
    """
    stride = length if stride is None else stride
    if length < 1 or stride < 1:
        raise ValueError(f"length and stride must be >= 1, got length={length}, stride={stride}")
    if isinstance(documents, Tensor) or len(documents) == 0:
        raise ValueError("documents must be a non-empty list of 1-D token tensors")
    parts = []
    tail = [] if separator is None else [torch.tensor([separator], dtype=torch.long)]
    for i, doc in enumerate(documents):
        doc = torch.as_tensor(doc)
        if doc.dim() != 1 or doc.numel() == 0:
            raise ValueError(
                f"document {i}: must be a non-empty 1-D token tensor, got shape {tuple(doc.shape)}"
            )
        parts += [doc.long(), *tail]
    stream = torch.cat(parts)
    if stream.numel() < length:
        raise ValueError(
            f"the packed documents hold {stream.numel()} tokens, fewer than one window of {length}"
        )
    return stream.unfold(0, length, stride).clone()


def read_addresses(path: str | Path) -> list[SotuAddress]:
    """Read addresses from a JSON Lines file (gzipped if the name ends in `.gz`).

    One JSON object per line with exactly the fields of `SotuAddress`: `id`, `year`,
    `president`, `party` and a non-empty `text`.

    Raises:
        ValueError: naming the file and line of a malformed record, or if the file holds none.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    out = []
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if line.strip():
                    out.append(_parse_address(line, f"{path}, line {number}"))
    except (OSError, UnicodeDecodeError, EOFError) as err:  # e.g. a truncated gzip
        raise ValueError(f"{path}: cannot read it as UTF-8 JSON Lines ({err})") from err
    if not out:
        raise ValueError(f"{path}: no addresses")
    return out


def _parse_address(line: str, where: str) -> SotuAddress:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as err:
        raise ValueError(f"{where}: not valid JSON ({err})") from err
    if not isinstance(record, dict) or set(record) != set(_FIELDS):
        got = sorted(record) if isinstance(record, dict) else type(record).__name__
        raise ValueError(f"{where}: need exactly the fields {sorted(_FIELDS)}, got {got}")
    for field, kind in _FIELDS.items():
        if not isinstance(record[field], kind) or isinstance(record[field], bool):
            raise ValueError(
                f"{where}: field {field!r} must be {kind.__name__}, got {record[field]!r:.40}"
            )
    if not record["text"]:
        raise ValueError(f"{where}: address {record['id']!r} has an empty text")
    return SotuAddress(**record)


def _check_split(split: str) -> None:
    if split not in ("train", "heldout"):
        raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")


def load_sotu(split: Split) -> list[SotuAddress]:
    """The shipped State of the Union addresses from 1946 on, split by address.

    Every 10th address in file-name order (year, then president's name) is held out: 71
    training and 7 held-out addresses (1954, 1963, 1973, 1983, 1993, 2003, 2013). The same
    president may speak in both splits; no address is in both.

    Args:
        split: `"train"` or `"heldout"`.

    Returns:
        The addresses in file-name order.

    Raises:
        ValueError: for an unknown split.

    Example:
        >>> [(a.year, a.president) for a in load_sotu("heldout")][:2]
        [(1954, 'Dwight D Eisenhower'), (1963, 'John F Kennedy')]
    """
    _check_split(split)
    with _data_file(f"sotu_{split}.jsonl.gz") as path:
        return read_addresses(path)


def load_sotu_tokens(split: Split, tokenizer: Tokenizer | None = None) -> list[Tensor]:
    """The shipped addresses as variable-length token sequences, one per address.

    Args:
        split: `"train"` or `"heldout"`.
        tokenizer: from `load_tokenizer`; default the shipped one (trained on `"train"`).

    Returns:
        1-D int64 token tensors in the order of `load_sotu(split)`.

    Example:
        >>> docs = load_sotu_tokens("heldout")
        >>> len(docs), all(d.dim() == 1 for d in docs)
        (7, True)
    """
    if tokenizer is None:  # tokenizing the training split takes seconds: do it once
        return [t.clone() for t in _shipped_tokens(split)]
    addresses = load_sotu(split)
    return _encode_many([a.text for a in addresses], tokenizer, [a.id for a in addresses])


@functools.cache
def _shipped_tokens(split: Split) -> tuple[Tensor, ...]:
    addresses = load_sotu(split)
    return tuple(_encode_many([a.text for a in addresses], None, [a.id for a in addresses]))


def load_sotu_windows(split: Split, length: int, stride: int | None = None) -> Tensor:
    """Fixed-length windows of the shipped addresses for training and evaluation.

    `pack_windows` of `load_sotu_tokens(split)`: addresses in order, each followed by `EOT`.

    Args:
        split: `"train"` or `"heldout"`.
        length: window length in tokens.
        stride: distance between window starts (default `length`: non-overlapping).

    Returns:
        `[num_windows, length]` int64 tokens in `[0, VOCAB_SIZE)`.

    Example:
        >>> x = load_sotu_windows("heldout", 256)
        >>> x.shape[1], int(x.max()) < VOCAB_SIZE
        (256, True)
    """
    return pack_windows(load_sotu_tokens(split), length, stride)
