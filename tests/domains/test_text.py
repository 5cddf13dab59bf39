"""Tests of the text domain (`ddiff.domains.text`) and its metrics (`ddiff.eval.text_metrics`)."""

from __future__ import annotations

import gzip
import hashlib
import importlib.resources
import json
import math
import re
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from ddiff.domains.text import (
    EOT,
    EOT_ID,
    TOKENIZER_FILE,
    VOCAB_SIZE,
    SotuAddress,
    bits_per_character,
    count_characters,
    decode,
    encode,
    load_sotu,
    load_sotu_tokens,
    load_sotu_windows,
    load_tokenizer,
    pack_windows,
    read_addresses,
)
from ddiff.eval.text_metrics import distinct_n, novel_ngram_rate, unigram_entropy, words

README = Path(__file__).resolve().parents[2] / "domains" / "text" / "README.md"
DATA = importlib.resources.files("ddiff.domains") / "data"
SHIPPED = ("sotu_train.jsonl.gz", "sotu_heldout.jsonl.gz", TOKENIZER_FILE)

# Any Unicode text (surrogates excluded: they are not characters and have no UTF-8 form), and
# text dense in what byte-level tokenizers get wrong: whitespace runs, the special token's
# literal text and pieces of it, control characters, combining marks and astral characters.
ANY_TEXT = st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=200)
TRICKY_TEXT = st.lists(
    st.sampled_from(
        [
            *(" ", "  ", "\t", "\n", "\r\n", "\u00a0", "\u2028", "\x00"),
            *(EOT, "<|", "|>", "endoftext", "'s", "Union", "1,000", "$"),
            *("e\u0301", "\U0001f1fa\U0001f1f8", "\U0001f469\u200d\U0001f467", "\u00ff"),
            *("\u2019", "\u2014"),
        ]
    ),
    min_size=1,
    max_size=30,
).map("".join)


# --- tokenizer and round trip ------------------------------------------------------------------


@given(ANY_TEXT)
def test_decode_inverts_encode_for_any_unicode(s: str) -> None:
    tokens = encode(s)
    assert tokens.dtype == torch.int64 and tokens.dim() == 1 and tokens.numel() >= 1
    assert ((tokens >= 0) & (tokens < VOCAB_SIZE)).all()
    assert decode(tokens) == s


@given(TRICKY_TEXT)
def test_round_trip_of_whitespace_and_special_token_text(s: str) -> None:
    tokens = encode(s)
    assert decode(tokens) == s
    assert EOT_ID not in tokens.tolist()  # the literal "<|endoftext|>" is text, not the token


def test_shipped_tokenizer_loads_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("the tokenizer must load without network access")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    tok = load_tokenizer()
    assert tok.get_vocab_size() == VOCAB_SIZE
    assert tok.token_to_id(EOT) == EOT_ID
    assert tok.id_to_token(1) == "!"  # the 256 byte symbols follow EOT
    with importlib.resources.as_file(DATA / TOKENIZER_FILE) as path:
        spec = json.loads(path.read_text())
    assert spec["model"]["type"] == "BPE" and spec["normalizer"] is None
    assert spec["pre_tokenizer"]["type"] == "ByteLevel"
    assert spec["pre_tokenizer"]["add_prefix_space"] is False
    assert spec["decoder"]["type"] == "ByteLevel"
    assert [t["content"] for t in spec["added_tokens"]] == [EOT]


def test_readme_states_the_shipped_vocabulary_and_checksums() -> None:
    text = README.read_text()
    match = re.search(r"vocabulary size \| ([\d,]+)", text)
    assert match is not None, "the README must state the vocabulary size"
    assert int(match.group(1).replace(",", "")) == VOCAB_SIZE == load_tokenizer().get_vocab_size()
    for name in SHIPPED:  # the README's sha256 of every shipped file is the file's
        with importlib.resources.as_file(DATA / name) as path:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert re.search(rf"{re.escape(name)}`.*`{digest}`", text), f"stale sha256 of {name}"


def test_encode_known_text() -> None:
    text = "The state of our Union is strong."
    tokens = encode(text)
    assert 4 <= tokens.numel() <= 12  # common words are single tokens (3.7 characters/token)
    assert decode(tokens) == text
    assert decode(encode(" Union")).startswith(" ")  # no prefix space added or dropped


