"""The command line of every recipe, built from its task.

`python -m ddiff.recipes.<name> [train|sample|infill|evaluate|all] [options]`: with no command
the recipe runs all four stages. The options, the order of the checks (every input is checked
before the first long stage) and the exit codes (0; 2 for a user error, printed as one line on
stderr; 130 when interrupted) are the same for every task; a task adds its own options.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import yaml

from ddiff.recipes import pipeline
from ddiff.recipes.config import RecipeConfig, RecipeError
from ddiff.recipes.rundir import RunDir, locate_checkpoint, read_json
from ddiff.recipes.task import Task
from ddiff.run import resume_checkpoint

COMMANDS = ("all", *pipeline.STAGES)

SAMPLERS = ("euler", "tau_leaping", "analytic", "first_hitting")
"""`--sampler` choices: the `sampling.kind` names of the configuration."""
_SAMPLER_ALIASES = {
    "tau-leaping": "tau_leaping",
    "first-hitting": "first_hitting",
}  # hyphenated forms


class Recipe:
    """A task's command line.

    Args:
        task: the domain plug-in.

    Example:
        >>> from ddiff.recipes.dna import RECIPE
        >>> RECIPE.parser().prog
        'python -m ddiff.recipes.dna'
    """

    def __init__(self, task: Task[Any]) -> None:
        self.task = task

    @property
    def name(self) -> str:
        """The recipe's name."""
        return self.task.name

    @property
    def config_type(self) -> type[RecipeConfig]:
        """The task's configuration type."""
        return self.task.config_type

    def default_config(self) -> Any:
        """The task's default configuration (equal to `recipes/<name>.yaml`)."""
        return self.task.default_config()

    def motifs(self, config: RecipeConfig) -> list[Any]:
        """The task's infill motifs of `config`."""
        return self.task.motifs(config)

    def parser(self) -> argparse.ArgumentParser:
        """The argument parser: the shared options, then the task's."""
        task = self.task
        p = argparse.ArgumentParser(
            prog=f"python -m ddiff.recipes.{task.name}",
            description=task.description,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.add_argument(
            "command",
            nargs="?",
            default="all",
            choices=COMMANDS,
            help="the stage to run (default: all = train, sample, infill, evaluate)",
        )
        p.add_argument(
            "--config", type=Path, help=f"recipe YAML (default: recipes/{task.name}.yaml values)"
        )
        p.add_argument(
            "--out",
            type=Path,
            default=Path("runs") / task.name,
            help="output directory (default: %(default)s)",
        )
        p.add_argument(
            "--checkpoint",
            type=Path,
            help="use the model of this run (or save_pretrained) directory",
        )
        p.add_argument("--data", type=Path, help=task.data_help)
        p.add_argument("--resume", action="store_true", help="continue training the run in --out")
        p.add_argument("--graph", choices=sorted(task.graph_choices), help="forward process")
        p.add_argument(
            "--sampler",
            choices=[*SAMPLERS, *_SAMPLER_ALIASES],
            metavar="{" + ",".join(SAMPLERS) + "}",
            help="reverse sampler",
        )
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
            "--overwrite",
            action="store_true",
            help="let sample and infill replace the samples already in --out",
        )
        p.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override any config key, e.g. --set net.dim=128 (VALUE parsed as YAML)",
        )
        p.add_argument(
            "--label",
            metavar="NAME",
            help="sample and infill: generate this label of a label-conditioned model",
        )
        p.add_argument(
            "--guidance",
            choices=("free", "classifier"),
            help="with --label: classifier-free guidance or the run's noisy classifier "
            "(default: free)",
        )
        p.add_argument(
            "--guidance-weight",
            type=float,
            metavar="W",
            help="with --label: 0 is the unconditional model, 1 the conditional one, above 1 "
            "sharper (default 1)",
        )
        option, metavar, _ = task.motif_option
        p.add_argument(
            option,
            dest="motifs",
            action="append",
            metavar=metavar,
            help="fix this in infill at the 0-based position after @ (negative: from the end; "
            "repeat for several)",
        )
        task.add_arguments(p)
        return p

    def resolve_config(
        self, args: argparse.Namespace, recorded: dict[str, Any] | None = None
    ) -> Any:
        """The configuration: `--config` (or the run's recorded one, or the defaults), then the
        options on top."""
        task = self.task
        if args.config is not None:
            config = task.config_type.from_yaml(args.config)
        elif recorded is not None:
            config = task.config_type.validated(
                recorded["config"], f"the run's {RunDir.recipe_file}"
            )
        else:
            config = task.default_config()
        overrides: dict[str, Any] = {}
        if args.graph is not None:
            overrides["graph"] = task.graph_choices[args.graph]
            # An absorbing graph needs the schedule to reach the all-MASK limit; the others use
            # a finite final noise (survival 1e-3), which keeps every kernel finite (dense
            # graphs cannot take infinite noise).
            absorbing = task.graph_choices[args.graph]["kind"] == "absorbing"
            overrides["schedule"] = {"kind": "loglinear", "survival": 0.0 if absorbing else 1e-3}
        if args.sampler is not None:
            overrides["sampling.kind"] = _SAMPLER_ALIASES.get(args.sampler, args.sampler)
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
        for option, key in (
            ("label", "guidance.label"),
            ("guidance", "guidance.kind"),
            ("guidance_weight", "guidance.weight"),
        ):
            if getattr(args, option, None) is not None:
                overrides[key] = getattr(args, option)
        if args.no_progress:
            overrides["runtime.progress"] = False
        if args.data is not None:
            overrides["data.path"] = str(args.data)
        if args.motifs:
            overrides[task.motif_option[2]] = [self._motif_entry(text) for text in args.motifs]
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
        return task.configure(config, args)

    def _motif_entry(self, text: str, option: str | None = None) -> dict[str, Any]:
        option = option or self.task.motif_option[0]
        value, position = parse_at(option, text, self.task.motif_option[1])
        return self.task.motif_entry(value, position, f"{option} {text}")

    def run(self, argv: Sequence[str] | None = None) -> int:
        """Parse `argv` and run; user errors print one line on stderr and return 2."""
        args = self.parser().parse_args(argv)
        try:
            with warnings.catch_warnings():
                warnings.showwarning = _one_line_warning
                self._run(args)
        except RecipeError as err:
            return _fail(str(err))
        except (ValueError, FileNotFoundError) as err:
            if os.environ.get("DDIFF_DEBUG"):
                raise
            return _fail(str(err))
        except OSError as err:  # an output that cannot be written (full disk, read-only ...)
            if os.environ.get("DDIFF_DEBUG"):
                raise
            where = f"{err.filename}: " if err.filename else ""
            return _fail(f"{where}{err.strerror or err} (nothing after this point was written)")
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
        return 0

    def _refuse_options_that_cannot_apply(self, args: argparse.Namespace) -> None:
        """Options that the command would ignore are errors that say why."""
        command, given = (
            args.command,
            lambda name: getattr(args, name, None) not in (None, False, []),
        )
        if command in ("sample", "infill", "evaluate"):
            for name, option in (
                ("graph", "--graph"),
                ("max_steps", "--max-steps"),
                ("time_limit", "--time-limit"),
                ("resume", "--resume"),
            ):
                if given(name):
                    raise RecipeError(
                        f"{option} applies to training; {command} uses the trained model as it "
                        f"is (its graph and training were fixed when it was trained)"
                    )
        if command in ("sample", "infill") and given("data"):
            raise RecipeError(
                f"--data is for train and evaluate; {command} draws from the model, not from data"
            )
        if command in ("train", "sample", "evaluate"):
            infill_only = {"motifs": self.task.motif_option[0], **self.task.infill_options}
            for name, option in infill_only.items():
                if given(name):
                    raise RecipeError(
                        f"{option} applies to infill (and to all); {command} fixes no tokens"
                    )
        if command in ("train", "evaluate"):
            for name, option in (
                ("label", "--label"),
                ("guidance", "--guidance"),
                ("guidance_weight", "--guidance-weight"),
            ):
                if given(name):
                    why = (
                        "evaluate compares every label, both guidances and the weights of "
                        "guidance.sweep_weights"
                        if command == "evaluate"
                        else "train fits the label-conditioned model and its classifier for "
                        "every label"
                    )
                    raise RecipeError(f"{option} applies to sample and infill (and all); {why}")
        weight = getattr(args, "guidance_weight", None)
        if weight is not None and not weight >= 0:
            raise RecipeError(
                f"--guidance-weight {weight:g}: the weight must be >= 0 (0: the unconditional "
                "model, 1: the conditional one, above 1: sharper than it)"
            )
        if given("overwrite") and command not in ("sample", "infill"):
            raise RecipeError("--overwrite is for sample and infill (training never overwrites)")

    def _run(self, args: argparse.Namespace) -> None:
        task, command = self.task, args.command
        self._refuse_options_that_cannot_apply(args)
        out = RunDir(args.out, task.sample_suffix)
        out.check_usable()
        if command == "train" and args.resume and resume_checkpoint(out.root) is None:
            raise RecipeError(
                f"--resume: {out.root} holds no checkpoint to resume ({RunDir.checkpoint_name}/"
                "last.ckpt); train without --resume to start a run there"
            )
        checkpoint = None
        if args.checkpoint is not None:
            if command in ("all", "train"):
                raise RecipeError(
                    f"--checkpoint is for sample, infill and evaluate; {command} trains a new "
                    "model (use --resume --out DIR to continue a run)"
                )
            checkpoint = locate_checkpoint(args.checkpoint)
        # Stages that use a trained run start from the configuration it was trained with.
        recorded = None
        if command in ("sample", "infill", "evaluate"):
            info = checkpoint or locate_checkpoint(out.root, "--out")
            recorded = self._recorded(info.recipe, info.run_dir)
        elif args.resume and out.recipe.is_file():
            recorded = self._recorded(read_json(out.recipe), out.root)
        config = self.resolve_config(args, recorded)
        steer = args.guidance is not None or args.guidance_weight is not None
        if steer and config.guidance.label is None:
            raise RecipeError(
                "--guidance and --guidance-weight steer towards a label: give --label NAME too"
            )
        run = pipeline.Run(task, config, out, checkpoint, bool(args.resume), command)
        # Check every input before the first long stage, so that a typo fails in a second.
        if command in ("all", "infill"):
            run.condition()
        if command in ("all", "train"):
            out.check_fresh_for_training(run.resume)
            run.check_trainable()
            run.check_label()
        else:
            pre = run.model()
            if command in ("sample", "infill"):
                run.score_function(pre)  # an unknown label, no classifier ...
            if command == "evaluate" and args.data is not None:
                run.data()
        for stage in ("sample", "infill"):
            if command in (stage, "all"):
                out.check_no_samples(stage, bool(args.overwrite))
        out.check_writable()
        torch.set_num_threads(config.runtime.threads)
        torch.manual_seed(config.train.seed)
        for stage in pipeline.STAGES if command == "all" else (command,):
            if config.runtime.progress:
                print(f"== {task.name} recipe: {stage} -> {out.root}", flush=True)
            pipeline.stage(stage)(run)
        print(f"== done in {time.perf_counter() - run.started:.0f} s: {out.root}", flush=True)

    def _recorded(self, recipe: Any, run_dir: Path | None) -> dict[str, Any] | None:
        """A run's `recipe.json`, if it is one of this recipe's (else a clear error)."""
        if recipe is None:
            return None
        if not isinstance(recipe, dict) or not isinstance(recipe.get("config"), dict):
            raise RecipeError(f"{run_dir}/{RunDir.recipe_file}: not a recipe record")
        if recipe.get("recipe") != self.name:
            raise RecipeError(
                f"{run_dir}: this run was trained by the {recipe.get('recipe')!r} recipe, not "
                f"{self.name!r}; use python -m ddiff.recipes.{recipe.get('recipe')} for it"
            )
        return recipe


def parse_at(option: str, text: str, metavar: str) -> tuple[str, int]:
    """`VALUE@POSITION` -> `(VALUE, POSITION)`, errors naming the option."""
    value, sep, position = text.rpartition("@")
    if not sep or not value:
        raise RecipeError(f"{option} {text}: expected {metavar.split('@')[0]}@POSITION")
    try:
        return value, int(position)
    except ValueError:
        raise RecipeError(f"{option} {text}: position {position!r} is not an integer") from None


def _one_line_warning(message: Warning | str, category: type[Warning], *_: Any, **__: Any) -> None:
    """Warnings on the command line as one line each (a renamed config key, say)."""
    print(f"warning: {' '.join(str(message).split())}", file=sys.stderr)


def _fail(message: str) -> int:
    print(f"error: {' '.join(message.split())}", file=sys.stderr)
    return 2
