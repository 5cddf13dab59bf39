r"""Text recipe: train on State of the Union windows, sample, fill in around a prompt and a span.

```console
$ python -m ddiff.recipes.text                      # everything, shipped data, runs/text/
$ python -m ddiff.recipes.text infill --checkpoint runs/text \
      --prompt "Mr. Speaker, Mr. Vice President:" --span " the state of our Union is strong@64"
$ python -m ddiff.recipes.text train --data my_corpus.txt --out runs/mine
```

**Data.** By default the shipped post-1945 State of the Union addresses, tokenized with the
shipped byte-level BPE (2,048 tokens; `ddiff.domains.text`), packed into one stream with
`<|endoftext|>` after each address and cut into windows of `data.length` tokens; held-out
windows come from the held-out addresses (split by address). `--data FILE` trains on the
user's UTF-8 text with the same tokenizer: a `.jsonl` file holds one document per line (a
`"text"` field), any other file is one document; the last `data.heldout_fraction` of the token
stream is held out, one window length away from the training windows.

**Infill.** `--prompt TEXT` fixes the tokens of `TEXT` at the start of every sample;
`--span TEXT@POS` fixes the tokens of `TEXT` from token position `POS` (0-based; repeatable).
The default demo fixes the opening of an address and, in the middle of the window, the phrase
" the state of our Union is strong".

**Evaluation.** The bound in bits per token and per character (`bits_per_character`), next to
a bigram model smoothed towards unigrams (exact NLL); distinct-1..4, the novel word-4-gram rate
against the training text and the unigram entropy, for the samples and for real, bigram and
shuffled baselines of the same size.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from pydantic import Field
from torch import Tensor

from ddiff.conditioning import Motif
from ddiff.config import AbsorbingGraphConfig, GraphConfig, TrainConfig
from ddiff.domains import text
from ddiff.eval import text_metrics
from ddiff.eval.statistics import subsample
from ddiff.recipes import report
from ddiff.recipes.cli import Recipe
from ddiff.recipes.config import (
    ConfigPath,
    EvaluateConfig,
    GenerateConfig,
    RecipeConfig,
    RecipeError,
    Section,
    cpu_training,
)
from ddiff.recipes.rundir import sha256_file
from ddiff.recipes.task import DataSplit, Evaluation, MarkovBaseline, Role, Task, encoded_motif

VOCAB = text.VOCAB_SIZE


class TextDataConfig(Section):
    """Where the text comes from and how it is cut.

    Attributes:
        path: a UTF-8 text file (`.jsonl`: one `{"text": ...}` document per line); None for
            the shipped State of the Union addresses.
        length: window length in tokens.
        heldout_fraction: share of a file's token stream held out (at its end).
    """

    path: ConfigPath | None = None
    length: int = Field(default=128, ge=8)
    heldout_fraction: float = Field(default=0.1, gt=0, lt=1)


class SpanConfig(Section):
    """Text whose tokens are fixed from a token position."""

    text: str
    position: int


class TextInfillConfig(Section):
    """A prompt at the start and spans elsewhere, kept fixed by `infill`."""

    prompt: str | None = "Mr. Speaker, Mr. Vice President, Members of the Congress:"
    spans: tuple[SpanConfig, ...] = (
        SpanConfig(text=" the state of our Union is strong", position=64),
    )


class TextRecipeConfig(RecipeConfig):
    """The text recipe's configuration; `recipes/text.yaml` holds exactly these defaults."""

    name = "text"
    num_tokens = VOCAB

    recipe: str = "text"
    graph: GraphConfig = AbsorbingGraphConfig(num_tokens=VOCAB)
    # Importance sampling of the training times: a bound 0.13-0.24 bits/token lower than with
    # stratified times after the same 1,500 steps, every one of 3 training seeds
    # (docs/benchmarks.md, table 2).
    train: TrainConfig = cpu_training(
        1500, every=300, limit_val_batches=2, time_sampling="importance"
    )
    generate: GenerateConfig = GenerateConfig(num_samples=64, batch_size=64)
    evaluate: EvaluateConfig = EvaluateConfig(num_t=8, max_heldout=256)
    data: TextDataConfig = TextDataConfig()
    infill: TextInfillConfig = TextInfillConfig()


