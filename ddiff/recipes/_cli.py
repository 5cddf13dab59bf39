"""The command line shared by every recipe, and the `Recipe` base class the domains implement.

`python -m ddiff.recipes.<name> [train|sample|infill|evaluate|all] [options]`: with no command
the recipe runs all four steps. A domain recipe subclasses `Recipe` and implements its data,
its fixed segments (motifs, prompts), how samples are written and how they are evaluated; the
stages, options, checks and error handling are here.
"""

from __future__ import annotations

import abc
import argparse
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

import torch
import yaml
from torch import Tensor

from ddiff.conditioning import Clamp, Condition
from ddiff.recipes._common import (
    RECIPE_FILE,
    SAMPLER_KINDS,
    CheckpointInfo,
    RecipeConfig,
    RecipeError,
    check_fresh_for_training,
    check_out_dir,
    draw_samples,
    load_model,
    locate_checkpoint,
    read_json,
    set_threads,
    train_model,
    write_json,
    write_tokens,
)

COMMANDS = ("all", "train", "sample", "infill", "evaluate")

C = TypeVar("C", bound=RecipeConfig)


@dataclass(frozen=True)
class Segment:
    """Tokens fixed at consecutive positions during infill.

    Attributes:
        tokens: the token ids.
        position: 0-based position of the first token (negative: from the end).
        text: how the user wrote it (letters or text), for reports.
        source: where it came from (the option or config key), for error messages.
    """

    tokens: tuple[int, ...]
    position: int
    text: str
    source: str

    def span(self, length: int) -> tuple[int, int]:
        """`(start, end)` in a sequence of `length` (end exclusive)."""
        start = self.position % length if -length <= self.position < length else self.position
        return start, start + len(self.tokens)


def condition_of(segments: Sequence[Segment], length: int, num_tokens: int) -> Clamp:
    """Validate segments against a length (range, no overlap) and return their clamp."""
    spans: list[tuple[Segment, tuple[int, int]]] = []
    for seg in segments:
        if not seg.tokens:
            raise RecipeError(f"{seg.source}: empty")
        if not -length <= seg.position < length:
            raise RecipeError(
                f"{seg.source}: position {seg.position} is out of range for sequences of "
                f"length {length} (use 0..{length - 1})"
            )
        start, end = seg.span(length)
        if end > length:
            raise RecipeError(
                f"{seg.source}: {len(seg.tokens)} tokens from position {start} run past the end "
                f"of the sequence (positions {start}..{end - 1}, last position {length - 1})"
            )
        for other, (a, b) in spans:
            if start < b and a < end:
                raise RecipeError(
                    f"{seg.source} (positions {start}..{end - 1}) overlaps {other.source} "
                    f"(positions {a}..{b - 1}); move one of them"
                )
        spans.append((seg, (start, end)))
    condition = Condition.motifs_at([(seg.position, list(seg.tokens)) for seg in segments])
    try:
        return condition.resolve(length, num_tokens)
    except ValueError as err:
        raise RecipeError(str(err)) from err


@dataclass
class DataSplit:
    """Training and held-out sequences of a recipe, with where they came from.

    Attributes:
        train: `[N, L]` windows, or a list of 1-D sequences (variable lengths).
        heldout: the same for held-out data.
        provenance: what `recipe.json` records (source, path, sha256, split rule, counts).
    """

    train: Any
    heldout: Any
    provenance: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EvaluationData:
    """What `evaluate` scores and compares with.

    Attributes:
        train: the sequences the model was trained on (baselines are fitted on them, samples
            are checked against them for copies).
        heldout: the sequences to score: the held-out split of the training data, or all of a
            `--data` file the model was not trained on (it never saw any of it).
        record: the model run's `recipe.json` (empty without one).
        foreign: True when `heldout` comes from such a file.
        provenance: where the model's training data came from.
    """

    train: Any
    heldout: Any
    record: dict[str, Any]
    foreign: bool
    provenance: dict[str, Any]


