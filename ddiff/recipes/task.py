"""The domain plug-in: what a recipe needs to know about DNA, proteins or text.

A `Task` supplies its configuration type and defaults, how to read and split the data, how to
write samples, which motifs infill fixes by default, its baseline, its per-set metrics and its
report sections and figures. Everything else (the stages, the evaluate driver, the report
skeleton and the command line) is written once, in `ddiff.recipes.pipeline` and
`ddiff.recipes.cli`, and works for any task. `docs/extending.md` adds a fourth domain.
"""

from __future__ import annotations

import abc
import argparse
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, Literal, TypeVar

import numpy as np
import torch
from torch import Tensor

from ddiff.conditioning import Motif
from ddiff.recipes.config import RecipeConfig, RecipeError

C = TypeVar("C", bound=RecipeConfig)

Sequences = Tensor | list[Tensor]
"""A set of sequences: rows `[N, L]` of equal length, or a list of 1-D tensors."""

Role = Literal["samples", "real", "baseline", "shuffled", "reference"]
"""What a set of sequences is in the comparison: the model's samples, real training data (the
level a perfect model reaches), the baseline's samples, shuffled held-out data, or the held-out
reference itself."""


@dataclass
class DataSplit:
    """Training and held-out sequences of a recipe, with where they came from.

    Attributes:
        train: the training sequences.
        heldout: the held-out sequences.
        provenance: what `recipe.json` records (source, path, sha256, split rule, counts).
        labels: the class label names of labelled data (empty: unlabelled).
        train_labels: for labelled data, each training sequence's class id `[N]` (indexing
            `labels`).
        heldout_labels: for labelled data, each held-out sequence's class id.
    """

    train: Sequences
    heldout: Sequences
    provenance: dict[str, Any] = field(default_factory=dict)
    labels: tuple[str, ...] = ()
    train_labels: Tensor | None = None
    heldout_labels: Tensor | None = None


@dataclass(frozen=True)
class MarkovBaseline:
    """The n-gram baseline every report compares with (`ddiff.eval.MarkovChain`).

    Attributes:
        label: how the report names it (`"order-3 Markov"`).
        key: its name in metrics.json (`markov3` -> `markov3_nll`, `bound_minus_markov3`).
        order: the chain's order.
        alpha: its smoothing strength per symbol.
    """

    label: str
    key: str
    order: int
    alpha: float = 0.5


@dataclass
class Evaluation:
    """What the evaluate driver computed, handed to a task's metric, figure and report hooks.

    Attributes:
        config: the resolved configuration.
        train: the sequences the model was trained on, in the task's form (`Sequences`: rows
            for the DNA and text tasks, a list for proteins).
        heldout: the scored held-out sequences (a seeded subsample), in the same form.
        samples: the model's sampled rows `[N, L]`, if `sample` ran.
        infill: the infilled rows `[N, L]`, if `infill` ran.
        baseline_rows: rows `[N, L]` drawn from the baseline chain.
        sets: each compared set's sequences, by report name (samples first).
        metrics: each set's metrics, by report name.
        motifs: the infill motifs with their `(start, end)` spans.
        baseline_bits: the baseline's bits per token on `heldout`.
        bound: the diffusion bound on `heldout` (a `ddiff.eval.LikelihoodEstimate`).
    """

    config: Any
    train: Any
    heldout: Any
    samples: Tensor | None
    infill: Tensor | None
    baseline_rows: Tensor
    sets: dict[str, Any]
    metrics: dict[str, dict[str, Any]]
    motifs: list[tuple[Motif, tuple[int, int]]]
    baseline_bits: float
    bound: Any


