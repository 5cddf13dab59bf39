r"""Protein recipe: train on UniProt proteins, sample, infill around a fixed segment, evaluate.

```console
$ python -m ddiff.recipes.protein                    # everything, shipped data, runs/protein/
$ python -m ddiff.recipes.protein train --data my.fasta --out runs/mine
$ python -m ddiff.recipes.protein infill --checkpoint runs/protein --motif GAGGVGKS@9
```

**Data.** By default the shipped UniProtKB sample (`ddiff.domains.protein.load_uniprot`:
proteins of 50-256 canonical residues, split by accession). Proteins have different lengths:
every sequence is padded at the end with `PAD_TOKEN` to `data.max_length` (256), and the model
learns the padding as data, so it also decides where a protein ends (see `docs/training.md`).
The likelihood bound is reported per real residue (the padding's cost included).
`--data FILE.fasta` trains on the user's proteins: records with `data.min_length` to
`data.max_length` residues are kept (others are counted and skipped), a final stop `*` is
dropped, and a seeded `data.heldout_fraction` of the records is held out. Letters outside the
20 canonical residues follow `data.ambiguous` (`error` by default; `skip` drops such records).

**Infill.** `--motif SEQ@POS` keeps the residues `SEQ` at 0-based position `POS`; the rest of
the protein, its length included, is generated. The default demo keeps the Walker A / P-loop
of Ras, `GAGGVGKS` (residues 10-17 of human HRAS, 1-based), at position 9 as in HRAS.

**Evaluation.** Bound in bits per residue next to an order-2 Markov chain (over residues and
the padding, so it models length too); amino-acid composition KL, 2- and 3-mer JS divergence,
SEG low-complexity fraction, length, and the identity of each sample to its nearest training
protein (memorisation), for the samples and for real, Markov and shuffled baselines.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

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

KMER_SIZES = (2, 3)


class ProteinDataConfig(_Section):
    """Where the proteins come from.

    Attributes:
        path: a protein FASTA file (gzipped or not); None for the shipped UniProt sample.
        min_length: shortest protein kept from a file.
        max_length: longest protein kept, and the padded length the model works with.
        ambiguous: `X B Z J U O`: `error`, `skip` (drop the record) or `split`.
        heldout_fraction: share of a file's records held out.
        seed: seeds the record split.
    """

    path: ConfigPath | None = None
    min_length: int = Field(default=50, ge=1)
    max_length: int = Field(default=256, ge=8)
    ambiguous: Literal["error", "split", "skip"] = "error"
    heldout_fraction: float = Field(default=0.1, gt=0, lt=1)
    seed: int = Field(default=0, ge=0)


class SegmentConfig(_Section):
    """One fixed segment of residues at a 0-based position."""

    sequence: str
    position: int
    name: str | None = None


class ProteinInfillConfig(_Section):
    """The segments kept fixed by `infill` (default: the P-loop of Ras at its HRAS position)."""

    motifs: tuple[SegmentConfig, ...] = (
        SegmentConfig(sequence="GAGGVGKS", position=9, name="Ras P-loop (HRAS 10-17)"),
    )


class ProteinRecipeConfig(RecipeConfig):
    """The protein recipe's configuration; `recipes/protein.yaml` holds exactly these defaults."""

    name = "protein"
    num_tokens = 21  # 20 residues + the padding token

    recipe: str = "protein"
    graph: GraphConfig = AbsorbingGraphConfig(num_tokens=21)
    schedule: ScheduleConfig = LogLinearScheduleConfig(eps=0.0)
    net: NetConfig = TransformerNetConfig(dim=64, depth=2, heads=2, cond_dim=64)
    optim: OptimConfig = AdamWConfig(lr=1e-3, warmup_steps=100, ema_decay=0.995)
    train: TrainConfig = TrainConfig(
        max_steps=1200,
        batch_size=32,
        val_batch_size=128,
        val_every_n_steps=300,
        val_num_t=2,
        limit_val_batches=3,
        checkpoint_every_n_steps=300,
        log_every_n_steps=10,
        accelerator="cpu",
        devices=1,
    )
    sampling: SamplerConfig = EulerSamplerConfig(steps=128)
    runtime: RuntimeConfig = RuntimeConfig(threads=1, train_time_limit_s=300.0)
    generate: GenerateConfig = GenerateConfig(num_samples=128, batch_size=128)
    evaluate: EvaluateConfig = EvaluateConfig(num_t=8, max_heldout=655)
    data: ProteinDataConfig = ProteinDataConfig()
    infill: ProteinInfillConfig = ProteinInfillConfig()


