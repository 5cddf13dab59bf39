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

import math
import sys
import warnings
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import Field
from torch import Tensor

from ddiff.conditioning import Motif
from ddiff.config import AbsorbingGraphConfig, GraphConfig, TrainConfig
from ddiff.domains import protein
from ddiff.eval import protein_metrics
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
from ddiff.recipes.task import (
    DataSplit,
    Evaluation,
    MarkovBaseline,
    Role,
    Task,
    encoded_motif,
    held_out_records,
    read_user_file,
)

KMER_SIZES = (2, 3)


class ProteinDataConfig(Section):
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


class SegmentConfig(Section):
    """One fixed run of residues at a 0-based position."""

    sequence: str
    position: int
    name: str | None = None


class ProteinInfillConfig(Section):
    """The motifs kept fixed by `infill` (default: the P-loop of Ras at its HRAS position)."""

    motifs: tuple[SegmentConfig, ...] = (
        SegmentConfig(sequence="GAGGVGKS", position=9, name="Ras P-loop (HRAS 10-17)"),
    )


class ProteinRecipeConfig(RecipeConfig):
    """The protein recipe's configuration; `recipes/protein.yaml` holds exactly these defaults."""

    name = "protein"
    num_tokens = 21  # 20 residues + the padding token

    recipe: str = "protein"
    graph: GraphConfig = AbsorbingGraphConfig(num_tokens=21)
    train: TrainConfig = cpu_training(1200, every=300, limit_val_batches=3)
    generate: GenerateConfig = GenerateConfig(num_samples=128, batch_size=128)
    evaluate: EvaluateConfig = EvaluateConfig(num_t=8, max_heldout=655)
    data: ProteinDataConfig = ProteinDataConfig()
    infill: ProteinInfillConfig = ProteinInfillConfig()


