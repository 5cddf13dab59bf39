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

from ddiff.config import (
    AbsorbingGraphConfig,
    AdamWConfig,
    EulerSamplerConfig,
    GraphConfig,
    LogLinearScheduleConfig,
    NetConfig,
    OptimConfig,
    SamplerConfig,
    ScheduleConfig,
    TrainConfig,
    TransformerNetConfig,
)
from ddiff.eval.likelihood import bits_per_token
from ddiff.recipes._cli import Context, DataSplit, Recipe, Segment
from ddiff.recipes._common import (
    FIGURE_DIR,
    METRICS_FILE,
    REPORT_FILE,
    ConfigPath,
    EvaluateConfig,
    GenerateConfig,
    MarkovChain,
    RecipeConfig,
    RecipeError,
    RuntimeConfig,
    _Section,
    paired_difference,
    read_json,
    read_tokens,
    read_training_logs,
    sha256_file,
    subsample,
    write_json,
    write_text,
)

VOCAB = 2048


class TextDataConfig(_Section):
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


class SpanConfig(_Section):
    """Text whose tokens are fixed from a token position."""

    text: str
    position: int


class TextInfillConfig(_Section):
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
    schedule: ScheduleConfig = LogLinearScheduleConfig(eps=0.0)
    net: NetConfig = TransformerNetConfig(dim=64, depth=2, heads=2, cond_dim=64)
    optim: OptimConfig = AdamWConfig(lr=1e-3, warmup_steps=100, ema_decay=0.995)
    train: TrainConfig = TrainConfig(
        max_steps=1500,
        batch_size=32,
        val_batch_size=128,
        val_every_n_steps=300,
        val_num_t=2,
        limit_val_batches=2,
        checkpoint_every_n_steps=300,
        log_every_n_steps=10,
        accelerator="cpu",
        devices=1,
    )
    sampling: SamplerConfig = EulerSamplerConfig(steps=128)
    runtime: RuntimeConfig = RuntimeConfig(threads=1, train_time_limit_s=300.0)
    generate: GenerateConfig = GenerateConfig(num_samples=64, batch_size=64)
    evaluate: EvaluateConfig = EvaluateConfig(num_t=8, max_heldout=256)
    data: TextDataConfig = TextDataConfig()
    infill: TextInfillConfig = TextInfillConfig()