class ProteinRecipe(Recipe[ProteinRecipeConfig]):
    """`python -m ddiff.recipes.protein`: see the module docstring."""

    name = "protein"
    description = (
        "Train a discrete diffusion model on proteins (default: a UniProt sample), sample, "
        "infill around a fixed segment, evaluate against baselines and write a report.\n\n"
        "Positions are 0-based; --motif GAGGVGKS@9 keeps GAGGVGKS at positions 9..16."
    )
    config_type = ProteinRecipeConfig
    num_tokens = 21
    sample_suffix = ".fasta"
    graph_choices: ClassVar[dict[str, dict[str, Any]]] = {
        "absorbing": {"kind": "absorbing", "num_tokens": 21},
        "uniform": {"kind": "uniform", "num_tokens": 21},
    }
    data_help = "protein FASTA file (.fasta or .fasta.gz) to train on, or to evaluate on"

    def __init__(self) -> None:
        self._data_cache: dict[str, DataSplit] = {}

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--motif",
            dest="motifs",
            action="append",
            metavar="SEQ@POS",
            help="keep residues SEQ at 0-based position POS in infill (repeatable)",
        )

    def configure(
        self, config: ProteinRecipeConfig, args: argparse.Namespace
    ) -> ProteinRecipeConfig:
        overrides: dict[str, Any] = {}
        if args.data is not None:
            overrides["data.path"] = str(args.data)
        if args.motifs:
            motifs = []
            for text in args.motifs:
                value, sep, position = text.rpartition("@")
                if not sep or not value:
                    raise RecipeError(f"--motif {text}: expected SEQ@POSITION")
                try:
                    pos = int(position)
                except ValueError:
                    raise RecipeError(
                        f"--motif {text}: position {position!r} is not an integer"
                    ) from None
                motifs.append({"sequence": value, "position": pos, "name": f"--motif {text}"})
            overrides["infill.motifs"] = motifs
        return config.with_overrides(overrides, "command-line options") if overrides else config

    # -- data --

    def load_data(self, config: ProteinRecipeConfig) -> DataSplit:
        key = config.data.model_dump_json()
        if key not in self._data_cache:
            cfg = config.data
            if cfg.min_length > cfg.max_length:
                raise RecipeError(
                    f"data.min_length = {cfg.min_length} is larger than data.max_length = "
                    f"{cfg.max_length}"
                )
            split = _shipped(cfg) if cfg.path is None else _from_file(cfg)
            split.provenance.update(num_train=len(split.train), num_heldout=len(split.heldout))
            self._data_cache[key] = split
        return self._data_cache[key]

    def datamodule(self, config: ProteinRecipeConfig, data: DataSplit) -> Any:
        from ddiff.domains.protein import PAD_TOKEN
        from ddiff.training import TokenDataModule

        return TokenDataModule(
            data.train,
            data.heldout,
            batch_size=config.train.batch_size,
            val_batch_size=config.train.val_batch_size,
            length=config.data.max_length,
            pad_token=PAD_TOKEN,
            num_tokens=PAD_TOKEN + 1,
            seed=config.train.seed,
            num_workers=config.train.num_workers,
        )

    def sample_length(self, config: ProteinRecipeConfig) -> int:
        return config.data.max_length

    def segments(self, config: ProteinRecipeConfig) -> list[Segment]:
        from ddiff.domains.protein import encode

        out = []
        for i, motif in enumerate(config.infill.motifs):
            name = motif.name or motif.sequence
            source = name if name.startswith("--") else f"infill.motifs[{i}] ({name})"
            try:
                tokens = encode(motif.sequence)
            except ValueError as err:
                raise RecipeError(f"{source}: {err}") from err
            if tokens.numel() == 0:
                raise RecipeError(f"{source}: empty segment")
            out.append(
                Segment(tuple(tokens.tolist()), motif.position, motif.sequence.upper(), source)
            )
        return out

    def write_samples(self, path: Path, tokens: Tensor, prefix: str) -> None:
        from ddiff.domains.protein import strip_padding, write_fasta

        proteins = strip_padding(tokens)
        write_fasta(path, proteins, ids=[f"{prefix}{i}" for i in range(len(proteins))])

    def evaluate(self, ctx: Context[ProteinRecipeConfig]) -> None:
        evaluate_protein(self, ctx)


