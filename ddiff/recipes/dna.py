r"""DNA recipe: train on *E. coli* promoters, sample, infill sigma-70 boxes, evaluate, report.

```console
$ python -m ddiff.recipes.dna                       # everything, shipped data, runs/dna/
$ python -m ddiff.recipes.dna train --data my.fasta --out runs/mine
$ python -m ddiff.recipes.dna infill --checkpoint runs/dna --motif TTGACA@86 --motif TATAAT@109
$ python -m ddiff.recipes.dna evaluate --checkpoint runs/dna --data other.fasta
```

**Data.** By default the shipped 150 bp windows upstream of predicted *E. coli* 536 gene starts
(`ddiff.domains.dna.load_promoters`; training and held-out sets split by genome coordinate).
`--data FILE.fasta` (or `.fasta.gz`) trains on the user's sequences instead: windows of
`data.length` bases are cut from every record, `data.stride` apart, and held out by

- **records** (the default when the file has at least 10 usable records): a seeded random
  `data.heldout_fraction` of the records is held out, all their windows;
- **coordinates** (fewer records, e.g. one genome): the last `data.heldout_fraction` of each
  record's coordinates is held out, with a gap of one window length to the training windows
  (`ddiff.domains.dna.split_by_coordinate`), so no held-out base is in a training window.

Records shorter than one window are skipped; letters other than `ACGT` follow
`data.ambiguous` (`error`, the default, names the file, record and position; `split` cuts
records at runs of `N` and other IUPAC codes; `skip` drops such records).

**Infill.** `--motif SEQ@POS` fixes `SEQ` at 0-based position `POS` of the window (negative
positions count from the end); `--motif-file FILE@POS` takes the consensus of a JASPAR
(`.jaspar`, or a `.pfm` count matrix) motif. Several motifs may be given; they must lie inside
the window and not overlap. The default demo fixes the sigma-70 **-35 box** `TTGACA` at
position 86 and the **-10 box** `TATAAT` at 109: a 17 bp spacer between them (the optimal
spacing) and 35 bp from the end of the -10 box to the start codon that follows the window,
which puts the transcription start ~7 bp after the -10 box and leaves a ~28 nt 5' UTR with
room for the Shine-Dalgarno site. Position 86 is where training windows with a near-consensus
-35/-10 pair (at most 3 mismatches in the two boxes, 17 bp apart) are most often found
(measured over the training set; see `docs/recipes/dna.md`).

**Evaluation.** The held-out likelihood bound in bits per base (standard error over
sequences), next to the exact negative log-likelihood of an order-3 Markov chain fitted on the
training windows; k-mer Jensen-Shannon divergence (k = 3..6), GC content, promoter-motif rates
and the copied 20-mer rate, for the samples and for three baselines of the same size: real
training windows, the Markov chain's samples, and shuffled held-out windows.
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
from pydantic import Field, model_validator
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
    read_training_logs,
    sha256_file,
    subsample,
    write_json,
    write_text,
)

ALPHABET = "ACGT"
KMER_SIZES = (3, 4, 5, 6)
COPY_K = 20


# -- configuration ----------------------------------------------------------------------------------


class DnaDataConfig(_Section):
    """Where the sequences come from and how they are cut and split.

    Attributes:
        path: a FASTA file (gzipped or not); None for the shipped promoter windows.
        length: window length in bases (the shipped windows are 150 bp; a shorter length keeps
            the bases next to the start codon).
        stride: distance between window starts in a record (default: `length`).
        ambiguous: IUPAC codes such as `N`: `error`, `split` or `skip` (see the module doc).
        split: `auto`, `records` or `coordinates` (see the module doc).
        heldout_fraction: share of records (or of each record's coordinates) held out.
        reverse_complement: also train on the reverse complement of every training window
            (for unoriented data; the shipped promoters are oriented towards their gene).
        seed: seeds the record split.
    """

    path: ConfigPath | None = None
    length: int = Field(default=150, ge=8)
    stride: int | None = Field(default=None, ge=1)
    ambiguous: Literal["error", "split", "skip"] = "error"
    split: Literal["auto", "records", "coordinates"] = "auto"
    heldout_fraction: float = Field(default=0.1, gt=0, lt=1)
    reverse_complement: bool = False
    seed: int = Field(default=0, ge=0)


class MotifConfig(_Section):
    """One fixed motif: a sequence, or the consensus of a JASPAR/PFM file, at a position."""

    sequence: str | None = None
    jaspar: ConfigPath | None = None
    position: int
    name: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> MotifConfig:
        if (self.sequence is None) == (self.jaspar is None):
            raise ValueError("give exactly one of sequence and jaspar")
        return self


class DnaInfillConfig(_Section):
    """The motifs kept fixed by `infill` (default: the sigma-70 -35 and -10 boxes)."""

    motifs: tuple[MotifConfig, ...] = (
        MotifConfig(sequence="TTGACA", position=86, name="-35 box"),
        MotifConfig(sequence="TATAAT", position=109, name="-10 box"),
    )


class DnaRecipeConfig(RecipeConfig):
    """The DNA recipe's configuration; `recipes/dna.yaml` holds exactly these defaults."""

    name = "dna"
    num_tokens = 4

    recipe: str = "dna"
    graph: GraphConfig = AbsorbingGraphConfig(num_tokens=4)
    schedule: ScheduleConfig = LogLinearScheduleConfig(eps=0.0)
    net: NetConfig = TransformerNetConfig(dim=64, depth=2, heads=2, cond_dim=64)
    optim: OptimConfig = AdamWConfig(lr=1e-3, warmup_steps=100, ema_decay=0.995)
    train: TrainConfig = TrainConfig(
        max_steps=2000,
        batch_size=32,
        val_batch_size=128,
        val_every_n_steps=400,
        val_num_t=2,
        checkpoint_every_n_steps=400,
        log_every_n_steps=10,
        accelerator="cpu",
        devices=1,
    )
    sampling: SamplerConfig = EulerSamplerConfig(steps=128)
    runtime: RuntimeConfig = RuntimeConfig(threads=1, train_time_limit_s=300.0)
    generate: GenerateConfig = GenerateConfig(num_samples=256, batch_size=256)
    evaluate: EvaluateConfig = EvaluateConfig(num_t=16)
    data: DnaDataConfig = DnaDataConfig()
    infill: DnaInfillConfig = DnaInfillConfig()


# -- data -------------------------------------------------------------------------------------------


def _reader_error(option: str, path: Path, err: ValueError) -> RecipeError:
    """A reader's error as one line that names the option and the file."""
    message = " ".join(str(err).split())
    for policy in ("split", "skip"):  # the reader's advice, in command-line terms
        message = message.replace(f"ambiguous='{policy}'", f"--set data.ambiguous={policy}")
    if str(path) not in message:
        # Biopython's own parse errors do not name the file; keep their first sentence.
        message = f"{path}: not a readable FASTA file ({message.split('. ')[0]})"
    return RecipeError(f"{option}: {message}")


def _windows(tokens: Tensor, length: int, stride: int) -> Tensor:
    from ddiff.domains.dna import windows

    return windows(tokens, length, stride).clone()


def load_fasta_split(cfg: DnaDataConfig, option: str = "--data") -> DataSplit:
    """Windows of a user's FASTA file, split into training and held-out sets (module doc)."""
    from ddiff.domains.dna import read_fasta, split_by_coordinate

    path = cfg.path
    assert path is not None
    if not path.is_file():
        raise RecipeError(f"{option} {path}: no such file")
    try:
        records = read_fasta(path, ambiguous=cfg.ambiguous)
    except ValueError as err:
        raise _reader_error(option, path, err) from err
    length, stride = cfg.length, cfg.stride or cfg.length
    usable = [r for r in records if r.tokens.numel() >= length]
    if not usable:
        longest = max((r.tokens.numel() for r in records), default=0)
        raise RecipeError(
            f"{option} {path}: no record is at least data.length = {length} bases long (the "
            f"longest has {longest}); lower it with --set data.length=N"
        )
    mode = cfg.split
    if mode == "auto":
        mode = "records" if len(usable) >= 10 else "coordinates"
    train: list[Tensor] = []
    heldout: list[Tensor] = []
    if mode == "records":
        if len(usable) < 2:
            raise RecipeError(
                f"{option} {path}: a split by records needs at least 2 records of >= {length} "
                "bases; use --set data.split=coordinates"
            )
        order = np.random.default_rng(cfg.seed).permutation(len(usable))
        num_held = min(max(1, round(cfg.heldout_fraction * len(usable))), len(usable) - 1)
        held = set(order[:num_held].tolist())
        for i, r in enumerate(usable):
            (heldout if i in held else train).append(_windows(r.tokens, length, stride))
    else:
        for r in usable:
            try:
                s = split_by_coordinate(r.tokens, length, stride, cfg.heldout_fraction)
            except ValueError:  # too short to hold out a block: all of it trains
                train.append(_windows(r.tokens, length, stride))
                continue
            train.append(s.train)
            heldout.append(s.heldout)
    x_train = torch.cat(train) if train else torch.zeros(0, length, dtype=torch.long)
    x_held = torch.cat(heldout) if heldout else torch.zeros(0, length, dtype=torch.long)
    if x_held.shape[0] == 0:
        raise RecipeError(
            f"{option} {path}: no held-out window: the records are too short for a coordinate "
            f"split with windows of {length}; give more or longer records"
        )
    provenance = {
        "source": "file",
        "path": str(path.resolve()),
        "sha256": sha256_file(path),
        "records": len(records),
        "usable_records": len(usable),
        "split": mode,
        "heldout_fraction": cfg.heldout_fraction,
        "ambiguous": cfg.ambiguous,
        "length": length,
        "stride": stride,
    }
    return DataSplit(x_train, x_held, provenance)


def load_shipped_split(cfg: DnaDataConfig) -> DataSplit:
    """The shipped promoter windows (cropped to the last `length` bases if shorter)."""
    from ddiff.domains.dna import PROMOTER_LENGTH, load_promoters

    if cfg.length > PROMOTER_LENGTH:
        raise RecipeError(
            f"data.length = {cfg.length}: the shipped promoter windows are {PROMOTER_LENGTH} bp; "
            "use at most that, or train on your own file with --data"
        )
    train = load_promoters("train")[:, -cfg.length :].contiguous()
    held = load_promoters("heldout")[:, -cfg.length :].contiguous()
    provenance = {
        "source": "shipped: E. coli 536 promoter windows (ddiff.domains.dna.load_promoters)",
        "split": "by genome coordinate (domains/dna/README.md)",
        "length": cfg.length,
    }
    return DataSplit(train, held, provenance)


# -- the recipe -------------------------------------------------------------------------------------


def _motif_option(kind: str) -> Any:
    def parse(text: str) -> tuple[str, str]:
        return kind, text

    return parse


class DnaRecipe(Recipe[DnaRecipeConfig]):
    """`python -m ddiff.recipes.dna`: see the module docstring."""

    name = "dna"
    description = (
        "Train a discrete diffusion model on DNA (default: E. coli promoters), sample, infill "
        "fixed motifs, evaluate against baselines and write a report.\n\n"
        "Positions are 0-based; --motif TTGACA@86 fixes TTGACA at positions 86..91."
    )
    config_type = DnaRecipeConfig
    num_tokens = 4
    sample_suffix = ".fasta"
    graph_choices: ClassVar[dict[str, dict[str, Any]]] = {
        "absorbing": {"kind": "absorbing", "num_tokens": 4},
        "uniform": {"kind": "uniform", "num_tokens": 4},
        "jc69": {"kind": "jc69"},
        "k80": {"kind": "k80"},
        "hky85": {"kind": "hky85"},
    }
    data_help = (
        "FASTA file (.fasta or .fasta.gz) to train on, or to evaluate on with evaluate "
        "--checkpoint; see the docs for windows and the held-out split"
    )

    def __init__(self) -> None:
        self._data_cache: dict[str, DataSplit] = {}

    # -- options --

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--motif",
            dest="motifs",
            action="append",
            type=_motif_option("sequence"),
            metavar="SEQ@POS",
            help="fix SEQ at 0-based position POS in infill (repeat for several motifs)",
        )
        parser.add_argument(
            "--motif-file",
            dest="motifs",
            action="append",
            type=_motif_option("jaspar"),
            metavar="FILE@POS",
            help="fix the consensus of a JASPAR (.jaspar) or PFM (.pfm) motif file at POS",
        )

    def configure(self, config: DnaRecipeConfig, args: argparse.Namespace) -> DnaRecipeConfig:
        overrides: dict[str, Any] = {}
        if args.data is not None:
            overrides["data.path"] = str(args.data)
        if args.motifs:
            motifs = []
            for kind, text in args.motifs:
                option = "--motif" if kind == "sequence" else "--motif-file"
                value, sep, position = text.rpartition("@")
                if not sep or not value:
                    raise RecipeError(f"{option} {text}: expected {option[2:].upper()}@POSITION")
                try:
                    pos = int(position)
                except ValueError:
                    raise RecipeError(
                        f"{option} {text}: position {position!r} is not an integer"
                    ) from None
                motifs.append({kind: value, "position": pos, "name": f"{option} {text}"})
            overrides["infill.motifs"] = motifs
        return config.with_overrides(overrides, "command-line options") if overrides else config

    # -- data --

    def load_data(self, config: DnaRecipeConfig) -> DataSplit:
        key = config.data.model_dump_json()
        if key not in self._data_cache:
            cfg = config.data
            split = load_shipped_split(cfg) if cfg.path is None else load_fasta_split(cfg)
            split.provenance.update(
                num_train=int(split.train.shape[0]), num_heldout=int(split.heldout.shape[0])
            )
            self._data_cache[key] = split
        return self._data_cache[key]

    def datamodule(self, config: DnaRecipeConfig, data: DataSplit) -> Any:
        from ddiff.domains.dna import reverse_complement
        from ddiff.training import TokenDataModule

        train = data.train
        if config.data.reverse_complement:
            train = torch.cat([train, reverse_complement(train)])
        return TokenDataModule(
            train,
            data.heldout,
            batch_size=config.train.batch_size,
            val_batch_size=config.train.val_batch_size,
            num_tokens=4,
            seed=config.train.seed,
            num_workers=config.train.num_workers,
        )

    def sample_length(self, config: DnaRecipeConfig) -> int:
        return config.data.length

    def segments(self, config: DnaRecipeConfig) -> list[Segment]:
        from ddiff.domains.dna import encode

        out = []
        for i, motif in enumerate(config.infill.motifs):
            source = motif.name if motif.name and motif.name.startswith("--") else None
            source = source or f"infill.motifs[{i}] ({motif.name or motif.sequence})"
            if motif.jaspar is not None:
                text = jaspar_consensus(motif.jaspar, source)
            else:
                text = str(motif.sequence)
            try:
                tokens = encode(text)
            except ValueError as err:
                raise RecipeError(f"{source}: {err}") from err
            if tokens.numel() == 0:
                raise RecipeError(f"{source}: empty motif")
            out.append(Segment(tuple(tokens.tolist()), motif.position, text.upper(), source))
        return out

    def write_samples(self, path: Path, tokens: Tensor, prefix: str) -> None:
        from ddiff.domains.dna import write_fasta

        write_fasta(path, tokens, ids=[f"{prefix}{i}" for i in range(tokens.shape[0])])

    # -- evaluation --

    def evaluate(self, ctx: Context[DnaRecipeConfig]) -> None:
        evaluate_dna(self, ctx)