class TextRecipe(Recipe[TextRecipeConfig]):
    """`python -m ddiff.recipes.text`: see the module docstring."""

    name = "text"
    description = (
        "Train a discrete diffusion model on text (default: State of the Union addresses), "
        "sample, fill in around a prompt and a span, evaluate against baselines and write a "
        "report.\n\nPositions are 0-based token positions."
    )
    config_type = TextRecipeConfig
    num_tokens = VOCAB
    sample_suffix = ".txt"
    graph_choices: ClassVar[dict[str, dict[str, Any]]] = {
        "absorbing": {"kind": "absorbing", "num_tokens": VOCAB},
        "uniform": {"kind": "uniform", "num_tokens": VOCAB},
    }
    data_help = 'UTF-8 text file (.txt: one document; .jsonl: one {"text": ...} per line)'

    def __init__(self) -> None:
        self._data_cache: dict[str, DataSplit] = {}

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--prompt", help="text fixed at the start of every infilled sample")
        parser.add_argument(
            "--span",
            dest="spans",
            action="append",
            metavar="TEXT@POS",
            help="text fixed from token position POS (repeatable)",
        )

    def configure(self, config: TextRecipeConfig, args: argparse.Namespace) -> TextRecipeConfig:
        overrides: dict[str, Any] = {}
        if args.data is not None:
            overrides["data.path"] = str(args.data)
        if args.prompt is not None:
            overrides["infill.prompt"] = args.prompt or None
        if args.spans:
            spans = []
            for text in args.spans:
                value, sep, position = text.rpartition("@")
                if not sep or not value:
                    raise RecipeError(f"--span {text}: expected TEXT@POSITION")
                try:
                    spans.append({"text": value, "position": int(position)})
                except ValueError:
                    raise RecipeError(
                        f"--span {text}: position {position!r} is not an integer"
                    ) from None
            overrides["infill.spans"] = spans
        return config.with_overrides(overrides, "command-line options") if overrides else config

    # -- data --

    def load_data(self, config: TextRecipeConfig) -> DataSplit:
        key = config.data.model_dump_json()
        if key not in self._data_cache:
            cfg = config.data
            split = _shipped(cfg) if cfg.path is None else _from_file(cfg)
            split.provenance.update(
                num_train=int(split.train.shape[0]), num_heldout=int(split.heldout.shape[0])
            )
            self._data_cache[key] = split
        return self._data_cache[key]

    def datamodule(self, config: TextRecipeConfig, data: DataSplit) -> Any:
        from ddiff.training import TokenDataModule

        return TokenDataModule(
            data.train,
            data.heldout,
            batch_size=config.train.batch_size,
            val_batch_size=config.train.val_batch_size,
            num_tokens=VOCAB,
            seed=config.train.seed,
            num_workers=config.train.num_workers,
        )

    def sample_length(self, config: TextRecipeConfig) -> int:
        return config.data.length

    def segments(self, config: TextRecipeConfig) -> list[Segment]:
        from ddiff.domains.text import encode

        out = []
        pieces = [] if config.infill.prompt is None else [("--prompt", config.infill.prompt, 0)]
        pieces += [
            (f"span {s.text!r}@{s.position}", s.text, s.position) for s in config.infill.spans
        ]
        for source, text, position in pieces:
            try:
                tokens = encode(text)
            except ValueError as err:
                raise RecipeError(f"{source}: {err}") from err
            out.append(Segment(tuple(tokens.tolist()), position, text, source))
        return out

    def write_samples(self, path: Path, tokens: Tensor, prefix: str) -> None:
        from ddiff.domains.text import decode

        blocks = [f"### {prefix} {i}\n{decode(row)}\n" for i, row in enumerate(tokens)]
        path.write_text("\n".join(blocks), encoding="utf-8")

    def evaluate(self, ctx: Context[TextRecipeConfig]) -> None:
        evaluate_text(self, ctx)


def _shipped(cfg: TextDataConfig) -> DataSplit:
    from ddiff.domains.text import load_sotu_windows

    provenance = {
        "source": "shipped: State of the Union addresses since 1946 (ddiff.domains.text)",
        "split": "by address (domains/text/README.md)",
        "length": cfg.length,
    }
    return DataSplit(
        load_sotu_windows("train", cfg.length), load_sotu_windows("heldout", cfg.length), provenance
    )


def _from_file(cfg: TextDataConfig, option: str = "--data") -> DataSplit:
    from ddiff.domains.text import EOT_ID, encode

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
    stream = torch.cat([torch.cat([encode(d), torch.tensor([EOT_ID])]) for d in documents])
    length = cfg.length
    held_tokens = round(cfg.heldout_fraction * stream.numel())
    cut = stream.numel() - held_tokens
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
    return DataSplit(
        train_stream.unfold(0, length, length).clone(),
        held_stream.unfold(0, length, length).clone(),
        provenance,
    )


# -- evaluation -------------------------------------------------------------------------------------


def _texts(tokens: Tensor) -> list[str]:
    from ddiff.domains.text import decode

    return [decode(row, skip_special_tokens=True) for row in tokens]


def _set_metrics(tokens: Tensor, train_words: list[str]) -> dict[str, Any]:
    from ddiff.eval.text_metrics import distinct_n, novel_ngram_rate, unigram_entropy

    texts = [t if t.strip() else "." for t in _texts(tokens)]
    return {
        "num": int(tokens.shape[0]),
        **{f"distinct_{n}": distinct_n(texts, n) for n in (1, 2, 3, 4)},
        "novel_4gram_rate": novel_ngram_rate(texts, train_words, 4),
        "unigram_entropy": unigram_entropy(texts),
        "token_distinct_1": distinct_n(tokens, 1),
    }