@dataclass
class Context(Generic[C]):
    """Everything a stage needs: the resolved configuration, directories and options."""

    config: C
    out: Path
    args: argparse.Namespace
    command: str
    checkpoint: CheckpointInfo | None = None
    timings: dict[str, float] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)

    @property
    def model_dir(self) -> Path:
        """The run directory holding the model (the checkpoint's, or OUT)."""
        if self.checkpoint is not None and self.checkpoint.run_dir is not None:
            return self.checkpoint.run_dir
        return self.out


class Recipe(abc.ABC, Generic[C]):
    """A runnable recipe: data, model, sampling, infill and evaluation of one domain."""

    name: ClassVar[str]
    description: ClassVar[str]
    config_type: ClassVar[type[RecipeConfig]]
    num_tokens: ClassVar[int]
    sample_suffix: ClassVar[str] = ".fasta"
    graph_choices: ClassVar[dict[str, dict[str, Any]]] = {}
    data_help: ClassVar[str] = "train on this file instead of the shipped data"

    # -- domain hooks ---------------------------------------------------------------------------------

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Add domain options (e.g. --motif)."""

    def configure(self, config: C, args: argparse.Namespace) -> C:
        """Apply domain options to the configuration."""
        return config

    @abc.abstractmethod
    def load_data(self, config: C) -> DataSplit:
        """Read and split the data (raise `RecipeError` naming the file/record/position)."""

    @abc.abstractmethod
    def datamodule(self, config: C, data: DataSplit) -> Any:
        """The `TokenDataModule` to train on."""

    @abc.abstractmethod
    def sample_length(self, config: C) -> int:
        """Length of the sampled token sequences."""

    @abc.abstractmethod
    def segments(self, config: C) -> list[Segment]:
        """The infill segments of the configuration (validated letters)."""

    @abc.abstractmethod
    def write_samples(self, path: Path, tokens: Tensor, prefix: str) -> None:
        """Write sampled tokens `[N, L]` to `path` (a temporary file; the caller renames it)."""

    @abc.abstractmethod
    def evaluate(self, ctx: Context[C]) -> None:
        """Compute metrics, write `metrics.json`, plots and `report.md` into `ctx.out`."""

    # -- the stages ------------------------------------------------------------------------------------

    def check_trainable(self, config: C, data: DataSplit) -> None:
        """At least one batch of training sequences."""
        if len(data.train) < config.train.batch_size:
            raise RecipeError(
                f"the data has {len(data.train)} training sequences, fewer than one batch of "
                f"train.batch_size = {config.train.batch_size}; give more data or lower it "
                "with --set train.batch_size=N"
            )

    def condition(self, config: C) -> Clamp:
        """The validated clamp of the infill segments."""
        return condition_of(self.segments(config), self.sample_length(config), self.num_tokens)

    def train(self, ctx: Context[C]) -> None:
        config, out = ctx.config, ctx.out
        resume = bool(ctx.args.resume)
        check_fresh_for_training(out, resume)
        if resume and (out / RECIPE_FILE).is_file():
            previous = read_json(out / RECIPE_FILE)
            if isinstance(previous, dict) and previous.get("recipe") != self.name:
                raise RecipeError(
                    f"--resume: {out} holds a run of the {previous.get('recipe')!r} recipe, not "
                    f"{self.name!r}"
                )
        data = self.load_data(config)
        self.check_trainable(config, data)
        datamodule = self.datamodule(config, data)
        record: dict[str, Any] = {
            "recipe": self.name,
            "config": config.model_dump(mode="json"),
            "data": data.provenance,
            "training": None,
        }
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / RECIPE_FILE, record)
        try:
            record["training"] = train_model(config, out, datamodule, resume=resume)
        except ValueError as err:  # e.g. resuming a checkpoint of another graph
            raise RecipeError(f"training in {out}: {' '.join(str(err).split())}") from err
        write_json(out / RECIPE_FILE, record)
        ctx.timings["train"] = record["training"]["seconds"]

    def load(self, ctx: Context[C]) -> Any:
        """The trained model of the run (`--checkpoint`, else OUT)."""
        info = ctx.checkpoint or locate_checkpoint(ctx.out, "--out")
        return load_model(info, self.name, self.num_tokens)

    def sample(self, ctx: Context[C]) -> None:
        config = ctx.config
        pre = self.load(ctx)
        tokens, record = draw_samples(
            pre,
            config.sampling,
            config.generate.num_samples,
            self.sample_length(config),
            batch_size=config.generate.batch_size,
            seed=config.generate.seed,
            progress=config.runtime.progress,
            label="sample",
        )
        self._write(ctx.out / f"samples{self.sample_suffix}", tokens, "sample")
        write_tokens(ctx.out / "samples_tokens.npy", tokens)
        write_json(ctx.out / "samples.json", record)
        ctx.timings["sample"] = record["seconds"]

    def infill(self, ctx: Context[C]) -> None:
        config = ctx.config
        segments = self.segments(config)
        clamp = self.condition(config)
        pre = self.load(ctx)
        tokens, record = draw_samples(
            pre,
            config.sampling,
            config.generate.num_samples,
            self.sample_length(config),
            batch_size=config.generate.batch_size,
            seed=config.generate.seed + 1,
            condition=clamp,
            progress=config.runtime.progress,
            label="infill",
        )
        kept = (tokens[:, clamp.mask] == clamp.tokens[clamp.mask]).all(dim=1)
        record["segments"] = [
            {"text": s.text, "position": s.position, "source": s.source} for s in segments
        ]
        record["num_exact"] = int(kept.sum())
        record["all_exact"] = bool(kept.all())
        self._write(ctx.out / f"infill{self.sample_suffix}", tokens, "infill")
        write_tokens(ctx.out / "infill_tokens.npy", tokens)
        write_json(ctx.out / "infill.json", record)
        ctx.timings["infill"] = record["seconds"]
        if not record["all_exact"]:  # a library bug, not a user error: fail loudly
            raise RuntimeError(
                f"only {record['num_exact']} of {len(kept)} infilled samples keep the fixed "
                "segments; the samplers' clamping is broken"
            )

    # -- helpers for evaluate ---------------------------------------------------------------------------

    def evaluation_data(self, ctx: Context[C]) -> EvaluationData:
        """What `evaluate` scores and compares with (see `EvaluationData`)."""
        data = self.load_data(ctx.config)
        record = ctx.checkpoint.recipe if ctx.checkpoint is not None else None
        if record is None and (ctx.model_dir / RECIPE_FILE).is_file():
            record = read_json(ctx.model_dir / RECIPE_FILE)
        record = record if isinstance(record, dict) else {}
        trained_on = record.get("data") or {}
        path = ctx.config.data_path
        foreign = path is not None and trained_on.get("sha256") != data.provenance.get("sha256")
        if not foreign:
            return EvaluationData(data.train, data.heldout, record, False, data.provenance)
        pool = (
            data.train + data.heldout
            if isinstance(data.train, list)
            else torch.cat([data.train, data.heldout])
        )
        train = data.train
        recorded = record.get("config", {}).get("data") if record.get("config") else None
        if recorded is not None:  # the model's own training data, for the baselines
            model_config = ctx.config.with_overrides({"data": recorded}, RECIPE_FILE)
            train = self.load_data(model_config).train
        return EvaluationData(train, pool, record, True, trained_on or data.provenance)

    def stage_timings(self, ctx: Context[C], record: dict[str, Any]) -> dict[str, Any]:
        """Seconds per stage: this command's, else those recorded by earlier commands."""
        timings: dict[str, Any] = dict(ctx.timings)
        if "train" not in timings and record.get("training"):
            timings["train"] = record["training"].get("seconds")
        for stage, name in (("sample", "samples.json"), ("infill", "infill.json")):
            if stage not in timings and (ctx.out / name).is_file():
                timings[stage] = read_json(ctx.out / name).get("seconds")
        if ctx.command == "all":
            timings["all_stages"] = time.perf_counter() - ctx.started
        return timings

    def _write(self, path: Path, tokens: Tensor, prefix: str) -> None:
        from ddiff.recipes._common import atomic_path

        with atomic_path(path) as tmp:
            self.write_samples(tmp, tokens, prefix)

    # -- the command line ------------------------------------------------------------------------------

    def default_config(self) -> C:
        """The module's default configuration (equal to `recipes/<name>.yaml`)."""
        return self.config_type.model_validate({"recipe": self.name})  # type: ignore[return-value]

    def parser(self) -> argparse.ArgumentParser:
        p = argparse.ArgumentParser(
            prog=f"python -m ddiff.recipes.{self.name}",
            description=self.description,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.add_argument(
            "command",
            nargs="?",
            default="all",
            choices=COMMANDS,
            help="the step to run (default: all = train, sample, infill, evaluate)",
        )
        p.add_argument(
            "--config", type=Path, help=f"recipe YAML (default: recipes/{self.name}.yaml values)"
        )
        p.add_argument(
            "--out",
            type=Path,
            default=Path("runs") / self.name,
            help="output directory (default: %(default)s)",
        )
        p.add_argument(
            "--checkpoint",
            type=Path,
            help="use the model of this run (or save_pretrained) directory",
        )
        p.add_argument("--data", type=Path, help=self.data_help)
        p.add_argument("--resume", action="store_true", help="continue training the run in --out")
        p.add_argument("--graph", choices=sorted(self.graph_choices), help="forward process")
        p.add_argument("--sampler", choices=sorted(SAMPLER_KINDS), help="reverse sampler")
        p.add_argument("--steps", type=int, help="sampler steps")
        p.add_argument("--num-samples", type=int, help="samples drawn by sample and by infill")
        p.add_argument("--seed", type=int, help="seed of training, sampling and evaluation")
        p.add_argument("--max-steps", type=int, help="training steps")
        p.add_argument(
            "--time-limit", type=float, metavar="SECONDS", help="stop training after this long"
        )
        p.add_argument("--threads", type=int, help="torch threads (default 1; see the docs)")
        p.add_argument("--no-progress", action="store_true", help="no progress bars")
        p.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override any config key, e.g. --set net.dim=128 (VALUE parsed as YAML)",
        )
        self.add_arguments(p)
        return p

    def resolve_config(self, args: argparse.Namespace, recorded: dict[str, Any] | None = None) -> C:
        """The configuration: `--config` (or the run's recorded one, or the defaults), then the
        options on top."""
        config: C
        if args.config is not None:
            config = self.config_type.from_yaml(args.config)  # type: ignore[assignment]
        elif recorded is not None:
            config = self.config_type.validated(  # type: ignore[assignment]
                recorded["config"], f"the run's {RECIPE_FILE}"
            )
        else:
            config = self.default_config()
        overrides: dict[str, Any] = {}
        if args.graph is not None:
            overrides["graph"] = self.graph_choices[args.graph]
            # An absorbing graph needs the schedule to reach the all-MASK limit (eps = 0); the
            # others use a finite final noise (eps = 1e-3, ~1e-3 from their limit), which keeps
            # every kernel finite (dense graphs cannot take infinite noise).
            absorbing = self.graph_choices[args.graph]["kind"] == "absorbing"
            overrides["schedule"] = {"kind": "loglinear", "eps": 0.0 if absorbing else 1e-3}
        if args.sampler is not None:
            overrides["sampling.kind"] = SAMPLER_KINDS[args.sampler]
        for option, key in (
            ("steps", "sampling.steps"),
            ("num_samples", "generate.num_samples"),
            ("max_steps", "train.max_steps"),
            ("time_limit", "runtime.train_time_limit_s"),
            ("threads", "runtime.threads"),
        ):
            value = getattr(args, option)
            if value is not None:
                overrides[key] = value
        if args.seed is not None:
            for key in ("train.seed", "generate.seed", "evaluate.seed"):
                overrides[key] = args.seed
        if args.no_progress:
            overrides["runtime.progress"] = False
        for item in args.set:
            key, sep, value = item.partition("=")
            if not sep:
                raise RecipeError(f"--set expects KEY=VALUE, got {item!r}")
            try:
                overrides[key.strip()] = yaml.safe_load(value)
            except yaml.YAMLError as err:
                raise RecipeError(f"--set {item}: the value is not valid YAML") from err
        if overrides:
            config = config.with_overrides(overrides, "command-line options")
        return self.configure(config, args)

    def run(self, argv: Sequence[str] | None = None) -> int:
        """Parse `argv` and run; user errors print one line on stderr and return 2."""
        parser = self.parser()
        args = parser.parse_args(argv)
        try:
            self._run(args)
        except RecipeError as err:
            return _fail(str(err))
        except (ValueError, FileNotFoundError) as err:
            if os.environ.get("DDIFF_DEBUG"):
                raise
            return _fail(str(err))
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
        return 0

    def _run(self, args: argparse.Namespace) -> None:
        command = args.command
        out: Path = args.out
        check_out_dir(out)
        checkpoint = None
        if args.checkpoint is not None:
            if command in ("all", "train"):
                raise RecipeError(
                    f"--checkpoint is for sample, infill and evaluate; {command} trains a new "
                    "model (use --resume --out DIR to continue a run)"
                )
            checkpoint = locate_checkpoint(args.checkpoint)
        # Steps that use a trained run start from the configuration it was trained with.
        recorded = None
        if command in ("sample", "infill", "evaluate"):
            info = checkpoint or locate_checkpoint(out, "--out")
            recorded = self._recorded(info.recipe, info.run_dir)
        elif args.resume and (out / RECIPE_FILE).is_file():
            recorded = self._recorded(read_json(out / RECIPE_FILE), out)
        config = self.resolve_config(args, recorded)
        ctx: Context[C] = Context(config, out, args, command, checkpoint)
        # Check every input before the first long step, so that a typo fails in a second.
        if command in ("all", "infill"):
            self.condition(config)
        if command in ("all", "train"):
            check_fresh_for_training(out, bool(args.resume))
            self.check_trainable(config, self.load_data(config))
        elif command in ("sample", "infill", "evaluate"):
            self.load(ctx)
            if command == "evaluate" and args.data is not None:
                self.load_data(config)
        set_threads(config.runtime.threads)
        torch.manual_seed(config.train.seed)
        stages = ["train", "sample", "infill", "evaluate"] if command == "all" else [command]
        for stage in stages:
            if config.runtime.progress:
                print(f"== {self.name} recipe: {stage} -> {out}", flush=True)
            getattr(self, stage)(ctx)
        if config.runtime.progress:
            total = time.perf_counter() - ctx.started
            print(f"== done in {total:.0f} s: {out}", flush=True)

    def _recorded(self, recipe: Any, run_dir: Path | None) -> dict[str, Any] | None:
        """A run's `recipe.json`, if it is one of this recipe's (else a clear error)."""
        if recipe is None:
            return None
        if not isinstance(recipe, dict) or not isinstance(recipe.get("config"), dict):
            raise RecipeError(f"{run_dir}/{RECIPE_FILE}: not a recipe record")
        if recipe.get("recipe") != self.name:
            raise RecipeError(
                f"{run_dir}: this run was trained by the {recipe.get('recipe')!r} recipe, not "
                f"{self.name!r}; use python -m ddiff.recipes.{recipe.get('recipe')} for it"
            )
        return recipe


def _fail(message: str) -> int:
    line = " ".join(message.split())
    print(f"error: {line}", file=sys.stderr)
    return 2
