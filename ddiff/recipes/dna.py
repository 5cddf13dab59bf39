r"""DNA recipe: train on *E. coli* promoters, sample, infill sigma-70 boxes, evaluate, report.

```console
$ python -m ddiff.recipes.dna                       # everything, shipped data, runs/dna/
$ python -m ddiff.recipes.dna train --data my.fasta --out runs/mine
$ python -m ddiff.recipes.dna infill --checkpoint runs/dna --motif TTGACA@86 --motif TATAAT@109
$ python -m ddiff.recipes.dna evaluate --checkpoint runs/dna --data other.fasta
```

**Data.** The shipped 150 bp windows upstream of predicted *E. coli* 536 gene starts
(`ddiff.domains.dna.load_promoters`, split by genome coordinate), or `--data FILE.fasta[.gz]`:
windows of `data.length` bases cut from every record and held out by records (at least 10
usable records) or by coordinates, one window away (`ddiff.domains.dna.split_windows`);
letters other than `ACGT` follow `data.ambiguous` (`error`, `split` or `skip`).

**Infill.** `--motif SEQ@POS` fixes `SEQ` at 0-based position `POS` (negative: from the end);
`--motif-file FILE@POS` the consensus of a JASPAR or `.pfm` matrix. The default fixes the
sigma-70 -35 box `TTGACA` at 86 and the -10 box `TATAAT` at 109: the optimal 17 bp spacer,
and 35 bp from the -10 box to the start codon after the window.

**Evaluation.** The bound in bits per base next to an order-3 Markov chain's exact NLL; k-mer
JS divergence (k = 3..6), GC content, promoter PWM hit rates and the copied 20-mer rate, for
the samples, real training windows, the chain's samples and shuffled held-out windows.
`docs/recipes/dna.md` has the details and a measured run.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import Field, model_validator
from torch import Tensor

from ddiff.conditioning import Motif
from ddiff.config import (
    AbsorbingGraphConfig,
    AdamWConfig,
    ConvNetConfig,
    FirstHittingSamplerConfig,
    GraphConfig,
    NetConfig,
    OptimConfig,
    SamplerConfig,
    TrainConfig,
)
from ddiff.domains import dna
from ddiff.eval import dna_metrics
from ddiff.recipes import report
from ddiff.recipes.cli import Recipe, parse_at
from ddiff.recipes.config import (
    ConfigPath,
    EvaluateConfig,
    GenerateConfig,
    RecipeConfig,
    RecipeError,
    Section,
    cpu_training,
)
from ddiff.recipes.task import (
    DataSplit,
    Evaluation,
    MarkovBaseline,
    Role,
    Task,
    encoded_motif,
    in_option_terms,
    read_user_file,
)

KMER_SIZES = (3, 4, 5, 6)
COPY_K = 20


class DnaDataConfig(Section):
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
        labelled: train a label-conditioned model on the shipped labelled windows: the
            promoter windows (label `promoter`) and as many 150 bp windows inside genes (label
            `gene`), split by the same genome coordinates (`ddiff.domains.dna.load_labelled`);
            `net.labels` is then `[promoter, gene]`, and `train` fits a noisy classifier too.
    """

    path: ConfigPath | None = None
    length: int = Field(default=150, ge=8)
    stride: int | None = Field(default=None, ge=1)
    ambiguous: Literal["error", "split", "skip"] = "error"
    split: Literal["auto", "records", "coordinates"] = "auto"
    heldout_fraction: float = Field(default=0.1, gt=0, lt=1)
    reverse_complement: bool = False
    seed: int = Field(default=0, ge=0)
    labelled: bool = False

    @model_validator(mode="after")
    def _labelled_data(self) -> DnaDataConfig:
        if self.labelled and self.path is not None:
            raise ValueError(
                "labelled: the labelled windows are the shipped ones; unset data.path (labelled "
                "FASTA files of your own are not supported yet)"
            )
        if self.labelled and self.reverse_complement:
            raise ValueError(
                "labelled: the labelled windows are oriented (promoters towards their gene, gene "
                "windows on the coding strand); unset reverse_complement"
            )
        return self