def evaluate_text(recipe: TextRecipe, ctx: Context[TextRecipeConfig]) -> None:
    """Metrics, baselines, plots and the report of a text run (see the module doc)."""
    from ddiff.domains.text import bits_per_character, count_characters

    config, out = ctx.config, ctx.out
    pre = recipe.load(ctx)
    data = recipe.evaluation_data(ctx)
    model_recipe, foreign, pool = data.record, data.foreign, data.heldout
    ev = config.evaluate
    heldout = pool[torch.as_tensor(subsample(pool.shape[0], ev.max_heldout, ev.seed))]
    print(f"evaluate: likelihood bound on {heldout.shape[0]} held-out windows", flush=True)
    bound = bits_per_token(pre, heldout, num_t=ev.num_t, seed=ev.seed, batch_size=ev.batch_size)
    characters = count_characters(heldout)
    total_nats = float(bound.per_sequence.sum()) * heldout.shape[1] * math.log(2.0)
    bpc = bits_per_character(total_nats, characters)
    train = data.train
    bigram = MarkovChain(VOCAB, 1, alpha=0.05).fit([r.numpy() for r in train])
    bigram_bits = bigram.nll_bits([r.numpy() for r in heldout]) / heldout.shape[1]
    diff, diff_se = paired_difference(bound.per_sequence, bigram_bits)
    tokens_per_char = heldout.numel() / characters
    where = (
        f"{heldout.shape[0]} windows of {config.data.path}"
        if foreign
        else f"{heldout.shape[0]} held-out windows"
    )
    print(
        f"bits/token: {bound.bits_per_token:.4f} ± {bound.stderr:.4f} ({bpc:.4f} bits/char, "
        f"diffusion bound, {where}); bigram: {bigram_bits.mean():.4f}",
        flush=True,
    )
    likelihood = {
        "diffusion_bound": {**bound.as_dict(), "bits_per_character": bpc},
        "bigram_nll": {
            "bits_per_token": float(bigram_bits.mean()),
            "stderr": float(bigram_bits.std(ddof=1) / math.sqrt(bigram_bits.size)),
            "bits_per_character": float(bigram_bits.mean()) * tokens_per_char,
        },
        "bound_minus_bigram": {"mean": diff, "stderr": diff_se},
        "uniform_bits_per_token": math.log2(VOCAB),
        "characters": characters,
        "heldout": where,
    }

    samples = read_tokens(out / "samples_tokens.npy")
    infill = read_tokens(out / "infill_tokens.npy")
    n = samples.shape[0] if samples is not None else config.generate.num_samples
    rng = np.random.default_rng(ev.seed)
    train_text = _texts(train)
    real_rows = subsample(train.shape[0], n, ev.seed + 1)
    rest = [train_text[i] for i in np.setdiff1d(np.arange(train.shape[0]), real_rows)]
    length = heldout.shape[1]
    bigram_samples = torch.from_numpy(bigram.sample(n, length, rng))
    shuffled_rows = heldout[torch.as_tensor(subsample(heldout.shape[0], n, ev.seed + 2))]
    shuffled = torch.stack([r[torch.from_numpy(rng.permutation(length))] for r in shuffled_rows])
    print("evaluate: sample metrics and baselines", flush=True)
    sets: dict[str, dict[str, Any]] = {}
    if samples is not None:
        sets["diffusion samples"] = _set_metrics(samples, train_text)
    sets["real (training windows)"] = _set_metrics(train[torch.as_tensor(real_rows)], rest)
    sets["bigram samples"] = _set_metrics(bigram_samples, train_text)
    sets["shuffled held-out"] = _set_metrics(shuffled, train_text)
    sets["held-out (reference)"] = _set_metrics(
        heldout[torch.as_tensor(subsample(heldout.shape[0], n, ev.seed + 3))], train_text
    )

    infill_metrics = None
    examples: list[str] = []
    if infill is not None and (out / "infill.json").is_file():
        segments = recipe.segments(config)
        spans = [s.span(length) for s in segments]
        kept = torch.ones(infill.shape[0], dtype=torch.bool)
        for seg, (a, b) in zip(segments, spans, strict=True):
            kept &= (infill[:, a:b] == torch.tensor(seg.tokens)).all(dim=1)
        if not bool(kept.all()):
            raise RuntimeError(f"{out}: {int((~kept).sum())} infilled samples lost their text")
        infill_metrics = {
            "segments": [
                {"text": s.text, "start": a, "end": b, "source": s.source}
                for s, (a, b) in zip(segments, spans, strict=True)
            ],
            "num_samples": int(infill.shape[0]),
            "num_exact": int(kept.sum()),
            "metrics": _set_metrics(infill, train_text),
        }
        examples = [_marked(row, spans) for row in infill[:3]]

    figures = out / FIGURE_DIR
    logs = read_training_logs(ctx.model_dir)
    plotted = _plots(figures, logs, sets, float(bigram_bits.mean()))
    metrics = {
        "recipe": "text",
        "model": str(ctx.checkpoint.pretrained if ctx.checkpoint else out / "pretrained"),
        "training": model_recipe.get("training"),
        "data": data.provenance,
        "likelihood": likelihood,
        "sets": sets,
        "infill": infill_metrics,
        "sampling": read_json(out / "samples.json") if (out / "samples.json").is_file() else None,
        "timings_s": recipe.stage_timings(ctx, model_recipe),
    }
    write_json(out / METRICS_FILE, metrics)
    sample_examples = [_marked(row, []) for row in samples[:2]] if samples is not None else []
    write_text(out / REPORT_FILE, _report(config, metrics, plotted, pre, examples, sample_examples))
    print(f"evaluate: wrote {out / METRICS_FILE} and {out / REPORT_FILE}", flush=True)