def jaspar_consensus(path: Path, source: str) -> str:
    """The consensus sequence of the first motif of a JASPAR (or `.pfm`) file, via Bio.motifs."""
    from Bio import motifs

    if not path.is_file():
        raise RecipeError(f"{source}: no such file {path}")
    fmt = {".pfm": "pfm", ".sites": "sites"}.get(path.suffix.lower(), "jaspar")
    try:
        with open(path, encoding="utf-8") as handle:
            found = list(motifs.parse(handle, fmt))
    except (ValueError, KeyError, IndexError, UnicodeDecodeError) as err:
        raise RecipeError(
            f"{source}: {path} is not a {fmt.upper()} motif file ({' '.join(str(err).split())})"
        ) from err
    if not found:
        raise RecipeError(f"{source}: {path} holds no motif")
    consensus = str(found[0].consensus).upper()
    if not consensus or set(consensus) - set(ALPHABET):
        raise RecipeError(f"{source}: {path}: the motif's consensus {consensus!r} is not ACGT")
    return consensus


# -- evaluation -------------------------------------------------------------------------------------


def _read_tokens(path: Path) -> Tensor | None:
    from ddiff.domains.dna import read_fasta

    if not path.is_file():
        return None
    records = read_fasta(path)
    lengths = {r.tokens.numel() for r in records}
    if len(lengths) != 1:
        raise RecipeError(f"{path}: samples of different lengths; regenerate them")
    return torch.stack([r.tokens for r in records])