class MotifConfig(Section):
    """One fixed motif: a sequence, or the consensus of a position weight matrix file (key
    `jaspar`: a JASPAR or PFM file), at a 0-based position."""

    sequence: str | None = None
    jaspar: ConfigPath | None = None
    position: int
    name: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> MotifConfig:
        if (self.sequence is None) == (self.jaspar is None):
            raise ValueError("give exactly one of sequence and jaspar")
        return self


class DnaInfillConfig(Section):
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
    # Dilated convolutions (3 blocks, dilations 1, 2, 4) with absolute positions, a cosine
    # learning-rate decay over 3,500 steps (about 150 s on one thread), sampled by the exact
    # reverse chain: chosen by benchmarks/dna_sweep.py at equal wall time (docs/benchmarks.md,
    # section 6), where the transformer this replaced lost to the order-3 Markov chain.
    net: NetConfig = ConvNetConfig(max_length=dna.PROMOTER_LENGTH, depth=3)
    optim: OptimConfig = AdamWConfig(lr=1e-3, warmup_steps=100, lr_decay="cosine", ema_decay=0.995)
    train: TrainConfig = cpu_training(3500, every=500)
    sampling: SamplerConfig = FirstHittingSamplerConfig()
    generate: GenerateConfig = GenerateConfig(num_samples=256, batch_size=256)
    evaluate: EvaluateConfig = EvaluateConfig(num_t=16)
    data: DnaDataConfig = DnaDataConfig()
    infill: DnaInfillConfig = DnaInfillConfig()

    @model_validator(mode="after")
    def _labels_of_the_data(self) -> DnaRecipeConfig:
        """Labelled data name the network's labels (`net.labels` may be left out)."""
        names = self.net.labels
        if self.data.labelled and names is None:
            object.__setattr__(self, "net", self.net.model_copy(update={"labels": dna.LABELS}))
        elif self.data.labelled and names is not None and tuple(names) != dna.LABELS:
            raise ValueError(
                f"net.labels: the labelled windows carry {list(dna.LABELS)} (in that order), "
                f"got {list(names)}"
            )
        elif not self.data.labelled and names is not None:
            raise ValueError(
                "net.labels: a label-conditioned network needs labelled data (data.labelled: true)"
            )
        table = getattr(self.net, "max_length", None)  # a network with absolute positions
        if table is not None and table < self.data.length:
            raise ValueError(
                f"net.max_length = {table} is shorter than the windows (data.length = "
                f"{self.data.length}); set net.max_length to at least {self.data.length}"
            )
        return self