def _marked(row: Tensor, spans: Sequence[tuple[int, int]]) -> str:
    """The decoded row with the fixed spans in bold (Markdown), on one line."""
    from ddiff.domains.text import decode

    pieces, start = [], 0
    for a, b in sorted(spans):
        pieces.append(decode(row[start:a]))
        fixed = decode(row[a:b])
        # Markdown bold must not start or end with a space: keep the spaces outside.
        lead, trail = fixed[: len(fixed) - len(fixed.lstrip())], fixed[len(fixed.rstrip()) :]
        pieces.append(f"{lead}**{fixed.strip()}**{trail}")
        start = b
    pieces.append(decode(row[start:]))
    return " ".join("".join(pieces).split()).replace("<|endoftext|>", " ⏎ ")


def _plots(
    figures: Path,
    logs: dict[str, list[tuple[int, float]]],
    sets: dict[str, dict[str, Any]],
    bigram_bits: float,
) -> dict[str, str]:
    from ddiff.recipes._report import COLOURS, new_figure, plot_training_curves, save_figure

    made: dict[str, str] = {}
    if plot_training_curves(
        logs, figures / "training.png", "token", {"bigram NLL (held-out)": bigram_bits}
    ):
        made["training"] = f"{FIGURE_DIR}/training.png"
    fig, ax = new_figure(7.0, 3.8)
    colours = [
        COLOURS["samples"],
        COLOURS["real"],
        COLOURS["markov"],
        COLOURS["shuffled"],
        COLOURS["held-out"],
    ]
    width = 0.8 / len(sets)
    for k, ((name, values), colour) in enumerate(zip(sets.items(), colours, strict=False)):
        ax.bar(
            np.arange(5) + k * width,
            [values[f"distinct_{n}"] for n in (1, 2, 3, 4)] + [values["novel_4gram_rate"]],
            width,
            color=colour,
            label=name,
        )
    ax.set_xticks(np.arange(5) + 0.4 - width / 2)
    ax.set_xticklabels(["distinct-1", "distinct-2", "distinct-3", "distinct-4", "novel 4-grams"])
    ax.legend(fontsize=7)
    ax.set_title("diversity and novelty (words)")
    save_figure(fig, figures / "diversity.png")
    made["diversity"] = f"{FIGURE_DIR}/diversity.png"
    return made