def _set_metrics(seqs: Tensor, heldout: Tensor, train: Tensor) -> dict[str, Any]:
    """Distribution metrics of a set against held-out data, and its copied 20-mer rate."""
    from ddiff.eval.dna_metrics import copied_kmer_rate, gc_content, kmer_js_divergence, motif_rates

    gc = gc_content(seqs)
    out: dict[str, Any] = {
        "num": int(seqs.shape[0]),
        **{f"js_k{k}": kmer_js_divergence(seqs, heldout, k) for k in KMER_SIZES},
        "gc_mean": gc.mean,
        "gc_std": gc.std,
        "motif_rates": motif_rates(seqs),
        "shine_dalgarno_last20": motif_rates(seqs, region=slice(-20, None))["shine_dalgarno"],
    }
    out["copied_20mer_rate"] = copied_kmer_rate(seqs, train, COPY_K)
    return out


def _flanks(seqs: Tensor, spans: Sequence[tuple[int, int]]) -> list[Tensor]:
    """The pieces of every sequence outside the fixed spans."""
    length = seqs.shape[1]
    cuts, start = [], 0
    for a, b in sorted(spans):
        if a > start:
            cuts.append((start, a))
        start = max(start, b)
    if start < length:
        cuts.append((start, length))
    return [row[a:b] for row in seqs for a, b in cuts]


