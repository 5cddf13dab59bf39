"""Train from a `RunConfig`: the Trainer, checkpoints, resumption and the pretrained export.

The composition of `ddiff.config` (which builds the objects) and `ddiff.training` (which takes
them), and the command line:

```console
$ python -m ddiff.run --config run.yaml --run-dir runs/x [--resume] [--set key=value ...]
```
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
import yaml
from lightning.pytorch.callbacks import Callback, LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.utilities import rank_zero_info

from ddiff.config import RunConfig, TrainConfig
from ddiff.pretrained import CONFIG_NAME, save_pretrained
from ddiff.training import AtomicCheckpointIO, DiffusionModule

__all__ = ["build_module", "build_trainer", "main", "resume_checkpoint", "train"]

CHECKPOINT_DIR = "checkpoints"
LAST_CHECKPOINT = "last.ckpt"
PRETRAINED_DIR = "pretrained"
LOG_DIR = "logs"


def build_trainer(
    train: TrainConfig,
    run_dir: str | os.PathLike[str],
    *,
    callbacks: Sequence[Callback] = (),
    **overrides: Any,
) -> L.Trainer:
    """A `lightning.Trainer` for `train`, writing under `run_dir`.

    Checkpoints go to `run_dir/checkpoints/` every `checkpoint_every_n_steps` steps, through
    `AtomicCheckpointIO`: `last.ckpt` (the one to resume from) and `step=<k>.ckpt` (the latest
    only). Metrics go to `run_dir/logs/version_<n>/metrics.csv`. Validation runs every
    `val_every_n_steps` optimizer steps (the training stream has no epochs).

    Args:
        train: the training section of a run configuration.
        run_dir: the run's directory.
        callbacks: extra Lightning callbacks.
        **overrides: any other `lightning.Trainer` argument (wins over the configuration).
    """
    run_dir = Path(run_dir)
    logger = overrides.pop("logger", CSVLogger(run_dir, name=LOG_DIR))
    monitors = [LearningRateMonitor(logging_interval="step")] if logger else []
    checkpoint = ModelCheckpoint(
        dirpath=run_dir / CHECKPOINT_DIR,
        filename="step={step}",
        auto_insert_metric_name=False,
        every_n_train_steps=train.checkpoint_every_n_steps,
        save_top_k=1,
        save_last=True,
        enable_version_counter=False,
    )
    kwargs: dict[str, Any] = {
        "max_steps": train.max_steps,
        "accelerator": train.accelerator,
        "devices": train.devices,
        "num_nodes": train.num_nodes,
        "strategy": train.strategy,
        "precision": train.precision,
        "accumulate_grad_batches": train.accumulate_grad_batches,
        "val_check_interval": train.val_every_n_steps * train.accumulate_grad_batches,
        "check_val_every_n_epoch": None,
        "limit_val_batches": train.limit_val_batches,
        "log_every_n_steps": train.log_every_n_steps,
        "deterministic": train.deterministic,
        "plugins": [AtomicCheckpointIO()],
        "callbacks": [checkpoint, *monitors, *callbacks],
        "logger": logger,
        "default_root_dir": run_dir,
    }
    kwargs.update(overrides)
    return L.Trainer(**kwargs)


def build_module(config: RunConfig) -> DiffusionModule:
    """The `DiffusionModule` of a configuration, with initial weights fixed by `train.seed`.

    The weights are drawn from a forked torch generator seeded with `train.seed`, so the result
    is reproducible and torch's global random state is left as it was.
    """
    graph, schedule = config.graph.build(), config.schedule.build()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.train.seed)
        net = config.net.build(graph)
    return DiffusionModule(
        graph,
        schedule,
        net,
        config.optim.build(),
        seed=config.train.seed,
        time_sampling=config.train.time_sampling,
        val_num_t=config.train.val_num_t,
        label_dropout=config.train.label_dropout,
    )


def train(
    config: RunConfig,
    run_dir: str | os.PathLike[str],
    *,
    resume: bool = False,
    datamodule: L.LightningDataModule | None = None,
    callbacks: Sequence[Callback] = (),
    **trainer_overrides: Any,
) -> DiffusionModule:
    """Train a run end to end and export it.

    Writes `run_dir/checkpoints/config.json` (the resolved configuration, next to the
    checkpoints), trains to `train.max_steps`, saves a final `last.ckpt`, and writes
    `run_dir/pretrained/` with `save_pretrained` (EMA weights and configuration).

    Args:
        config: the run configuration.
        run_dir: the run's directory (created if needed).
        resume: continue from `run_dir/checkpoints/last.ckpt` if it exists (after an
            interruption, or to train further with a larger `max_steps`); start afresh otherwise.
        datamodule: the data (default: built from `config.data`).
        callbacks: extra Lightning callbacks.
        **trainer_overrides: passed to `build_trainer`.

    Returns:
        The trained module.

    Raises:
        ValueError: if there is no data (neither `config.data` nor `datamodule`), or if the
            checkpoint was written for another graph.
    """
    run_dir = Path(run_dir)
    # Global seeds too (dropout, user callbacks); ddiff's own draws do not depend on them.
    L.seed_everything(config.train.seed, workers=True, verbose=False)
    if datamodule is None:
        if config.data is None:
            raise ValueError("the configuration has no data section; add one or pass a datamodule")
        datamodule = config.data.build(
            batch_size=config.train.batch_size,
            val_batch_size=config.train.val_batch_size,
            seed=config.train.seed,
            num_workers=config.train.num_workers,
        )
    module = build_module(config)
    save_config = _SaveConfig(config, run_dir / CHECKPOINT_DIR / CONFIG_NAME)
    trainer = build_trainer(
        config.train, run_dir, callbacks=[*callbacks, save_config], **trainer_overrides
    )
    ckpt_path = str(resume_checkpoint(run_dir)) if resume else None
    if resume and ckpt_path is None:
        rank_zero_info(f"no checkpoint in {run_dir / CHECKPOINT_DIR}: starting a new run")
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    saved = [c for c in trainer.checkpoint_callbacks if isinstance(c, ModelCheckpoint)]
    if not any(c.last_model_path and _saved_at(c) == trainer.global_step for c in saved):
        # every rank calls it; rank 0 writes
        trainer.save_checkpoint(run_dir / CHECKPOINT_DIR / LAST_CHECKPOINT)
    if trainer.is_global_zero:
        save_pretrained(module, run_dir / PRETRAINED_DIR, config)
    return module


def resume_checkpoint(run_dir: str | os.PathLike[str]) -> Path | None:
    """The checkpoint to resume `run_dir` from: `last.ckpt`, or, when it is damaged (a truncated
    write, a full disk), the newest intact `step=N.ckpt` beside it, with a warning that names
    both; None when the run has no checkpoint.

    Raises:
        ValueError: naming every checkpoint, when none of them can be read.
    """
    directory = Path(run_dir) / CHECKPOINT_DIR
    last = directory / LAST_CHECKPOINT
    steps = sorted(directory.glob("step=*.ckpt"), key=lambda p: _step_of(p) or -1, reverse=True)
    candidates = ([last] if last.is_file() else []) + steps
    damaged: list[str] = []
    for path in candidates:
        problem = _unreadable(path)
        if problem is None:
            if damaged:
                warnings.warn(
                    f"{'; '.join(damaged)}: resuming from {path.name}, the newest intact "
                    "checkpoint (the steps after it are trained again)",
                    stacklevel=2,
                )
            return path
        damaged.append(f"{path} is damaged ({problem})")
    if damaged:
        raise ValueError(
            f"cannot resume {run_dir}: {'; '.join(damaged)}; no intact checkpoint is left: "
            "train again into another directory"
        )
    return None


def _step_of(path: Path) -> int | None:
    try:
        return int(path.stem.split("=", 1)[1])
    except (IndexError, ValueError):
        return None


def _unreadable(path: Path) -> str | None:
    """Why a checkpoint cannot be loaded, or None when it can. Read as training reads it
    (`AtomicCheckpointIO`: `weights_only=True`), so a crafted file runs no code here either."""
    try:
        checkpoint = AtomicCheckpointIO().load_checkpoint(path)
    except Exception as err:  # torch raises RuntimeError, EOFError, UnpicklingError ...
        first = " ".join(str(err).split()).split(". ")[0]
        return f"{type(err).__name__}: {first[:120]}" if first else type(err).__name__
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        return "not a Lightning checkpoint"
    return None


class _SaveConfig(Callback):
    """Write the resolved configuration next to the checkpoints once training starts (rank 0),
    and give it to the loggers as hyperparameters.

    Written in `on_fit_start`, after `ModelCheckpoint` has checked that its directory is empty.
    """

    def __init__(self, config: RunConfig, path: Path) -> None:
        self.config, self.path = config, path

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            self.config.save_json(self.path)
        for logger in trainer.loggers:
            logger.log_hyperparams(self.config.model_dump(mode="json"))


def _saved_at(callback: ModelCheckpoint) -> int:
    return int(getattr(callback, "_last_global_step_saved", -1))


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m ddiff.run`: train from a YAML run file; returns the exit code (2: bad input)."""
    parser = argparse.ArgumentParser(
        prog="python -m ddiff.run",
        description="Train a ddiff score network from a YAML run file.",
    )
    parser.add_argument(
        "--config", required=True, help="YAML run file (see ddiff.config.RunConfig)"
    )
    parser.add_argument(
        "--run-dir", required=True, help="directory for checkpoints, logs and weights"
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue from RUN_DIR/checkpoints/last.ckpt if present",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a key, e.g. --set train.max_steps=400 (VALUE is parsed as YAML)",
    )
    args = parser.parse_args(argv)
    overrides = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--set expects KEY=VALUE, got {item!r}")
        overrides[key.strip()] = yaml.safe_load(value)
    try:
        config = RunConfig.from_yaml(args.config, overrides)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    train(config, args.run_dir, resume=args.resume)
    return 0


if __name__ == "__main__":
    sys.exit(main())