def test_decode_any_token_sequence() -> None:
    g = torch.Generator().manual_seed(0)
    sample = torch.randint(0, VOCAB_SIZE, (500,), generator=g)
    assert isinstance(decode(sample), str)  # invalid UTF-8 becomes U+FFFD, never an error
    byte_c3 = load_tokenizer().token_to_id("Ã")  # the byte 0xC3 alone: half a character
    assert byte_c3 is not None
    assert decode([byte_c3]) == "\ufffd"
    assert decode([]) == ""
    x = torch.cat([encode("a b"), torch.tensor([EOT_ID]), encode("c")])
    assert decode(x) == f"a b{EOT}c" and decode(x, skip_special_tokens=True) == "a bc"
    assert decode(np.array([EOT_ID])) == EOT


def test_encode_errors() -> None:
    with pytest.raises(ValueError, match="empty"):
        encode("")
    with pytest.raises(TypeError, match="must be a str"):
        encode(b"bytes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"position 3: '\\ud800' is a lone surrogate"):
        encode("ab\ud800c")


def test_decode_errors() -> None:
    with pytest.raises(ValueError, match=rf"position 2: token id {VOCAB_SIZE} is outside"):
        decode(torch.tensor([5, VOCAB_SIZE]))
    with pytest.raises(ValueError, match="position 1: token id -1"):
        decode([-1])
    with pytest.raises(ValueError, match="1-D"):
        decode(torch.zeros(2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="integer"):
        decode(torch.tensor([1.0, 2.0]))


def _write_tokenizer(
    path: Path,
    pre_tokenizer: pre_tokenizers.PreTokenizer,
    normalizer: normalizers.Normalizer | None = None,
    bytes_alphabet: bool = True,
) -> Path:
    tok = Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizer
    tok.decoder = decoders.ByteLevel()
    if normalizer is not None:
        tok.normalizer = normalizer
    alphabet = pre_tokenizers.ByteLevel.alphabet() if bytes_alphabet else []
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=["[UNK]"], initial_alphabet=alphabet, show_progress=False
    )
    tok.train_from_iterator(["Hello world, the Union is strong."] * 5, trainer=trainer)
    tok.save(str(path))
    return path


def test_load_tokenizer_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such tokenizer file"):
        load_tokenizer(tmp_path / "missing.json")
    garbage = tmp_path / "garbage.json"
    garbage.write_text('{"version": "1.0", "model": ')
    with pytest.raises(ValueError, match=r"garbage\.json: not a valid tokenizer\.json"):
        load_tokenizer(garbage)
    empty_object = tmp_path / "empty.json"
    empty_object.write_text("{}")
    with pytest.raises(ValueError, match="not a valid tokenizer"):
        load_tokenizer(empty_object)
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False)
    not_round_trip = {
        "lowercase.json": (byte_level, normalizers.Lowercase(), True),
        "prefix.json": (pre_tokenizers.ByteLevel(add_prefix_space=True), None, True),
        "whitespace.json": (pre_tokenizers.Whitespace(), None, False),
    }
    for name, (pre, norm, alphabet) in not_round_trip.items():
        path = _write_tokenizer(tmp_path / name, pre, norm, alphabet)
        with pytest.raises(ValueError, match="needs a byte-level BPE"):
            load_tokenizer(path)
    ok = load_tokenizer(_write_tokenizer(tmp_path / "ok.json", byte_level))
    s = "Ünïcödé  text\n"
    assert decode(encode(s, ok), ok) == s


def test_a_tokenizer_not_from_load_tokenizer_is_rejected() -> None:
    raw = Tokenizer.from_str(load_tokenizer().to_str())  # matches EOT's literal text
    with pytest.raises(ValueError, match="load it with load_tokenizer"):
        encode("x", raw)
    with pytest.raises(TypeError, match=r"tokenizers\.Tokenizer"):
        encode("x", "gpt2")  # type: ignore[arg-type]


# --- the shipped addresses ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def sotu() -> dict[str, list[SotuAddress]]:
    return {"train": load_sotu("train"), "heldout": load_sotu("heldout")}


@pytest.fixture(scope="module")
def sotu_tokens() -> dict[str, list[torch.Tensor]]:
    return {"train": load_sotu_tokens("train"), "heldout": load_sotu_tokens("heldout")}