class Task(abc.ABC, Generic[C]):
    """A domain plug-in. Subclasses set the class variables and implement the abstract hooks;
    the other hooks have defaults that suit sequences of equal length with no padding."""

    name: ClassVar[str]
    """The recipe's name: `python -m ddiff.recipes.<name>`."""
    title: ClassVar[str]
    """How the report's title names the domain (`"DNA"`)."""
    description: ClassVar[str]
    """The command line's description (`--help`)."""
    config_type: ClassVar[type[RecipeConfig]]
    num_tokens: ClassVar[int]
    """The data alphabet of the models (padding included, MASK excluded)."""
    uniform_bits: ClassVar[float]
    """Bits per token of a uniform guess over the real alphabet (the report's reference)."""
    baseline: ClassVar[MarkovBaseline]
    unit: ClassVar[str] = "windows"
    """What one sequence of the data is called in reports (`windows`, `proteins`)."""
    token_unit: ClassVar[str] = "token"
    """What one token is called in reports (`base`, `residue`, `token`)."""
    sample_suffix: ClassVar[str] = ".fasta"
    graph_choices: ClassVar[dict[str, dict[str, Any]]] = {}
    """`--graph` choices: name -> graph config section."""
    data_help: ClassVar[str] = "train on this file instead of the shipped data"
    motif_option: ClassVar[tuple[str, str, str]] = ("--motif", "SEQ@POS", "infill.motifs")
    """The option that fixes a motif, its metavar and the config key it sets."""
    infill_options: ClassVar[dict[str, str]] = {}
    """The task's own options that only apply to infill: `dest` -> option (`--motif-file`)."""

    # -- options --------------------------------------------------------------------------------

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Add options beyond `--data` and the motif option (default: none)."""

    def motif_entry(self, value: str, position: int, source: str) -> dict[str, Any]:
        """The config entry of one `VALUE@POS` motif option; `source` is the option as typed
        (default: `{"sequence": value, "position": position, "name": source}`)."""
        return {"sequence": value, "position": position, "name": source}

    def configure(self, config: C, args: argparse.Namespace) -> C:
        """Apply the domain's own options to the configuration (default: none)."""
        return config

    def default_config(self) -> C:
        """The module's default configuration (equal to `recipes/<name>.yaml`)."""
        return self.config_type.model_validate({"recipe": self.name})  # type: ignore[return-value]

    # -- data -----------------------------------------------------------------------------------

    @abc.abstractmethod
    def load_data(self, config: C) -> DataSplit:
        """Read and split the data (raise `RecipeError` naming the file, record, position)."""

    def training_sequences(self, config: C, data: DataSplit) -> Sequences:
        """What the model trains on (default: `data.train`; DNA adds reverse complements)."""
        return data.train

    def padding(self, config: C) -> tuple[int, int] | None:
        """`(length, pad_token)` when sequences of different lengths are padded (default:
        None, every sequence has the sample length)."""
        return None

    def sample_length(self, config: C) -> int:
        """Length of the sampled rows (default: `config.data.length`)."""
        return int(config.data.length)  # type: ignore[attr-defined]

    def as_rows(self, config: C, seqs: Sequences) -> tuple[Tensor, Tensor | None]:
        """Rows `[N, L]` for the model and the baseline, and the real lengths (None: every
        sequence is a full row; a task with `padding` pads here)."""
        return (seqs if isinstance(seqs, Tensor) else torch.stack(seqs)), None

    def from_rows(self, rows: Tensor) -> Sequences:
        """Sampled rows as the domain's sequences (default: the rows themselves)."""
        return rows

    # -- infill ---------------------------------------------------------------------------------

    @abc.abstractmethod
    def motifs(self, config: C) -> list[Motif]:
        """The infill motifs of the configuration, each named by where it came from (the option
        or config key), their letters validated."""

    @abc.abstractmethod
    def decode(self, tokens: Sequence[int] | Tensor) -> str:
        """Tokens as the user writes them (letters or text), for reports."""

    @abc.abstractmethod
    def write_samples(self, path: Path, rows: Tensor, prefix: str) -> None:
        """Write sampled rows `[N, L]` to `path` (the pipeline makes the write atomic)."""

    # -- evaluation -----------------------------------------------------------------------------

    def metric_reference(self, train: Sequences) -> Any:
        """What `set_metrics` compares copies against (default: the training sequences)."""
        return train

    @abc.abstractmethod
    def set_metrics(
        self, seqs: Sequences, heldout: Sequences, reference: Any, role: Role
    ) -> dict[str, Any]:
        """The metrics of one set against the held-out data (and `reference`, for copies).
        Keys starting with `_` are for figures only and are left out of metrics.json."""

    def reference_set(self, heldout: Sequences, num: int, seed: int) -> Sequences | None:
        """The held-out set compared with itself, a row of the table (default: none)."""
        return None

    def kmer_js(self, samples: Tensor, reference: Sequences, k: int) -> float:
        """The k-mer JS divergence (bits) of sampled rows to `reference`, as the guidance
        comparison reports it (default: k-mers of the token ids, `ddiff.eval` conventions)."""
        from ddiff.eval._common import js_divergence_bits, packed_kmers

        def counts(seqs: Sequences) -> np.ndarray:
            packed = [packed_kmers(np.asarray(s, dtype=np.int64), k, self.num_tokens) for s in seqs]
            codes = np.concatenate(packed) if packed else np.empty(0, np.int64)
            return np.bincount(codes, minlength=self.num_tokens**k)

        return js_divergence_bits(counts(samples), counts(reference), f"{k}-mers")

    def row_checks(self, rows: Tensor) -> dict[str, Any] | None:
        """Checks of sampled rows reported under `padding` in metrics.json (default: none)."""
        return None

    def likelihood_extras(self, ev: Evaluation, likelihood: dict[str, Any]) -> None:
        """Add domain numbers to the likelihood section in place (default: none)."""

    def infill_metrics(self, ev: Evaluation) -> dict[str, Any]:
        """Domain metrics of the infilled samples (default: none)."""
        return {}

    # -- report ---------------------------------------------------------------------------------

    def figures(self, ev: Evaluation, directory: Path) -> dict[str, tuple[str, str]]:
        """Write the domain's figures into `directory`; `{key: (file name, caption)}`. The keys
        `infill_*` go in the infill section, the others under the samples table."""
        return {}

    def data_summary(self, config: C) -> str:
        """The end of the report's data line (default: `of <length> <token unit>s`)."""
        return f" of {self.sample_length(config)} {self.token_unit}s"

    @abc.abstractmethod
    def metric_rows(self, metrics: dict[str, Any]) -> list[list[Any]]:
        """Rows `[label, value per set...]` of the samples-against-baselines table."""

    def sets_intro(self, ev: Evaluation, metrics: dict[str, Any]) -> str:
        """The paragraph before the samples table."""
        return (
            f"Real training {self.unit} are the level a perfect model reaches (compared with the "
            f"other training {self.unit}); the {self.baseline.label} chain's samples and "
            f"shuffled held-out {self.unit} are baselines the samples should beat."
        )

    def report_lines(self, ev: Evaluation, metrics: dict[str, Any]) -> list[str]:
        """Extra Markdown after the samples section (default: none)."""
        return []

    def infill_lines(self, ev: Evaluation, metrics: dict[str, Any]) -> list[str]:
        """Extra Markdown in the infill section (default: none)."""
        return []