def _shipped(cfg: ProteinDataConfig) -> DataSplit:
    from ddiff.domains.protein import load_uniprot

    train = [t for t in load_uniprot("train") if cfg.min_length <= t.numel() <= cfg.max_length]
    held = [t for t in load_uniprot("heldout") if cfg.min_length <= t.numel() <= cfg.max_length]
    if not train or not held:
        raise RecipeError(
            f"no shipped protein has {cfg.min_length}..{cfg.max_length} residues; the shipped "
            "sample has 50..256"
        )
    provenance = {
        "source": "shipped: UniProtKB sample (ddiff.domains.protein.load_uniprot)",
        "split": "by accession (domains/protein/)",
        "min_length": cfg.min_length,
        "max_length": cfg.max_length,
    }
    return DataSplit(train, held, provenance)


def _from_file(cfg: ProteinDataConfig, option: str = "--data") -> DataSplit:
    from ddiff.domains.protein import read_fasta

    path = cfg.path
    assert path is not None
    if not path.is_file():
        raise RecipeError(f"{option} {path}: no such file")
    try:
        records = read_fasta(path, ambiguous=cfg.ambiguous)
    except ValueError as err:
        message = " ".join(str(err).split())
        for policy in ("split", "skip"):  # the reader's advice, in command-line terms
            message = message.replace(f"ambiguous='{policy}'", f"--set data.ambiguous={policy}")
        if str(path) not in message:
            message = f"{path}: not a readable FASTA file ({message.split('. ')[0]})"
        raise RecipeError(f"{option}: {message}") from err
    kept = [r.tokens for r in records if cfg.min_length <= r.tokens.numel() <= cfg.max_length]
    if len(kept) < 2:
        raise RecipeError(
            f"{option} {path}: {len(kept)} of {len(records)} records have "
            f"{cfg.min_length}..{cfg.max_length} residues; need at least 2 (change "
            "data.min_length / data.max_length with --set)"
        )
    order = np.random.default_rng(cfg.seed).permutation(len(kept))
    num_held = min(max(1, round(cfg.heldout_fraction * len(kept))), len(kept) - 1)
    held_rows = set(order[:num_held].tolist())
    train = [t for i, t in enumerate(kept) if i not in held_rows]
    held = [t for i, t in enumerate(kept) if i in held_rows]
    provenance = {
        "source": "file",
        "path": str(path.resolve()),
        "sha256": sha256_file(path),
        "records": len(records),
        "usable_records": len(kept),
        "split": "records",
        "heldout_fraction": cfg.heldout_fraction,
        "ambiguous": cfg.ambiguous,
        "min_length": cfg.min_length,
        "max_length": cfg.max_length,
    }
    return DataSplit(train, held, provenance)


# -- evaluation -------------------------------------------------------------------------------------