def test_shipped_addresses(sotu: dict[str, list[SotuAddress]]) -> None:
    train, heldout = sotu["train"], sotu["heldout"]
    assert (len(train), len(heldout)) == (71, 7)
    assert [a.year for a in heldout] == [1954, 1963, 1973, 1983, 1993, 2003, 2013]
    for a in train + heldout:
        assert a.id.startswith(f"{a.year}_") and a.year >= 1946 and a.party[0].lower() == a.id[-1]
        assert a.president.lower().replace(" ", "_") == a.id[5:-2]
        # the normalisation rule: one line, single spaces, stripped
        assert a.text == a.text.strip() and "\n" not in a.text and "  " not in a.text
    assert sum(len(a.text) for a in train) == 2_621_752
    assert sum(len(a.text) for a in heldout) == 222_180
    two_in_1953 = [a.president for a in train + heldout if a.year == 1953]
    assert sorted(two_in_1953) == ["Dwight D Eisenhower", "Harry S Truman"]
    with pytest.raises(ValueError, match="split must be"):
        load_sotu("test")  # type: ignore[arg-type]


def test_split_is_by_address_and_follows_the_rule(sotu: dict[str, list[SotuAddress]]) -> None:
    train_ids = [a.id for a in sotu["train"]]
    heldout_ids = [a.id for a in sotu["heldout"]]
    assert not set(train_ids) & set(heldout_ids)
    everything = sorted(train_ids + heldout_ids)  # file-name order
    assert len(everything) == len(set(everything)) == 78
    assert heldout_ids == everything[9::10]  # every 10th address is held out
    assert train_ids == [i for i in everything if i not in heldout_ids]
    # no address text is shared across the split, not even a long passage
    train_text = " ".join(a.text for a in sotu["train"])
    for a in sotu["heldout"]:
        assert a.text[1000:1200] not in train_text


def test_shipped_tokens(
    sotu: dict[str, list[SotuAddress]], sotu_tokens: dict[str, list[torch.Tensor]]
) -> None:
    for split, counts in (("train", 712_465), ("heldout", 59_841)):
        tokens = sotu_tokens[split]
        assert len(tokens) == len(sotu[split])
        assert sum(t.numel() for t in tokens) == counts  # README: tokens per split
        assert all(t.dtype == torch.int64 and int(t.max()) < VOCAB_SIZE for t in tokens)
        assert all(EOT_ID not in t.tolist() for t in tokens)
    for a, t in zip(sotu["heldout"], sotu_tokens["heldout"], strict=True):
        assert decode(t) == a.text
    again = load_sotu_tokens("heldout")  # cached, but a copy: callers may write into it
    again[0][0] = EOT_ID
    assert load_sotu_tokens("heldout")[0][0] != EOT_ID


# --- windows and bits per character -------------------------------------------------------------


def test_pack_windows() -> None:
    docs = [torch.arange(10, 15), torch.arange(20, 23)]
    w = pack_windows(docs, 4)
    assert w.tolist() == [[10, 11, 12, 13], [14, EOT_ID, 20, 21]]  # tail [22, EOT] dropped
    assert pack_windows(docs, 3, stride=1).shape == (8, 3)
    assert pack_windows(docs, 8, separator=None).tolist() == [[10, 11, 12, 13, 14, 20, 21, 22]]
    w[0, 0] = 0
    assert docs[0][0] == 10  # a copy
    with pytest.raises(ValueError, match="fewer than one window"):
        pack_windows(docs, 100)
    with pytest.raises(ValueError, match="document 1"):
        pack_windows([torch.arange(3), torch.tensor([], dtype=torch.long)], 2)
    with pytest.raises(ValueError, match="non-empty list"):
        pack_windows([], 2)
    with pytest.raises(ValueError, match="length and stride"):
        pack_windows(docs, 0)