class DnaTask(Task[DnaRecipeConfig]):
    """DNA windows over `ACGT`; see the module docstring."""

    name = "dna"
    title = "DNA"
    description = (
        "Train a discrete diffusion model on DNA (default: E. coli promoters), sample, infill "
        "fixed motifs, evaluate against baselines and write a report.\n\n"
        "Positions are 0-based; --motif TTGACA@86 fixes TTGACA at positions 86..91."
    )
    config_type = DnaRecipeConfig
    num_tokens = 4
    uniform_bits = 2.0
    baseline = MarkovBaseline("order-3 Markov", "markov3", order=3)
    token_unit = "base"
    infill_options: ClassVar[dict[str, str]] = {"motif_files": "--motif-file"}
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

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--motif-file",
            dest="motif_files",
            action="append",
            metavar="FILE@POS",
            help="fix the consensus of a JASPAR (.jaspar) or PFM (.pfm) motif file at POS",
        )

    def configure(self, config: DnaRecipeConfig, args: argparse.Namespace) -> DnaRecipeConfig:
        if not args.motif_files:
            return config
        motifs = [m.model_dump(mode="json") for m in config.infill.motifs] if args.motifs else []
        for text in args.motif_files:
            path, position = parse_at("--motif-file", text, "FILE@POS")
            motifs.append({"jaspar": path, "position": position, "name": f"--motif-file {text}"})
        return config.with_overrides({"infill.motifs": motifs}, "command-line options")

    # -- data --

    def load_data(self, config: DnaRecipeConfig) -> DataSplit:
        cfg = config.data
        if cfg.path is not None:
            return _fasta_split(cfg)
        if cfg.length > dna.PROMOTER_LENGTH:
            raise RecipeError(
                f"data.length = {cfg.length}: the shipped promoter windows are "
                f"{dna.PROMOTER_LENGTH} bp; use at most that, or train on your own file with --data"
            )
        provenance = {
            "source": "shipped: E. coli 536 promoter windows (ddiff.domains.dna.load_promoters)",
            "split": "by genome coordinate (domains/dna/README.md)",
            "length": cfg.length,
        }
        if cfg.labelled:
            train, train_labels = dna.load_labelled("train")
            held, held_labels = dna.load_labelled("heldout")
            provenance["source"] = (
                "shipped: E. coli 536 promoter and gene windows (ddiff.domains.dna.load_labelled)"
            )
            provenance["labels"] = {
                name: [int((train_labels == c).sum()), int((held_labels == c).sum())]
                for c, name in enumerate(dna.LABELS)
            }
            return DataSplit(
                train[:, -cfg.length :].contiguous(),
                held[:, -cfg.length :].contiguous(),
                provenance,
                dna.LABELS,
                train_labels,
                held_labels,
            )
        train = dna.load_promoters("train")[:, -cfg.length :].contiguous()
        held = dna.load_promoters("heldout")[:, -cfg.length :].contiguous()
        return DataSplit(train, held, provenance)

    def training_sequences(self, config: DnaRecipeConfig, data: DataSplit) -> Tensor:
        train = data.train
        assert isinstance(train, Tensor)
        if config.data.reverse_complement:
            train = torch.cat([train, dna.reverse_complement(train)])
        return train

    # -- infill and samples --

    def motifs(self, config: DnaRecipeConfig) -> list[Motif]:
        out = []
        for i, motif in enumerate(config.infill.motifs):
            name = motif.name if motif.name and motif.name.startswith("--") else None
            source = name or f"infill.motifs[{i}] ({motif.name or motif.sequence})"
            text = str(motif.sequence)
            if motif.jaspar is not None:
                try:
                    text = dna.read_pwm_consensus(motif.jaspar)
                except ValueError as err:
                    raise RecipeError(f"{source}: {err}") from err
            out.append(encoded_motif(dna.encode, text, motif.position, source))
        return out

    def decode(self, tokens: Sequence[int] | Tensor) -> str:
        return dna.decode(torch.as_tensor(tokens))

    def write_samples(self, path: Path, rows: Tensor, prefix: str) -> None:
        dna.write_fasta(path, rows, ids=[f"{prefix}{i}" for i in range(rows.shape[0])])

    # -- evaluation --

    def set_metrics(self, seqs: Any, heldout: Any, reference: Any, role: Role) -> dict[str, Any]:
        gc = dna_metrics.gc_content(seqs)
        return {
            "num": int(seqs.shape[0]),
            **{f"js_k{k}": dna_metrics.kmer_js_divergence(seqs, heldout, k) for k in KMER_SIZES},
            "gc_mean": gc.mean,
            "gc_std": gc.std,
            "pwm_hit_rates": dna_metrics.pwm_hit_rates(seqs),
            "shine_dalgarno_last20": dna_metrics.pwm_hit_rates(seqs, region=slice(-20, None))[
                "shine_dalgarno"
            ],
            "copied_20mer_rate": dna_metrics.copied_kmer_rate(seqs, reference, COPY_K),
        }

    def reference_set(self, heldout: Any, num: int, seed: int) -> Tensor:
        return heldout

    def infill_metrics(self, ev: Evaluation) -> dict[str, Any]:
        """How the generated flanks (outside the motifs) compare with held-out flanks."""
        spans = [span for _, span in ev.motifs]
        held_flanks = _flanks(ev.heldout, spans)
        flanks = {}
        for name, rows in (
            ("infill", ev.infill),
            ("held-out", ev.heldout),
            ("diffusion samples", ev.samples),
            (f"{self.baseline.label} samples", ev.baseline_rows),
        ):
            if rows is None:
                continue
            pieces = _flanks(rows, spans)
            flanks[name] = {
                **{
                    f"js_k{k}": dna_metrics.kmer_js_divergence(pieces, held_flanks, k)
                    for k in KMER_SIZES
                },
                "gc_mean": dna_metrics.gc_content(pieces).mean,
            }
        return {"flanks": flanks}

    # -- report --

    def metric_rows(self, metrics: dict[str, Any]) -> list[list[Any]]:
        keys = [(f"js_k{k}", f"{k}-mer JS divergence to held-out (bits)") for k in KMER_SIZES]
        keys += [("gc_mean", "GC mean"), ("gc_std", "GC std")]
        keys += [
            (f"pwm_hit_rates/{pwm}", f"{pwm} rate (PWM, >= 0.8)")
            for pwm in ("sigma70_-35", "sigma70_-10", "shine_dalgarno")
        ]
        keys += [
            ("shine_dalgarno_last20", "Shine-Dalgarno in the last 20 bp"),
            ("copied_20mer_rate", f"copied {COPY_K}-mer rate (vs training)"),
        ]
        return report.metric_rows(metrics["sets"], keys)

    def sets_intro(self, ev: Evaluation, metrics: dict[str, Any]) -> str:
        shipped = ev.config.data_path is None  # the shipped promoters, trained and scored
        caveat = (
            " Neighbouring genes share sequence, so real windows have a non-zero copied rate. "
            "The PWM and Shine-Dalgarno rows look for promoter elements in windows that end at "
            "a start codon, as the shipped windows do."
            if shipped
            else " The data is your file, not the shipped promoters: the PWM rows look for "
            "E. coli promoter elements and the Shine-Dalgarno row for a ribosome site before a "
            "start codon at the window's end; they mean something only for such windows."
        )
        return (
            "The held-out reference is the set all others are compared with (its JS is 0 by "
            "definition). " + super().sets_intro(ev, metrics) + caveat
        )

    def infill_lines(self, ev: Evaluation, metrics: dict[str, Any]) -> list[str]:
        flanks = metrics["infill"]["flanks"]
        return [
            "How the generated flanks (everything outside the motifs) compare with the same "
            "positions of held-out windows:",
            "",
            report.table(
                ["flanks of", *[f"JS k={k}" for k in KMER_SIZES], "GC mean"],
                [
                    [name, *[r[f"js_k{k}"] for k in KMER_SIZES], r["gc_mean"]]
                    for name, r in flanks.items()
                ],
                4,
            ),
            "",
        ]

    def figures(self, ev: Evaluation, directory: Path) -> dict[str, tuple[str, str]]:
        samples, heldout, markov = ev.samples, ev.heldout, ev.baseline_rows
        made = {
            "kmer_js": report.plot_by_set(
                ev.metrics,
                KMER_SIZES,
                "js_k{}",
                directory / "kmer_js.png",
                xlabel="k",
                ylabel="k-mer JS divergence to held-out (bits)",
                title="k-mer spectra vs held-out (lower is closer)",
                caption="k-mer JS divergence",
            )
        }
        # 3-mer spectrum, and 6-mer frequencies generated vs held-out.
        generated = {"diffusion samples": samples, f"{self.baseline.label} samples": markov}
        fig, (left, right) = report.new_figure(12.0, 4.0, ncols=2)
        ref3 = _frequencies(heldout, 3)
        order = np.argsort(-ref3)
        left.plot(ref3[order], color=report.COLOURS["held-out"], lw=2, label="held-out")
        for name, seqs in {**generated, "shuffled held-out": ev.sets["shuffled held-out"]}.items():
            if seqs is not None:
                colour = report.set_colour(name)
                left.plot(_frequencies(seqs, 3)[order], color=colour, lw=1, label=name)
        labels = [dna.decode(torch.tensor([i >> 4, (i >> 2) & 3, i & 3])) for i in order]
        left.set_xticks(range(0, 64, 4))
        left.set_xticklabels(labels[::4], rotation=90, fontsize=7, family="monospace")
        left.set(ylabel="3-mer frequency", title="3-mer spectrum (sorted by held-out frequency)")
        left.legend(fontsize=8)
        ref6 = _frequencies(heldout, 6) + 1e-6
        for name, seqs in generated.items():
            if seqs is not None:
                f = _frequencies(seqs, 6) + 1e-6
                right.scatter(ref6, f, s=3, alpha=0.35, color=report.set_colour(name), label=name)
        right.plot([1e-6, 1e-2], [1e-6, 1e-2], color=report.COLOURS["held-out"], lw=0.8)
        right.set(xscale="log", yscale="log", title="6-mer frequencies: generated vs held-out")
        right.set(xlabel="held-out 6-mer frequency (+1e-6)", ylabel="generated (+1e-6)")
        made["kmer_spectrum"] = report.finish(
            fig, right, directory / "kmer_spectrum.png", "k-mer spectrum"
        )
        gc = {
            name: ((seqs == 1) | (seqs == 2)).double().mean(dim=1).numpy()
            for name, seqs in (("held-out", heldout), *generated.items(), ("infill", ev.infill))
            if seqs is not None
        }
        made["gc"] = report.histograms(
            gc,
            np.linspace(0.1, 0.8, 36),
            directory / "gc.png",
            xlabel="GC fraction per sequence",
            title="GC content",
            caption="GC content",
        )
        if samples is not None:  # the 3' end (ribosome binding site): held-out vs samples
            lo = heldout.shape[1] - min(30, heldout.shape[1])
            fig, (top, bottom) = report.new_figure(9.0, 5.0, nrows=2)
            for axis, seqs, title in (
                (top, heldout, "held-out: the last 30 bases of the windows"),
                (bottom, samples, "diffusion samples: the same positions"),
            ):
                freqs = report.position_frequencies(seqs[:, lo:].numpy(), 4)
                report.draw_logo(axis, freqs, dna.DNA_ALPHABET, lo)
                axis.set_title(title)
            bottom.set_xlabel("position in the window (0-based)")
            report.save_figure(fig, directory / "end_logo.png")
            made["end_logo"] = ("end_logo.png", "3' end logo")
        if ev.infill is not None:
            made["infill_logo"] = report.infill_logo(ev, directory, dna.DNA_ALPHABET, 4)
        return made