class TextTask(Task[TextRecipeConfig]):
    """Windows of BPE tokens; see the module docstring."""

    name = "text"
    title = "Text"
    description = (
        "Train a discrete diffusion model on text (default: State of the Union addresses), "
        "sample, fill in around a prompt and a span, evaluate against baselines and write a "
        "report.\n\nPositions are 0-based token positions."
    )
    config_type = TextRecipeConfig
    num_tokens = VOCAB
    uniform_bits = math.log2(VOCAB)
    baseline = MarkovBaseline("bigram", "bigram", order=1, alpha=0.05)
    sample_suffix = ".txt"
    graph_choices: ClassVar[dict[str, dict[str, Any]]] = {
        "absorbing": {"kind": "absorbing", "num_tokens": VOCAB},
        "uniform": {"kind": "uniform", "num_tokens": VOCAB},
    }
    data_help = 'UTF-8 text file (.txt: one document; .jsonl: one {"text": ...} per line)'
    motif_option = ("--span", "TEXT@POS", "infill.spans")
    infill_options: ClassVar[dict[str, str]] = {"prompt": "--prompt"}

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--prompt", help="text fixed at the start of every infilled sample")

    def motif_entry(self, value: str, position: int, source: str) -> dict[str, Any]:
        return {"text": value, "position": position}

    def configure(self, config: TextRecipeConfig, args: argparse.Namespace) -> TextRecipeConfig:
        if args.prompt is None:
            return config
        return config.with_overrides({"infill.prompt": args.prompt or None}, "--prompt")

    # -- data --

    def load_data(self, config: TextRecipeConfig) -> DataSplit:
        cfg = config.data
        if cfg.path is not None:
            return _file_split(cfg)
        provenance = {
            "source": "shipped: State of the Union addresses since 1946 (ddiff.domains.text)",
            "split": "by address (domains/text/README.md)",
            "length": cfg.length,
        }
        train = text.load_sotu_windows("train", cfg.length)
        return DataSplit(train, text.load_sotu_windows("heldout", cfg.length), provenance)

    # -- infill and samples --

    def motifs(self, config: TextRecipeConfig) -> list[Motif]:
        pieces = [] if config.infill.prompt is None else [("--prompt", config.infill.prompt, 0)]
        pieces += [
            (f"span {s.text!r}@{s.position}", s.text, s.position) for s in config.infill.spans
        ]
        return [encoded_motif(text.encode, t, position, source) for source, t, position in pieces]

    def decode(self, tokens: Sequence[int] | Tensor) -> str:
        return text.decode(torch.as_tensor(tokens))

    def write_samples(self, path: Path, rows: Tensor, prefix: str) -> None:
        blocks = [f"### {prefix} {i}\n{text.decode(row)}\n" for i, row in enumerate(rows)]
        path.write_text("\n".join(blocks), encoding="utf-8")

    # -- evaluation --

    def metric_reference(self, train: Any) -> list[str]:
        return _texts(train)

    def set_metrics(self, seqs: Any, heldout: Any, reference: Any, role: Role) -> dict[str, Any]:
        texts = [t if t.strip() else "." for t in _texts(seqs)]
        return {
            "num": int(seqs.shape[0]),
            **{f"distinct_{n}": text_metrics.distinct_n(texts, n) for n in (1, 2, 3, 4)},
            "novel_4gram_rate": text_metrics.novel_ngram_rate(texts, reference, 4),
            "unigram_entropy": text_metrics.unigram_entropy(texts),
            "token_distinct_1": text_metrics.distinct_n(seqs, 1),
        }

    def reference_set(self, heldout: Any, num: int, seed: int) -> Tensor:
        return heldout[torch.as_tensor(subsample(heldout.shape[0], num, seed))]

    def likelihood_extras(self, ev: Evaluation, likelihood: dict[str, Any]) -> None:
        """Bits per character of the bound and of the bigram chain."""
        heldout = ev.heldout
        characters = text.count_characters(heldout)
        total_nats = float(ev.bound.per_sequence.sum()) * heldout.shape[1] * math.log(2.0)
        bpc = text.bits_per_character(total_nats, characters)
        likelihood["diffusion_bound"]["bits_per_character"] = bpc
        bigram = likelihood[f"{self.baseline.key}_nll"]
        bigram["bits_per_character"] = bigram["bits_per_token"] * (heldout.numel() / characters)
        likelihood["characters"] = characters

    def infill_metrics(self, ev: Evaluation) -> dict[str, Any]:
        assert ev.infill is not None
        return {"metrics": self.set_metrics(ev.infill, ev.heldout, _texts(ev.train), "samples")}

    # -- report --

    def metric_rows(self, metrics: dict[str, Any]) -> list[list[Any]]:
        keys = [
            *[(f"distinct_{n}", f"distinct-{n} (words)") for n in (1, 2, 3, 4)],
            ("novel_4gram_rate", "novel word 4-grams vs training"),
            ("unigram_entropy", "unigram entropy per text (bits, words)"),
            ("token_distinct_1", "distinct-1 (tokens)"),
        ]
        return report.metric_rows(metrics["sets"], keys)

    def report_lines(self, ev: Evaluation, metrics: dict[str, Any]) -> list[str]:
        if ev.samples is None:
            return []
        lines = ["Unconditional samples (first two; ⏎ marks an end of document):", ""]
        return lines + [f"> {_marked(row, [])}" for row in ev.samples[:2]] + [""]

    def infill_lines(self, ev: Evaluation, metrics: dict[str, Any]) -> list[str]:
        assert ev.infill is not None
        spans = [span for _, span in ev.motifs]
        lines = ["Examples (fixed text in bold):", ""]
        return lines + [f"> {_marked(row, spans)}\n" for row in ev.infill[:3]]

    def figures(self, ev: Evaluation, directory: Path) -> dict[str, tuple[str, str]]:
        fig, ax = report.new_figure(7.0, 3.8)
        width = 0.8 / len(ev.metrics)
        for k, (name, values) in enumerate(ev.metrics.items()):
            bars = [values[f"distinct_{n}"] for n in (1, 2, 3, 4)] + [values["novel_4gram_rate"]]
            ax.bar(np.arange(5) + k * width, bars, width, color=report.set_colour(name), label=name)
        ax.set_xticks(np.arange(5) + 0.4 - width / 2)
        ax.set_xticklabels(
            ["distinct-1", "distinct-2", "distinct-3", "distinct-4", "novel 4-grams"]
        )
        ax.set_title("diversity and novelty (words)")
        return {"diversity": report.finish(fig, ax, directory / "diversity.png", "diversity")}