def evaluate_dna(recipe: DnaRecipe, ctx: Context[DnaRecipeConfig]) -> None:
    """Metrics, baselines, plots and the report of a DNA run (see the module doc)."""
    from ddiff.eval.dna_metrics import gc_content, kmer_js_divergence

    config, out = ctx.config, ctx.out
    pre = recipe.load(ctx)
    data = recipe.evaluation_data(ctx)
    model_recipe, foreign = data.record, data.foreign
    ev = config.evaluate
    rows = subsample(data.heldout.shape[0], ev.max_heldout, ev.seed)
    heldout = data.heldout[torch.as_tensor(rows)]
    train = data.train

    print(f"evaluate: likelihood bound on {heldout.shape[0]} held-out windows", flush=True)
    bound = bits_per_token(pre, heldout, num_t=ev.num_t, seed=ev.seed, batch_size=ev.batch_size)
    train_np = [r.numpy() for r in train]
    held_np = [r.numpy() for r in heldout]
    markov = MarkovChain(4, 3).fit(train_np)
    markov_nll = markov.nll_bits(held_np) / heldout.shape[1]
    diff, diff_se = paired_difference(bound.per_sequence, markov_nll)
    where = (
        f"{heldout.shape[0]} windows of {config.data.path}"
        if foreign
        else f"{heldout.shape[0]} held-out windows"
    )
    print(
        f"bits/base: {bound.bits_per_token:.4f} ± {bound.stderr:.4f} (diffusion bound, {where}); "
        f"order-3 Markov: {markov_nll.mean():.4f}",
        flush=True,
    )
    likelihood = {
        "diffusion_bound": bound.as_dict(),
        "markov3_nll": {
            "bits_per_token": float(markov_nll.mean()),
            "stderr": float(markov_nll.std(ddof=1) / math.sqrt(markov_nll.size)),
        },
        "bound_minus_markov3": {"mean": diff, "stderr": diff_se},
        "uniform_bits_per_token": 2.0,
        "heldout": where,
    }

    samples = _read_tokens(out / "samples.fasta")
    infill = _read_tokens(out / "infill.fasta")
    sets: dict[str, dict[str, Any]] = {}
    n = int(samples.shape[0]) if samples is not None else config.generate.num_samples
    rng = np.random.default_rng(ev.seed)
    real_rows = subsample(train.shape[0], n, ev.seed + 1)
    real = train[torch.as_tensor(real_rows)]
    rest = np.setdiff1d(np.arange(train.shape[0]), real_rows)
    markov_samples = torch.from_numpy(markov.sample(n, heldout.shape[1], rng))
    shuffled_rows = heldout[torch.as_tensor(subsample(heldout.shape[0], n, ev.seed + 2))]
    shuffled = torch.stack(
        [row[torch.from_numpy(rng.permutation(row.numel()))] for row in shuffled_rows]
    )
    print("evaluate: sample metrics and baselines", flush=True)
    if samples is not None:
        sets["diffusion samples"] = _set_metrics(samples, heldout, train)
    sets["real (training windows)"] = _set_metrics(real, heldout, train[torch.as_tensor(rest)])
    sets["order-3 Markov samples"] = _set_metrics(markov_samples, heldout, train)
    sets["shuffled held-out"] = _set_metrics(shuffled, heldout, train)
    sets["held-out (reference)"] = _set_metrics(heldout, heldout, train)

    infill_metrics: dict[str, Any] | None = None
    segments_info = read_json(out / "infill.json") if (out / "infill.json").is_file() else None
    if infill is not None and segments_info is not None:
        segments = recipe.segments(config)
        length = infill.shape[1]
        spans = [s.span(length) for s in segments]
        kept = torch.ones(infill.shape[0], dtype=torch.bool)
        for seg, (a, b) in zip(segments, spans, strict=True):
            kept &= (infill[:, a:b] == torch.tensor(seg.tokens)).all(dim=1)
        num_exact = int(kept.sum())
        if num_exact != infill.shape[0]:
            raise RuntimeError(
                f"{out / 'infill.fasta'}: {infill.shape[0] - num_exact} samples lost their motifs"
            )
        flank_sets = {
            "infill": infill,
            "held-out": heldout,
            "diffusion samples": samples,
            "order-3 Markov samples": markov_samples,
        }
        held_flanks = _flanks(heldout, spans)
        flank_rows = {}
        for name, seqs in flank_sets.items():
            if seqs is None:
                continue
            pieces = _flanks(seqs, spans)
            gc = gc_content(pieces)
            flank_rows[name] = {
                **{f"js_k{k}": kmer_js_divergence(pieces, held_flanks, k) for k in KMER_SIZES},
                "gc_mean": gc.mean,
            }
        infill_metrics = {
            "motifs": [
                {"sequence": s.text, "start": a, "end": b, "source": s.source}
                for s, (a, b) in zip(segments, spans, strict=True)
            ],
            "num_samples": int(infill.shape[0]),
            "num_exact": num_exact,
            "all_exact": num_exact == infill.shape[0],
            "flanks": flank_rows,
        }

    figures = out / FIGURE_DIR
    logs = read_training_logs(ctx.model_dir)
    plotted = _plots(
        figures,
        logs,
        heldout,
        samples,
        infill,
        markov_samples,
        real,
        shuffled,
        infill_metrics,
        sets,
        float(markov_nll.mean()),
        bound.bits_per_token,
    )
    timings = recipe.stage_timings(ctx, model_recipe)
    metrics = {
        "recipe": "dna",
        "model": str(ctx.checkpoint.pretrained if ctx.checkpoint else out / "pretrained"),
        "training": model_recipe.get("training"),
        "data": data.provenance,
        "likelihood": likelihood,
        "sets": sets,
        "infill": infill_metrics,
        "sampling": read_json(out / "samples.json") if (out / "samples.json").is_file() else None,
        "timings_s": timings,
    }
    write_json(out / METRICS_FILE, metrics)
    write_text(out / REPORT_FILE, _report(config, metrics, plotted, pre))
    print(f"evaluate: wrote {out / METRICS_FILE} and {out / REPORT_FILE}", flush=True)