def _set_metrics(
    proteins: list[Tensor], heldout: list[Tensor], train: list[Tensor], identity: bool
) -> dict[str, Any]:
    from ddiff.eval.protein_metrics import (
        composition_kl,
        kmer_js_divergence,
        low_complexity_fraction,
        nearest_identity,
    )

    nonempty = [p for p in proteins if p.numel() > 0]
    lengths = np.array([p.numel() for p in proteins], dtype=float)
    out: dict[str, Any] = {
        "num": len(proteins),
        "empty": len(proteins) - len(nonempty),
        "length_mean": float(lengths.mean()),
        "length_std": float(lengths.std()),
    }
    if not nonempty:
        return out
    out["composition_kl"] = composition_kl(nonempty, heldout)
    for k in KMER_SIZES:
        out[f"js_k{k}"] = kmer_js_divergence(nonempty, heldout, k)
    out["low_complexity"] = low_complexity_fraction(nonempty)
    if identity:
        ids = nearest_identity(nonempty, train)
        out["nearest_identity_mean"] = float(ids.mean())
        out["nearest_identity_ge_0.9"] = float(np.mean(ids >= 0.9))
        out["_identities"] = ids.tolist()
    return out


def evaluate_protein(recipe: ProteinRecipe, ctx: Context[ProteinRecipeConfig]) -> None:
    """Metrics, baselines, plots and the report of a protein run (see the module doc)."""
    from ddiff.domains.protein import PAD_TOKEN, pad_sequences, strip_padding

    config, out = ctx.config, ctx.out
    pre = recipe.load(ctx)
    data = recipe.evaluation_data(ctx)
    model_recipe, foreign, pool = data.record, data.foreign, data.heldout
    ev = config.evaluate
    heldout = [pool[i] for i in subsample(len(pool), ev.max_heldout, ev.seed)]
    length = config.data.max_length
    padded = pad_sequences(heldout, length)
    real = torch.tensor([p.numel() for p in heldout])

    print(f"evaluate: likelihood bound on {len(heldout)} held-out proteins", flush=True)
    bound = bits_per_token(
        pre, padded, num_t=ev.num_t, seed=ev.seed, batch_size=ev.batch_size, lengths=real
    )
    train = data.train
    markov = MarkovChain(PAD_TOKEN + 1, 2).fit([r.numpy() for r in pad_sequences(train, length)])
    markov_nll = markov.nll_bits([r.numpy() for r in padded]) / real.numpy()
    diff, diff_se = paired_difference(bound.per_sequence, markov_nll)
    likelihood_markov = float(np.sum(markov_nll * real.numpy()) / real.sum().item())
    where = (
        f"{len(heldout)} proteins of {config.data.path}"
        if foreign
        else f"{len(heldout)} held-out proteins"
    )
    print(
        f"bits/residue: {bound.bits_per_token:.4f} ± {bound.stderr:.4f} (diffusion bound, "
        f"{where}); order-2 Markov: {likelihood_markov:.4f}",
        flush=True,
    )
    likelihood: dict[str, Any] = {
        "diffusion_bound": bound.as_dict(),
        "markov2_nll": {
            "bits_per_token": likelihood_markov,
            "stderr": float(markov_nll.std(ddof=1) / math.sqrt(markov_nll.size)),
        },
        "bound_minus_markov2": {"mean": diff, "stderr": diff_se},
        "uniform_bits_per_token": math.log2(20),
        "heldout": where,
    }

    rows = read_tokens(out / "samples_tokens.npy")
    infill_rows = read_tokens(out / "infill_tokens.npy")
    n = rows.shape[0] if rows is not None else config.generate.num_samples
    rng = np.random.default_rng(ev.seed)
    real_idx = subsample(len(train), n, ev.seed + 1)
    real_set = [train[i] for i in real_idx]
    rest = [train[i] for i in np.setdiff1d(np.arange(len(train)), real_idx)]
    markov_rows = torch.from_numpy(markov.sample(n, length, rng))
    shuffled = [
        heldout[i][torch.from_numpy(rng.permutation(heldout[i].numel()))]
        for i in subsample(len(heldout), n, ev.seed + 2)
    ]
    print("evaluate: sample metrics and baselines (nearest training identities)", flush=True)
    sets: dict[str, dict[str, Any]] = {}
    stats: dict[str, dict[str, Any]] = {}
    if rows is not None:
        sets["diffusion samples"] = _set_metrics(strip_padding(rows), heldout, train, True)
        stats["diffusion samples"] = _row_stats(rows)
    sets["real (training proteins)"] = _set_metrics(real_set, heldout, rest, True)
    sets["order-2 Markov samples"] = _set_metrics(strip_padding(markov_rows), heldout, train, True)
    stats["order-2 Markov samples"] = _row_stats(markov_rows)
    sets["shuffled held-out"] = _set_metrics(shuffled, heldout, train, False)

    infill_metrics = None
    if infill_rows is not None and (out / "infill.json").is_file():
        segments = recipe.segments(config)
        spans = [s.span(length) for s in segments]
        kept = torch.ones(infill_rows.shape[0], dtype=torch.bool)
        for seg, (a, b) in zip(segments, spans, strict=True):
            kept &= (infill_rows[:, a:b] == torch.tensor(seg.tokens)).all(dim=1)
        if not bool(kept.all()):
            raise RuntimeError(f"{out}: {int((~kept).sum())} infilled samples lost their segment")
        proteins = strip_padding(infill_rows)
        whole = sum(p.numel() >= max(b for _, b in spans) for p in proteins)
        flank = [
            torch.cat([p[: spans[0][0]], p[max(b for _, b in spans) :]])
            for p in proteins
            if p.numel() > 0
        ]
        from ddiff.eval.protein_metrics import composition_kl, kmer_js_divergence

        infill_metrics = {
            "segments": [
                {"sequence": s.text, "start": a, "end": b, "source": s.source}
                for s, (a, b) in zip(segments, spans, strict=True)
            ],
            "num_samples": int(infill_rows.shape[0]),
            "num_exact": int(kept.sum()),
            "num_exact_after_stripping_padding": int(whole),
            "length_mean": float(np.mean([p.numel() for p in proteins])),
            "flank_composition_kl": composition_kl(flank, heldout) if flank else None,
            "flank_js_k2": kmer_js_divergence(flank, heldout, 2) if flank else None,
        }

    figures = out / FIGURE_DIR
    logs = read_training_logs(ctx.model_dir)
    plotted = _plots(
        figures, logs, heldout, rows, markov_rows, infill_rows, infill_metrics, sets,
        float(likelihood["markov2_nll"]["bits_per_token"]),
    )  # fmt: skip
    for values in sets.values():
        values.pop("_identities", None)
    metrics = {
        "recipe": "protein",
        "model": str(ctx.checkpoint.pretrained if ctx.checkpoint else out / "pretrained"),
        "training": model_recipe.get("training"),
        "data": data.provenance,
        "likelihood": likelihood,
        "sets": sets,
        "padding": stats,
        "infill": infill_metrics,
        "sampling": read_json(out / "samples.json") if (out / "samples.json").is_file() else None,
        "timings_s": recipe.stage_timings(ctx, model_recipe),
    }
    write_json(out / METRICS_FILE, metrics)
    write_text(out / REPORT_FILE, _report(config, metrics, plotted, pre))
    print(f"evaluate: wrote {out / METRICS_FILE} and {out / REPORT_FILE}", flush=True)