class ProteinTask(Task[ProteinRecipeConfig]):
    """Proteins over the 20 canonical residues, end-padded; see the module docstring."""

    name = "protein"
    title = "Protein"
    description = (
        "Train a discrete diffusion model on proteins (default: a UniProt sample), sample, "
        "infill around a fixed segment, evaluate against baselines and write a report.\n\n"
        "Positions are 0-based; --motif GAGGVGKS@9 keeps GAGGVGKS at positions 9..16."
    )
    config_type = ProteinRecipeConfig
    num_tokens = protein.PAD_TOKEN + 1
    uniform_bits = math.log2(20)
    baseline = MarkovBaseline("order-2 Markov", "markov2", order=2)
    unit = "proteins"
    token_unit = "residue"
    graph_choices: ClassVar[dict[str, dict[str, Any]]] = {
        "absorbing": {"kind": "absorbing", "num_tokens": 21},
        "uniform": {"kind": "uniform", "num_tokens": 21},
    }
    data_help = "protein FASTA file (.fasta or .fasta.gz) to train on, or to evaluate on"

    # -- data --

    def load_data(self, config: ProteinRecipeConfig) -> DataSplit:
        cfg = config.data
        if cfg.min_length > cfg.max_length:
            raise RecipeError(
                f"data.min_length = {cfg.min_length} is larger than data.max_length = "
                f"{cfg.max_length}"
            )
        if cfg.path is not None:
            return _fasta_split(cfg)
        keep = range(cfg.min_length, cfg.max_length + 1)
        train = [t for t in protein.load_uniprot("train") if t.numel() in keep]
        held = [t for t in protein.load_uniprot("heldout") if t.numel() in keep]
        if not train or not held:
            raise RecipeError(
                f"no shipped protein has {cfg.min_length}..{cfg.max_length} residues; the "
                "shipped sample has 50..256"
            )
        provenance = {
            "source": "shipped: UniProtKB sample (ddiff.domains.protein.load_uniprot)",
            "split": "by accession (domains/protein/)",
            "min_length": cfg.min_length,
            "max_length": cfg.max_length,
        }
        return DataSplit(train, held, provenance)

    def padding(self, config: ProteinRecipeConfig) -> tuple[int, int]:
        return config.data.max_length, protein.PAD_TOKEN

    def sample_length(self, config: ProteinRecipeConfig) -> int:
        return config.data.max_length

    def as_rows(self, config: ProteinRecipeConfig, seqs: Any) -> tuple[Tensor, Tensor]:
        lengths = torch.tensor([seq.numel() for seq in seqs])
        return protein.pad_sequences(seqs, config.data.max_length), lengths

    def from_rows(self, rows: Tensor) -> list[Tensor]:
        return protein.strip_padding(rows)

    # -- infill and samples --

    def motifs(self, config: ProteinRecipeConfig) -> list[Motif]:
        out = []
        for i, motif in enumerate(config.infill.motifs):
            name = motif.name or motif.sequence
            source = name if name.startswith("--") else f"infill.motifs[{i}] ({name})"
            out.append(encoded_motif(protein.encode, motif.sequence, motif.position, source))
        return out

    def decode(self, tokens: Sequence[int] | Tensor) -> str:
        return protein.decode(torch.as_tensor(tokens))

    def write_samples(self, path: Path, rows: Tensor, prefix: str) -> None:
        proteins = protein.strip_padding(rows)
        protein.write_fasta(path, proteins, ids=[f"{prefix}{i}" for i in range(len(proteins))])

    # -- evaluation --

    def set_metrics(self, seqs: Any, heldout: Any, reference: Any, role: Role) -> dict[str, Any]:
        nonempty = [p for p in seqs if p.numel() > 0]
        lengths = np.array([p.numel() for p in seqs], dtype=float)
        out: dict[str, Any] = {
            "num": len(seqs),
            "empty": len(seqs) - len(nonempty),
            "length_mean": float(lengths.mean()),
            "length_std": float(lengths.std()),
        }
        if not nonempty:
            return out
        out["composition_kl"] = protein_metrics.composition_kl(nonempty, heldout)
        for k in KMER_SIZES:
            out[f"js_k{k}"] = protein_metrics.kmer_js_divergence(nonempty, heldout, k)
        out["low_complexity"] = protein_metrics.low_complexity_fraction(nonempty)
        if role != "shuffled":  # a shuffled protein is never a copy; the search is the cost
            ids = protein_metrics.nearest_identity(nonempty, reference)
            out["nearest_identity_mean"] = float(ids.mean())
            out["nearest_identity_ge_0.9"] = float(np.mean(ids >= 0.9))
            out["_identities"] = ids.tolist()
        return out

    def row_checks(self, rows: Tensor) -> dict[str, Any]:
        """How well-formed padded rows are: residues after the first pad are dropped."""
        is_pad = rows == protein.PAD_TOKEN
        first = torch.where(is_pad.any(dim=1), is_pad.int().argmax(dim=1), rows.shape[1])
        after = torch.arange(rows.shape[1])[None, :] >= first[:, None]
        stray = (after & ~is_pad).any(dim=1)
        return {"rows_with_residues_after_padding": float(stray.double().mean())}

    def infill_metrics(self, ev: Evaluation) -> dict[str, Any]:
        assert ev.infill is not None
        proteins = protein.strip_padding(ev.infill)
        first = min(a for _, (a, _) in ev.motifs)
        last = max(b for _, (_, b) in ev.motifs)
        flank = [torch.cat([p[:first], p[last:]]) for p in proteins if p.numel() > 0]
        return {
            "num_exact_after_stripping_padding": int(sum(p.numel() >= last for p in proteins)),
            "length_mean": float(np.mean([p.numel() for p in proteins])),
            "flank_composition_kl": protein_metrics.composition_kl(flank, ev.heldout)
            if flank
            else None,
            "flank_js_k2": protein_metrics.kmer_js_divergence(flank, ev.heldout, 2)
            if flank
            else None,
        }

    # -- report --

    def data_summary(self, config: ProteinRecipeConfig) -> str:
        return f", padded to {config.data.max_length}"

    def metric_rows(self, metrics: dict[str, Any]) -> list[list[Any]]:
        sets, padding = metrics["sets"], metrics.get("padding") or {}
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
        rows = report.metric_rows(sets, keys)
        stray = [(padding.get(n) or {}).get("rows_with_residues_after_padding") for n in sets]
        return [*rows, ["rows with residues after their first padding token", *stray]]

    def sets_intro(self, ev: Evaluation, metrics: dict[str, Any]) -> str:
        return super().sets_intro(ev, metrics) + (
            " A sampled row is cut at its first padding token; the last row counts the rows "
            "that had residues after it (dropped). The bits per residue include the cost of the "
            "padding (the length)."
        )

    def infill_lines(self, ev: Evaluation, metrics: dict[str, Any]) -> list[str]:
        inf = metrics["infill"]
        nan = float("nan")
        return [
            f"{inf['num_exact_after_stripping_padding']} of them are also at least that long "
            "once cut at their first padding token (the others end before the motif: the model "
            f"put padding there). Mean length {inf['length_mean']:.1f}; the rest of the proteins "
            f"vs held-out: composition KL {inf['flank_composition_kl'] or nan:.4f} bits, 2-mer "
            f"JS {inf['flank_js_k2'] or nan:.4f} bits.",
            "",
        ]

    def figures(self, ev: Evaluation, directory: Path) -> dict[str, tuple[str, str]]:
        made: dict[str, tuple[str, str]] = {}
        series = [("held-out", ev.heldout)]
        if ev.samples is not None:
            series.append(("diffusion samples", protein.strip_padding(ev.samples)))
        series.append((self.baseline.label, protein.strip_padding(ev.baseline_rows)))
        fig, (left, right) = report.new_figure(12.0, 4.0, ncols=2)
        width = 0.8 / len(series)
        bins = np.linspace(0, ev.config.data.max_length, 33)
        for k, (name, prots) in enumerate(series):
            prots = [p for p in prots if p.numel()]
            colour = report.set_colour(name)
            if prots:
                comp = protein_metrics.composition(prots)
                left.bar(np.arange(20) + k * width, comp, width, color=colour, label=name)
            lengths = [p.numel() for p in prots]
            right.hist(
                lengths, bins=bins, density=True, histtype="step", lw=1.6, color=colour, label=name
            )
        left.set_xticks(np.arange(20) + 0.4 - width / 2)
        left.set_xticklabels(list(protein.PROTEIN_ALPHABET))
        left.set(ylabel="frequency", title="amino-acid composition")
        left.legend(fontsize=8)
        right.set(xlabel="length (residues)", title="protein length")
        made["composition"] = report.finish(
            fig, right, directory / "composition_length.png", "composition and length"
        )
        identities = {n: v["_identities"] for n, v in ev.metrics.items() if v.get("_identities")}
        made["identity"] = report.histograms(
            identities,
            np.linspace(0, 1, 41),
            directory / "identity.png",
            xlabel="identity to the nearest training protein",
            ylabel="proteins (density)",
            title="memorisation: nearest training identity",
            caption="identity",
        )
        if ev.infill is not None:
            held_rows = self.as_rows(ev.config, ev.heldout)[0]
            alphabet = protein.PROTEIN_ALPHABET + "-"
            made["infill_logo"] = report.infill_logo(
                ev, directory, alphabet, self.num_tokens, held_rows, flank=10
            )
        return made