def test_sotu_windows_and_characters(
    sotu: dict[str, list[SotuAddress]], sotu_tokens: dict[str, list[torch.Tensor]]
) -> None:
    heldout = sotu_tokens["heldout"]
    x = load_sotu_windows("heldout", 256)
    total = sum(t.numel() + 1 for t in heldout)  # with one EOT per address
    assert x.shape == (total // 256, 256) and x.dtype == torch.int64
    # the last address is longer than a window, so only the final EOT can fall in the tail
    assert int((x == EOT_ID).sum()) == 7 - (total % 256 != 0)
    chars = sum(len(a.text) for a in sotu["heldout"])
    assert count_characters(heldout) == chars  # every address complete: exactly its text
    stream = pack_windows(heldout, 1).reshape(-1)  # windows of length 1: the whole stream
    assert count_characters(stream) == chars
    scored = x.numel()
    assert torch.equal(x.reshape(-1), stream[:scored])  # windows tile the stream in order
    # the windows' characters are the text minus the dropped tail (a character split at the
    # cut would decode to U+FFFD on both sides: at most one character off)
    assert abs(count_characters(x) + count_characters(stream[scored:]) - chars) <= 1


def test_bits_per_character() -> None:
    assert bits_per_character(100 * math.log(2), 50) == pytest.approx(2.0)
    assert bits_per_character(torch.tensor(8 * math.log(2), dtype=torch.float64), 4) == 2.0
    assert bits_per_character(0.0, 3) == 0.0 and bits_per_character(math.inf, 3) == math.inf
    # the documented relation: bpc = bits per token * tokens / characters
    nats_per_token, tokens, chars = 3.0, 1000, 3713
    bpt = nats_per_token / math.log(2)
    assert bits_per_character(nats_per_token * tokens, chars) == pytest.approx(bpt * tokens / chars)
    with pytest.raises(ValueError, match=">= 1"):
        bits_per_character(1.0, 0)
    with pytest.raises(ValueError, match=">= 0"):
        bits_per_character(-1.0, 10)
    with pytest.raises(ValueError, match=">= 0"):
        bits_per_character(math.nan, 10)
    with pytest.raises(ValueError, match="scalar"):
        bits_per_character(torch.ones(3), 10)
    with pytest.raises(ValueError, match="integer"):
        bits_per_character(1.0, 2.5)  # type: ignore[arg-type]


# --- reading address files ---------------------------------------------------------------------

GOOD = {"id": "2021_x_d", "year": 2021, "president": "X", "party": "Democratic", "text": "Hi."}


def _jsonl(tmp_path: Path, *records: object, name: str = "a.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def test_read_addresses(tmp_path: Path) -> None:
    assert read_addresses(_jsonl(tmp_path, GOOD)) == [SotuAddress(**GOOD)]  # type: ignore[arg-type]
    path = tmp_path / "a.jsonl.gz"
    path.write_bytes(gzip.compress((json.dumps(GOOD) + "\n").encode()))
    assert read_addresses(path)[0].text == "Hi."


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ('{"id": "x", ', r"line 2: not valid JSON"),
        ({**GOOD, "extra": 1}, r"line 2: need exactly the fields"),
        ({k: v for k, v in GOOD.items() if k != "text"}, r"line 2: need exactly the fields"),
        ({**GOOD, "year": "2021"}, r"line 2: field 'year' must be int"),
        ({**GOOD, "year": True}, r"line 2: field 'year' must be int"),
        ({**GOOD, "text": ""}, r"line 2: address '2021_x_d' has an empty text"),
        ("[1, 2]", r"line 2: need exactly the fields"),
    ],
)
def test_read_addresses_names_file_and_line(tmp_path: Path, record: object, message: str) -> None:
    path = _jsonl(tmp_path, GOOD, record)
    with pytest.raises(ValueError, match=rf"a\.jsonl, {message}"):
        read_addresses(path)


def test_read_addresses_empty_and_corrupt_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no addresses"):
        read_addresses(_jsonl(tmp_path, "", name="empty.jsonl"))
    truncated = tmp_path / "t.jsonl.gz"
    truncated.write_bytes(gzip.compress((json.dumps(GOOD) + "\n").encode() * 50)[:40])
    with pytest.raises(ValueError, match=r"t\.jsonl\.gz: cannot read"):
        read_addresses(truncated)
    with pytest.raises(ValueError, match="cannot read"):
        read_addresses(tmp_path / "missing.jsonl")


# --- metrics ----------------------------------------------------------------------------------


def test_words() -> None:
    assert words("It's 9:30 -- time.") == ["It", "'", "s", "9", ":", "30", "-", "-", "time", "."]
    assert words("  \n ") == []


def test_distinct_n() -> None:
    repeated = ["God bless America. " * 50]
    assert distinct_n(repeated, 1) == pytest.approx(4 / 200)
    assert distinct_n(repeated, 2) < 0.03
    assert distinct_n(["a b c d", "e f g h"], 2) == 1.0
    assert distinct_n(["a b", "a b"], 2) == 0.5  # pooled over texts
    assert distinct_n([[1, 2, 1, 2]], 2) == pytest.approx(2 / 3)  # token lists
    assert distinct_n(torch.tensor([[7, 7, 7]]), 1) == pytest.approx(1 / 3)