# -- helpers shared by tasks -------------------------------------------------------------------------


def select(seqs: Sequences, rows: np.ndarray | Sequence[int]) -> Sequences:
    """The sequences at `rows`, in the same form (rows of a tensor, or items of a list)."""
    if isinstance(seqs, Tensor):
        return seqs[torch.as_tensor(np.asarray(rows, dtype=np.int64))]
    return [seqs[int(i)] for i in rows]


def count(seqs: Sequences) -> int:
    """How many sequences."""
    return int(seqs.shape[0]) if isinstance(seqs, Tensor) else len(seqs)


def in_option_terms(err: Exception) -> str:
    """A library error on one line, its `name='value'` advice in command-line terms
    (`--set data.name=value`)."""
    message = " ".join(str(err).split())
    return re.sub(r"\b(\w+)='(\w+)'", r"--set data.\1=\2", message)


def one_based(message: str) -> str:
    """Say that a reader's `position N` counts from 1 (motif positions count from 0)."""
    return re.sub(r"\bposition (\d+)\b(?! \()", r"position \1 (1-based)", message)


def reader_error(option: str, path: Path, err: ValueError) -> RecipeError:
    """A sequence reader's error as one line that names the option and the file."""
    message = one_based(in_option_terms(err))
    if str(path) not in message:
        # Biopython's own parse errors do not name the file; keep their first sentence.
        message = f"{path}: not a readable FASTA file ({message.split('. ')[0]})"
    return RecipeError(f"{option}: {message}")


def read_user_file(option: str, path: Path | None, reader: Any) -> tuple[Any, dict[str, Any]]:
    """`reader(path)` of a user's `--data` file, with the provenance every run records (path,
    sha256); a missing or unreadable file is a `RecipeError` naming the option and the file."""
    from ddiff.recipes.rundir import sha256_file

    assert path is not None
    if not path.is_file():
        raise RecipeError(f"{option} {path}: no such file")
    try:
        content = reader(path)
    except ValueError as err:
        raise reader_error(option, path, err) from err
    return content, {"source": "file", "path": str(path.resolve()), "sha256": sha256_file(path)}


def encoded_motif(encode: Any, text: str, position: int, source: str) -> Motif:
    """`Motif(encode(text), position, name=source)`, letter errors naming `source`."""
    try:
        tokens = encode(text)
    except ValueError as err:
        raise RecipeError(f"{source}: in the motif, {one_based(str(err))}") from err
    if tokens.numel() == 0:
        raise RecipeError(f"{source}: empty motif")
    return Motif(tuple(tokens.tolist()), position, name=source)


def held_out_records(num: int, fraction: float, seed: int) -> set[int]:
    """A seeded `fraction` of `num` records to hold out (at least one, and one left to train)."""
    order = np.random.default_rng(seed).permutation(num)
    num_held = min(max(1, round(fraction * num)), num - 1)
    return set(order[:num_held].tolist())