def _fasta_split(cfg: ProteinDataConfig, option: str = "--data") -> DataSplit:
    """The proteins of a user's FASTA file with an allowed length, split by record."""
    reader = partial(protein.read_fasta, ambiguous=cfg.ambiguous)
    records, provenance = read_user_file(option, cfg.path, reader)
    used = torch.unique(torch.cat([r.tokens for r in records]))
    if set(protein.decode(used)) <= set("ACGTN"):
        warnings.warn(
            f"{option} {cfg.path}: every record uses only the letters A, C, G, T, N: nucleotide "
            "sequences? The protein recipe reads them as the residues Ala, Cys, Gly, Thr, Asn "
            "(use python -m ddiff.recipes.dna for DNA)",
            stacklevel=2,
        )
    kept = [r.tokens for r in records if cfg.min_length <= r.tokens.numel() <= cfg.max_length]
    if len(kept) < 2:
        raise RecipeError(
            f"{option} {cfg.path}: {len(kept)} of {len(records)} records have "
            f"{cfg.min_length}..{cfg.max_length} residues; need at least 2 (change "
            "data.min_length / data.max_length with --set)"
        )
    held = held_out_records(len(kept), cfg.heldout_fraction, cfg.seed)
    provenance |= {
        "records": len(records),
        "usable_records": len(kept),
        "split": "records",
        "heldout_fraction": cfg.heldout_fraction,
        "ambiguous": cfg.ambiguous,
        "min_length": cfg.min_length,
        "max_length": cfg.max_length,
    }
    train = [t for i, t in enumerate(kept) if i not in held]
    return DataSplit(train, [t for i, t in enumerate(kept) if i in held], provenance)


TASK = ProteinTask()
RECIPE = Recipe(TASK)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the protein recipe's command line; returns the exit code."""
    return RECIPE.run(argv)


if __name__ == "__main__":
    sys.exit(main())