def _row_stats(rows: Tensor) -> dict[str, Any]:
    """How well-formed sampled padded rows are: residues after the first pad are dropped."""
    from ddiff.domains.protein import PAD_TOKEN

    is_pad = rows == PAD_TOKEN
    first = torch.where(is_pad.any(dim=1), is_pad.int().argmax(dim=1), rows.shape[1])
    after = torch.arange(rows.shape[1])[None, :] >= first[:, None]
    stray = (after & ~is_pad).any(dim=1)
    return {"rows_with_residues_after_padding": float(stray.double().mean())}


def _plots(
    figures: Path,
    logs: dict[str, list[tuple[int, float]]],
    heldout: list[Tensor],
    rows: Tensor | None,
    markov_rows: Tensor,
    infill_rows: Tensor | None,
    infill_metrics: dict[str, Any] | None,
    sets: dict[str, dict[str, Any]],
    markov_bits: float,
) -> dict[str, str]:
    from ddiff.domains.protein import PROTEIN_ALPHABET, strip_padding
    from ddiff.eval.protein_metrics import composition
    from ddiff.recipes._report import (
        COLOURS,
        draw_logo,
        new_figure,
        plot_training_curves,
        position_frequencies,
        save_figure,
    )

    made: dict[str, str] = {}
    if plot_training_curves(
        logs, figures / "training.png", "residue", {"order-2 Markov NLL (held-out)": markov_bits}
    ):
        made["training"] = f"{FIGURE_DIR}/training.png"
    series = [("held-out", heldout, COLOURS["held-out"])]
    if rows is not None:
        series.append(("diffusion samples", strip_padding(rows), COLOURS["samples"]))
    series.append(("order-2 Markov", strip_padding(markov_rows), COLOURS["markov"]))
    fig, (left, right) = new_figure(12.0, 4.0, ncols=2)
    width = 0.8 / len(series)
    for k, (name, prots, colour) in enumerate(series):
        prots = [p for p in prots if p.numel()]
        if prots:
            left.bar(np.arange(20) + k * width, composition(prots), width, color=colour, label=name)
        right.hist(
            [p.numel() for p in prots], bins=np.linspace(0, 256, 33), density=True,
            histtype="step", lw=1.6, color=colour, label=name,
        )  # fmt: skip
    left.set_xticks(np.arange(20) + 0.4 - width / 2)
    left.set_xticklabels(list(PROTEIN_ALPHABET))
    left.set_ylabel("frequency")
    left.set_title("amino-acid composition")
    left.legend(fontsize=8)
    right.set_xlabel("length (residues)")
    right.set_title("protein length")
    right.legend(fontsize=8)
    save_figure(fig, figures / "composition_length.png")
    made["composition"] = f"{FIGURE_DIR}/composition_length.png"
    fig, ax = new_figure(6.0, 3.8)
    for name, colour in (
        ("diffusion samples", COLOURS["samples"]),
        ("real (training proteins)", COLOURS["real"]),
        ("order-2 Markov samples", COLOURS["markov"]),
    ):
        ids = sets.get(name, {}).get("_identities")
        if ids:
            ax.hist(
                ids, bins=np.linspace(0, 1, 41), histtype="step", lw=1.6, color=colour, label=name
            )
    ax.set_xlabel("identity to the nearest training protein")
    ax.set_ylabel("proteins")
    ax.legend(fontsize=8)
    ax.set_title("memorisation: nearest training identity")
    save_figure(fig, figures / "identity.png")
    made["identity"] = f"{FIGURE_DIR}/identity.png"
    if infill_rows is not None and infill_metrics is not None:
        a = min(s["start"] for s in infill_metrics["segments"])
        b = max(s["end"] for s in infill_metrics["segments"])
        lo, hi = max(a - 9, 0), min(b + 12, infill_rows.shape[1])
        fig, ax = new_figure(max(8.0, 0.35 * (hi - lo)), 3.2)
        freqs = position_frequencies(infill_rows[:, lo:hi].numpy(), 21)
        spans = [(s["start"], s["end"]) for s in infill_metrics["segments"]]
        draw_logo(ax, freqs, PROTEIN_ALPHABET + "-", lo, spans)
        ax.set_ylim(0, math.log2(21))
        ax.set_title(
            f"infilled proteins (n = {infill_rows.shape[0]}), fixed segment shaded; - = end"
        )
        ax.set_xlabel("position (0-based)")
        save_figure(fig, figures / "infill_logo.png")
        made["infill_logo"] = f"{FIGURE_DIR}/infill_logo.png"
    return made