def test_novel_ngram_rate_on_real_text(sotu: dict[str, list[SotuAddress]]) -> None:
    train = [a.text for a in sotu["train"]]
    heldout = [a.text for a in sotu["heldout"]]
    assert novel_ngram_rate(train[:20], train) == 0.0  # copied text has no novel n-gram
    rate = novel_ngram_rate(heldout, train)
    assert 0.80 < rate < 0.90  # README: 0.8465 (a 500k-word training set is small)
    assert novel_ngram_rate(heldout, train, n=1) < 0.02  # almost every word has been seen
    g = np.random.default_rng(0)
    vocab = sorted({w for t in train[:5] for w in words(t)})
    salad = [" ".join(g.choice(vocab, size=300)) for _ in range(5)]
    assert novel_ngram_rate(salad, train) > 0.99  # word salad: nothing to copy


def test_novel_ngram_rate_on_tokens(sotu_tokens: dict[str, list[torch.Tensor]]) -> None:
    train = sotu_tokens["train"]
    assert novel_ngram_rate(train[:10], train) == 0.0
    windows = load_sotu_windows("heldout", 256)
    assert 0.65 < novel_ngram_rate(windows, train) < 0.8  # README: 0.7231


@given(
    st.lists(st.lists(st.integers(0, 4), max_size=12), min_size=1, max_size=6),
    st.lists(st.lists(st.integers(0, 4), max_size=12), min_size=1, max_size=6),
    st.integers(1, 5),
    st.sampled_from([1, 2**40]),
)
def test_ngram_counts_match_a_set_of_tuples(
    samples: list[list[int]], train: list[list[int]], n: int, scale: int
) -> None:
    # scale = 2**40 makes the packed keys overflow int64 and exercises the re-ranking path
    samples = [[u * scale for u in s] for s in samples]
    train = [[u * scale for u in s] for s in train]

    def grams(seqs: list[list[int]]) -> list[tuple[int, ...]]:
        return [tuple(s[i : i + n]) for s in seqs for i in range(len(s) - n + 1)]

    sample_grams, train_grams = grams(samples), set(grams(train))
    if not sample_grams:
        with pytest.raises(ValueError, match="no"):
            novel_ngram_rate(samples, train, n)
        return
    assert distinct_n(samples, n) == pytest.approx(len(set(sample_grams)) / len(sample_grams))
    expected = sum(g not in train_grams for g in sample_grams) / len(sample_grams)
    assert novel_ngram_rate(samples, train, n) == pytest.approx(expected)


def test_unigram_entropy() -> None:
    assert unigram_entropy(["Union Union Union"]) == 0.0  # a constant sequence
    assert unigram_entropy(torch.full((3, 50), 7)) == 0.0
    assert unigram_entropy([[1, 2, 3, 4]]) == pytest.approx(2.0)
    assert unigram_entropy([[1, 1], [2, 2]]) == 0.0
    assert unigram_entropy([[1, 1], [2, 2]], pooled=True) == pytest.approx(1.0)
    g = torch.Generator().manual_seed(0)
    uniform = torch.randint(0, 16, (1, 100_000), generator=g)
    assert unigram_entropy(uniform) == pytest.approx(4.0, abs=1e-3)


def test_metric_errors() -> None:
    with pytest.raises(TypeError, match="not a single string"):
        distinct_n("the people", 1)  # a str is a Sequence[str]: caught at run time
    with pytest.raises(TypeError, match="decode both to text"):
        novel_ngram_rate(["a b c d"], [[1, 2, 3, 4]])
    with pytest.raises(TypeError, match="mix of strings"):
        distinct_n(["a b", [1, 2]], 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n must be"):
        distinct_n(["a b"], 0)
    with pytest.raises(ValueError, match="no texts"):
        distinct_n([], 1)
    with pytest.raises(ValueError, match="no 3-grams"):
        distinct_n(["a b"], 3)
    with pytest.raises(ValueError, match="no 4-grams in the samples"):
        novel_ngram_rate(["a b"], ["a b c d"])
    assert novel_ngram_rate(["a b c d"], ["a b"]) == 1.0  # nothing to copy from
    with pytest.raises(ValueError, match="sequence 1: no units"):
        unigram_entropy(["a", " "])
    with pytest.raises(ValueError, match=r"\[N, length\]"):
        unigram_entropy(torch.arange(5))
    with pytest.raises(ValueError, match="negative token"):
        unigram_entropy([[1, -2]])
    with pytest.raises(ValueError, match="integer tokens"):
        unigram_entropy([np.array([0.5, 1.0])])