# -- plots ------------------------------------------------------------------------------------------


def _plots(
    figures: Path,
    logs: dict[str, list[tuple[int, float]]],
    heldout: Tensor,
    samples: Tensor | None,
    infill: Tensor | None,
    markov: Tensor,
    real: Tensor,
    shuffled: Tensor,
    infill_metrics: dict[str, Any] | None,
    sets: dict[str, dict[str, Any]],
    markov_bits: float,
    bound_bits: float,
) -> dict[str, str]:
    from ddiff.eval.dna_metrics import kmer_counts
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
        logs, figures / "training.png", "base", {"order-3 Markov NLL (held-out)": markov_bits}
    ):
        made["training"] = f"{FIGURE_DIR}/training.png"

    # JS divergence against k, per set.
    fig, ax = new_figure(6.0, 3.8)
    styles = {
        "diffusion samples": COLOURS["samples"],
        "real (training windows)": COLOURS["real"],
        "order-3 Markov samples": COLOURS["markov"],
        "shuffled held-out": COLOURS["shuffled"],
    }
    for name, colour in styles.items():
        if name in sets:
            ax.plot(
                KMER_SIZES,
                [sets[name][f"js_k{k}"] for k in KMER_SIZES],
                marker="o",
                color=colour,
                label=name,
            )
    ax.set_yscale("log")
    ax.set_xticks(KMER_SIZES)
    ax.set_xlabel("k")
    ax.set_ylabel("k-mer JS divergence to held-out (bits)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    ax.set_title("k-mer spectra vs held-out (lower is closer)")
    save_figure(fig, figures / "kmer_js.png")
    made["kmer_js"] = f"{FIGURE_DIR}/kmer_js.png"

    # k-mer spectrum: 3-mer frequencies, and 6-mer frequencies samples vs held-out.
    fig, axes = new_figure(12.0, 4.0, ncols=2)
    ref3 = kmer_counts(heldout, 3).astype(float)
    ref3 /= ref3.sum()
    order = np.argsort(-ref3)
    axes[0].plot(ref3[order], color=COLOURS["held-out"], lw=2, label="held-out")
    for name, seqs, colour in (
        ("diffusion samples", samples, COLOURS["samples"]),
        ("order-3 Markov", markov, COLOURS["markov"]),
        ("shuffled held-out", shuffled, COLOURS["shuffled"]),
    ):
        if seqs is None:
            continue
        f = kmer_counts(seqs, 3).astype(float)
        axes[0].plot((f / f.sum())[order], color=colour, lw=1, label=name)
    labels = ["".join(ALPHABET[(i >> (2 * (2 - j))) & 3] for j in range(3)) for i in order]
    axes[0].set_xticks(range(0, 64, 4))
    axes[0].set_xticklabels(labels[::4], rotation=90, fontsize=7, family="monospace")
    axes[0].set_ylabel("3-mer frequency")
    axes[0].set_title("3-mer spectrum (sorted by held-out frequency)")
    axes[0].legend(fontsize=8)
    ref6 = kmer_counts(heldout, 6).astype(float)
    ref6 /= ref6.sum()
    for name, seqs, colour in (
        ("order-3 Markov", markov, COLOURS["markov"]),
        ("diffusion samples", samples, COLOURS["samples"]),
    ):
        if seqs is None:
            continue
        f = kmer_counts(seqs, 6).astype(float)
        f /= f.sum()
        axes[1].scatter(ref6 + 1e-6, f + 1e-6, s=3, alpha=0.35, color=colour, label=name)
    axes[1].plot([1e-6, 1e-2], [1e-6, 1e-2], color=COLOURS["held-out"], lw=0.8)
    axes[1].set_xscale("log")
    axes[1].set_yscale("log")
    axes[1].set_xlabel("held-out 6-mer frequency (+1e-6)")
    axes[1].set_ylabel("generated 6-mer frequency (+1e-6)")
    axes[1].set_title("6-mer frequencies: generated vs held-out")
    axes[1].legend(fontsize=8, markerscale=4)
    save_figure(fig, figures / "kmer_spectrum.png")
    made["kmer_spectrum"] = f"{FIGURE_DIR}/kmer_spectrum.png"

    # GC histogram.
    fig, ax = new_figure(6.0, 3.8)
    bins = np.linspace(0.1, 0.8, 36)

    def gc(seqs: Tensor) -> np.ndarray:
        return ((seqs == 1) | (seqs == 2)).double().mean(dim=1).numpy()

    ax.hist(
        gc(heldout),
        bins=bins,
        density=True,
        color=COLOURS["held-out"],
        alpha=0.25,
        label="held-out",
    )
    for name, seqs, colour in (
        ("diffusion samples", samples, COLOURS["samples"]),
        ("infill", infill, COLOURS["infill"]),
        ("order-3 Markov", markov, COLOURS["markov"]),
    ):
        if seqs is not None:
            ax.hist(
                gc(seqs), bins=bins, density=True, histtype="step", lw=1.6, color=colour, label=name
            )
    ax.set_xlabel("GC fraction per sequence")
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    ax.set_title("GC content")
    save_figure(fig, figures / "gc.png")
    made["gc"] = f"{FIGURE_DIR}/gc.png"

    # Logos: infilled samples around the motifs; held-out vs samples at the 3' end (RBS).
    if infill is not None and infill_metrics is not None:
        starts = [m["start"] for m in infill_metrics["motifs"]]
        ends = [m["end"] for m in infill_metrics["motifs"]]
        lo, hi = max(min(starts) - 12, 0), min(max(ends) + 12, infill.shape[1])
        fig, (top, bottom) = new_figure(max(8.0, 0.22 * (hi - lo)), 5.0, nrows=2)
        spans = list(zip(starts, ends, strict=True))
        draw_logo(top, position_frequencies(infill[:, lo:hi].numpy(), 4), ALPHABET, lo, spans)
        top.set_title(f"infilled samples (n = {infill.shape[0]}), fixed motifs shaded")
        draw_logo(bottom, position_frequencies(heldout[:, lo:hi].numpy(), 4), ALPHABET, lo, spans)
        bottom.set_title(f"held-out promoters (n = {heldout.shape[0]}), same positions")
        bottom.set_xlabel("position in the window (0-based)")
        save_figure(fig, figures / "infill_logo.png")
        made["infill_logo"] = f"{FIGURE_DIR}/infill_logo.png"
    if samples is not None:
        width = min(30, heldout.shape[1])
        lo = heldout.shape[1] - width
        fig, (top, bottom) = new_figure(9.0, 5.0, nrows=2)
        draw_logo(top, position_frequencies(heldout[:, lo:].numpy(), 4), ALPHABET, lo)
        top.set_title("held-out: the last 30 bases before the start codon")
        draw_logo(bottom, position_frequencies(samples[:, lo:].numpy(), 4), ALPHABET, lo)
        bottom.set_title("diffusion samples: the same positions")
        bottom.set_xlabel("position in the window (0-based)")
        save_figure(fig, figures / "end_logo.png")
        made["end_logo"] = f"{FIGURE_DIR}/end_logo.png"
    return made


# -- report -----------------------------------------------------------------------------------------


def _report(config: DnaRecipeConfig, m: dict[str, Any], plots: dict[str, str], pre: Any) -> str:
    from ddiff.recipes._report import pm, table

    lk = m["likelihood"]
    b, mk, d = lk["diffusion_bound"], lk["markov3_nll"], lk["bound_minus_markov3"]
    tr = m.get("training") or {}
    timings = m.get("timings_s") or {}
    lines = [
        "# DNA recipe report",
        "",
        f"Model: `{m['model']}` ({type(pre.graph).__name__}, {pre.config.net.kind} network"
        + (f", {tr['num_parameters']:,} parameters" if tr.get("num_parameters") else "")
        + ").",
        f"Data: {m['data'].get('source')}"
        + (f" `{m['data'].get('path')}`" if m["data"].get("path") else "")
        + (
            f", {m['data'].get('num_train'):,} training and {m['data'].get('num_heldout'):,} held-out windows"
            if m["data"].get("num_train")
            else ""
        )
        + f" of {config.data.length} bp.",
    ]
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
        f"Bits per base on {lk['heldout']} (± standard error over sequences; uniform = 2 bits):",
        "",
        table(
            ["model", "bits / base"],
            [
                [
                    "diffusion: likelihood bound (upper bound on its NLL)",
                    pm(b["bits_per_token"], b["stderr"], 4),
                ],
                ["order-3 Markov chain: exact NLL", pm(mk["bits_per_token"], mk["stderr"], 4)],
                ["difference (bound - Markov), paired", pm(d["mean"], d["stderr"], 4)],
            ],
        ),
        "",
        f"The bound used {b['num_t']} Monte Carlo times per sequence (time-sampling error alone: "
        f"{b['mc_stderr']:.4f}). A bound below the Markov chain's exact NLL means the diffusion "
        "model assigns the held-out data a higher likelihood; above it, the bound may still be "
        "loose rather than the model worse.",
        "",
    ]
    if "training" in plots:
        lines += [f"![training curves]({plots['training']})", ""]
    sets = m["sets"]
    names = list(sets)
    rows = []
    for k in KMER_SIZES:
        rows.append(
            [f"{k}-mer JS divergence to held-out (bits)", *[sets[n][f"js_k{k}"] for n in names]]
        )
    rows.append(["GC mean", *[sets[n]["gc_mean"] for n in names]])
    rows.append(["GC std", *[sets[n]["gc_std"] for n in names]])
    for motif in ("sigma70_-35", "sigma70_-10", "shine_dalgarno"):
        rows.append(
            [f"{motif} rate (PWM, >= 0.8)", *[sets[n]["motif_rates"][motif] for n in names]]
        )
    rows.append(
        ["Shine-Dalgarno in the last 20 bp", *[sets[n]["shine_dalgarno_last20"] for n in names]]
    )
    rows.append(
        [f"copied {COPY_K}-mer rate (vs training)", *[sets[n]["copied_20mer_rate"] for n in names]]
    )
    lines += [
        "## Samples against baselines",
        "",
        f"Every set has {sets[names[0]]['num']} sequences except the held-out reference "
        "(the set all others are compared with; its JS is 0 by definition). Real training "
        "windows are the level a perfect model reaches (their copied rate is against the other "
        "training windows: neighbouring genes share sequence); the Markov chain and shuffled "
        "windows are baselines the samples should beat.",
        "",
        table(["metric", *names], rows, 4),
        "",
    ]
    for key, caption in (
        ("kmer_js", "k-mer JS divergence"),
        ("kmer_spectrum", "k-mer spectrum"),
        ("gc", "GC content"),
        ("end_logo", "3' end logo"),
    ):
        if key in plots:
            lines += [f"![{caption}]({plots[key]})", ""]
    inf = m.get("infill")
    if inf:
        motif_text = ", ".join(
            f"`{x['sequence']}` at {x['start']}..{x['end'] - 1}" for x in inf["motifs"]
        )
        lines += [
            "## Infill: generating around fixed motifs",
            "",
            f"Fixed: {motif_text} (0-based positions). **{inf['num_exact']} of "
            f"{inf['num_samples']} infilled samples keep every motif exactly** (checked in code).",
            "",
            "How the generated flanks (everything outside the motifs) compare with the same "
            "positions of held-out promoters:",
            "",
            table(
                ["flanks of", *[f"JS k={k}" for k in KMER_SIZES], "GC mean"],
                [
                    [name, *[r[f"js_k{k}"] for k in KMER_SIZES], r["gc_mean"]]
                    for name, r in inf["flanks"].items()
                ],
                4,
            ),
            "",
        ]
        if "infill_logo" in plots:
            lines += [f"![infill logo]({plots['infill_logo']})", ""]
    sampling = m.get("sampling")
    if sampling:
        lines += [
            "## Sampling",
            "",
            f"{sampling['sampler']} sampler, {sampling['steps']} steps, {sampling['num_samples']} "
            f"samples in {sampling['seconds']:.0f} s (seed {sampling['seed']}).",
            "",
        ]
    return "\n".join(lines) + "\n"


RECIPE = DnaRecipe()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the DNA recipe's command line; returns the exit code."""
    return RECIPE.run(argv)


if __name__ == "__main__":
    sys.exit(main())