def _report(config: ProteinRecipeConfig, m: dict[str, Any], plots: dict[str, str], pre: Any) -> str:
    from ddiff.recipes._report import pm, table

    lk = m["likelihood"]
    b, mk, d = lk["diffusion_bound"], lk["markov2_nll"], lk["bound_minus_markov2"]
    tr = m.get("training") or {}
    timings = m.get("timings_s") or {}
    lines = [
        "# Protein recipe report",
        "",
        f"Model: `{m['model']}` ({type(pre.graph).__name__}"
        + (f", {tr['num_parameters']:,} parameters" if tr.get("num_parameters") else "")
        + f"). Data: {m['data'].get('source')}"
        + (f", {m['data'].get('num_train'):,} training and {m['data'].get('num_heldout'):,} held-out proteins" if m["data"].get("num_train") else "")
        + f", padded to {config.data.max_length}.",
    ]  # fmt: skip
    if tr:
        lines.append(
            f"Training: {tr.get('steps')} steps of {config.train.batch_size} proteins"
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
        f"Bits per residue on {lk['heldout']}, the cost of the padding (the length) included "
        f"(± standard error over proteins; uniform over 20 residues = {math.log2(20):.3f}):",
        "",
        table(
            ["model", "bits / residue"],
            [
                ["diffusion: likelihood bound", pm(b["bits_per_token"], b["stderr"], 4)],
                ["order-2 Markov chain: exact NLL", pm(mk["bits_per_token"], mk["stderr"], 4)],
                ["difference (bound - Markov), paired per protein", pm(d["mean"], d["stderr"], 4)],
            ],
        ),
        "",
    ]
    if "training" in plots:
        lines += [f"![training curves]({plots['training']})", ""]
    sets = m["sets"]
    names = list(sets)
    keys = [
        ("composition_kl", "amino-acid composition KL to held-out (bits)"),
        *[(f"js_k{k}", f"{k}-mer JS divergence to held-out (bits)") for k in KMER_SIZES],
        ("low_complexity", "SEG low-complexity fraction"),
        ("length_mean", "length mean"),
        ("length_std", "length std"),
        ("empty", "empty samples"),
        ("nearest_identity_mean", "nearest training identity (mean)"),
        ("nearest_identity_ge_0.9", "share with identity >= 0.9 (copies)"),
    ]
    rows = [[label, *[sets[n].get(key) for n in names]] for key, label in keys]
    padding = m.get("padding") or {}
    rows.append(
        [
            "rows with residues after their first padding token",
            *[padding.get(n, {}).get("rows_with_residues_after_padding") for n in names],
        ]
    )
    lines += [
        "## Samples against baselines",
        "",
        "Real training proteins are the level a perfect model reaches (their identity is to the "
        "other training proteins); the Markov chain and shuffled held-out proteins are baselines "
        "the samples should beat. A sampled row is cut at its first padding token; the last "
        "row counts the rows that had residues after it (dropped).",
        "",
        table(["metric", *names], rows, 4),
        "",
    ]
    for key, caption in (("composition", "composition and length"), ("identity", "identity")):
        if key in plots:
            lines += [f"![{caption}]({plots[key]})", ""]
    inf = m.get("infill")
    if inf:
        text = ", ".join(
            f"`{s['sequence']}` at {s['start']}..{s['end'] - 1}" for s in inf["segments"]
        )
        lines += [
            "## Infill: generating around a fixed segment",
            "",
            f"Fixed: {text} (0-based). **{inf['num_exact']} of {inf['num_samples']} infilled "
            "samples keep the segment exactly** (checked in code on the padded rows); "
            f"{inf['num_exact_after_stripping_padding']} of them are also at least that long "
            "once cut at their first padding token (the others end before the segment: the "
            "model put padding there).",
            f"Mean length {inf['length_mean']:.1f}; the rest of the proteins vs held-out: "
            f"composition KL {inf['flank_composition_kl'] or float('nan'):.4f} bits, 2-mer JS "
            f"{inf['flank_js_k2'] or float('nan'):.4f} bits.",
            "",
        ]
        if "infill_logo" in plots:
            lines += [f"![infill logo]({plots['infill_logo']})", ""]
    return "\n".join(lines) + "\n"


RECIPE = ProteinRecipe()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the protein recipe's command line; returns the exit code."""
    return RECIPE.run(argv)


if __name__ == "__main__":
    sys.exit(main())