def _frequencies(seqs: Tensor, k: int) -> np.ndarray:
    counts = dna_metrics.kmer_counts(seqs, k).astype(float)
    return counts / counts.sum()


def _fasta_split(cfg: DnaDataConfig, option: str = "--data") -> DataSplit:
    """Windows of a user's FASTA file, split into training and held-out sets (module doc)."""
    reader = partial(dna.read_fasta, ambiguous=cfg.ambiguous)
    records, provenance = read_user_file(option, cfg.path, reader)
    try:
        split = dna.split_windows(
            records,
            cfg.length,
            stride=cfg.stride,
            split=cfg.split,
            heldout_fraction=cfg.heldout_fraction,
            seed=cfg.seed,
        )
    except ValueError as err:
        raise RecipeError(f"{option} {cfg.path}: {in_option_terms(err)}") from err
    provenance |= {
        "records": len(records),
        "usable_records": split.usable_records,
        "split": split.split,
        "heldout_fraction": cfg.heldout_fraction,
        "ambiguous": cfg.ambiguous,
        "length": cfg.length,
        "stride": cfg.stride or cfg.length,
    }
    return DataSplit(split.train, split.heldout, provenance)


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


TASK = DnaTask()
RECIPE = Recipe(TASK)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the DNA recipe's command line; returns the exit code."""
    return RECIPE.run(argv)


if __name__ == "__main__":
    sys.exit(main())