def _texts(tokens: Tensor) -> list[str]:
    return [text.decode(row, skip_special_tokens=True) for row in tokens]


def _marked(row: Tensor, spans: Sequence[tuple[int, int]]) -> str:
    """The decoded row with the fixed spans in bold (Markdown), on one line."""
    pieces, start = [], 0
    for a, b in sorted(spans):
        pieces.append(text.decode(row[start:a]))
        fixed = text.decode(row[a:b])
        # Markdown bold must not start or end with a space: keep the spaces outside.
        lead, trail = fixed[: len(fixed) - len(fixed.lstrip())], fixed[len(fixed.rstrip()) :]
        pieces.append(f"{lead}**{fixed.strip()}**{trail}")
        start = b
    pieces.append(text.decode(row[start:]))
    return " ".join("".join(pieces).split()).replace(text.EOT, " ⏎ ")


def _file_split(cfg: TextDataConfig, option: str = "--data") -> DataSplit:
    """Windows of a user's text file: the last `heldout_fraction` of its token stream held out."""
    path = cfg.path
    assert path is not None
    if not path.is_file():
        raise RecipeError(f"{option} {path}: no such file")
    try:
        raw = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise RecipeError(
            f"{option} {path}: not UTF-8 text (byte {err.start}: {err.reason})"
        ) from err
    documents: list[str] = []
    if path.suffix == ".jsonl":
        for number, line in enumerate(raw.splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise RecipeError(f"{option} {path}, line {number}: not JSON ({err.msg})") from err
            if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                raise RecipeError(f'{option} {path}, line {number}: no "text" string field')
            if record["text"].strip():
                documents.append(record["text"])
    elif raw.strip():
        documents.append(raw)
    if not documents:
        raise RecipeError(f"{option} {path}: no text")
    stream = torch.cat(
        [torch.cat([text.encode(d), torch.tensor([text.EOT_ID])]) for d in documents]
    )
    length = cfg.length
    cut = stream.numel() - round(cfg.heldout_fraction * stream.numel())
    train_stream, held_stream = stream[: max(cut - length, 0)], stream[cut:]
    if held_stream.numel() < length or train_stream.numel() < length:
        raise RecipeError(
            f"{option} {path}: {stream.numel()} tokens are too few for training and held-out "
            f"windows of {length} tokens; give more text or lower data.length"
        )
    provenance = {
        "source": "file",
        "path": str(path.resolve()),
        "sha256": sha256_file(path),
        "documents": len(documents),
        "tokens": int(stream.numel()),
        "split": "the last heldout_fraction of the token stream, one window away",
        "heldout_fraction": cfg.heldout_fraction,
        "length": length,
    }
    train = train_stream.unfold(0, length, length).clone()
    return DataSplit(train, held_stream.unfold(0, length, length).clone(), provenance)


TASK = TextTask()
RECIPE = Recipe(TASK)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the text recipe's command line; returns the exit code."""
    return RECIPE.run(argv)


if __name__ == "__main__":
    sys.exit(main())