def _report(
    config: TextRecipeConfig,
    m: dict[str, Any],
    plots: dict[str, str],
    pre: Any,
    infill_examples: list[str],
    sample_examples: list[str],
) -> str:
    from ddiff.recipes._report import pm, table

    lk = m["likelihood"]
    b, bg, d = lk["diffusion_bound"], lk["bigram_nll"], lk["bound_minus_bigram"]
    tr = m.get("training") or {}
    timings = m.get("timings_s") or {}
    lines = [
        "# Text recipe report",
        "",
        f"Model: `{m['model']}` ({type(pre.graph).__name__}"
        + (f", {tr['num_parameters']:,} parameters" if tr.get("num_parameters") else "")
        + f"). Data: {m['data'].get('source')}"
        + (f", {m['data'].get('num_train'):,} training and {m['data'].get('num_heldout'):,} held-out windows" if m["data"].get("num_train") else "")
        + f" of {config.data.length} tokens.",
    ]  # fmt: skip
    if tr:
        lines.append(
            f"Training: {tr.get('steps')} steps of {config.train.batch_size} windows"
            + (" (stopped by the time limit)" if tr.get("stopped_by_time_limit") else "")
            + f" in {tr.get('seconds', 0):.0f} s."
        )
    if timings:
        parts = [f"{k} {v:.0f} s" for k, v in timings.items() if isinstance(v, int | float)]
        lines.append("Wall time: " + ", ".join(parts) + ".")
    lines += [
        "",
        "## Likelihood on held-out data",
        "",
        f"On {lk['heldout']} ({lk['characters']:,} characters; ± standard error over windows; "
        f"uniform = {math.log2(VOCAB):.0f} bits/token):",
        "",
        table(
            ["model", "bits / token", "bits / character"],
            [
                ["diffusion: likelihood bound", pm(b["bits_per_token"], b["stderr"], 3), b["bits_per_character"]],
                ["bigram (smoothed towards unigrams): exact NLL", pm(bg["bits_per_token"], bg["stderr"], 3), bg["bits_per_character"]],
                ["difference (bound - bigram), paired", pm(d["mean"], d["stderr"], 3), None],
            ],
        ),
        "",
    ]  # fmt: skip
    if "training" in plots:
        lines += [f"![training curves]({plots['training']})", ""]
    sets = m["sets"]
    names = list(sets)
    keys = [
        *[(f"distinct_{n}", f"distinct-{n} (words)") for n in (1, 2, 3, 4)],
        ("novel_4gram_rate", "novel word 4-grams vs training"),
        ("unigram_entropy", "unigram entropy per text (bits, words)"),
        ("token_distinct_1", "distinct-1 (tokens)"),
    ]
    lines += [
        "## Samples against baselines",
        "",
        f"Sets of {sets[names[0]]['num']} windows of {config.data.length} tokens. Real training "
        "windows are the level a perfect model reaches (their novelty is against the other "
        "training windows); the bigram chain and shuffled held-out windows are baselines.",
        "",
        table(["metric", *names], [[label, *[sets[n][k] for n in names]] for k, label in keys], 4),
        "",
    ]
    if "diversity" in plots:
        lines += [f"![diversity]({plots['diversity']})", ""]
    if sample_examples:
        lines += ["Unconditional samples (first two; ⏎ marks an end of document):", ""]
        lines += [f"> {t}" for t in sample_examples for _ in (0,)] + [""]
    inf = m.get("infill")
    if inf:
        fixed = ", ".join(
            f"{s['text']!r} at tokens {s['start']}..{s['end'] - 1}" for s in inf["segments"]
        )
        lines += [
            "## Infill: a prompt and a span",
            "",
            f"Fixed: {fixed}. **{inf['num_exact']} of {inf['num_samples']} samples keep every "
            "fixed token exactly** (checked in code). Examples (fixed text in bold):",
            "",
            *[f"> {t}\n" for t in infill_examples],
        ]
    return "\n".join(lines) + "\n"


RECIPE = TextRecipe()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the text recipe's command line; returns the exit code."""
    return RECIPE.run(argv)


if __name__ == "__main__":
    sys.exit(main())
