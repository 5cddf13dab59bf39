"""A tiny training run as a script, for the tests that need their own processes.

Plain `ddp` re-launches the calling script once per extra rank, and a `kill -9` needs a process
to kill, so these runs cannot happen inside pytest's process. Usage::

    python tests/training/tiny_run.py RUN_DIR --max-steps 20 [--devices 2] [--resume]
        [--importance-warmup N]

After training, every rank writes `RUN_DIR/rank<r>.safetensors` (its network's weights) and
`RUN_DIR/losses-rank<r>.json` (its loss at each optimizer step), and with importance sampling
`RUN_DIR/importance-rank<r>.safetensors` (the sampler's running estimates).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch

from ddiff.config import RunConfig


def tiny_config(
    max_steps: int, batch_size: int = 8, checkpoint_every: int = 5, devices: int = 1
) -> RunConfig:
    """A run that takes well under a second per ten steps on one CPU thread."""
    return RunConfig.model_validate(
        {
            "graph": {"kind": "absorbing", "num_tokens": 4},
            "schedule": {"kind": "loglinear", "survival": 0.0},
            "net": {"kind": "transformer", "preset": "tiny", "dim": 32, "cond_dim": 32},
            "optim": {"kind": "adamw", "lr": 1e-3, "warmup_steps": 5, "ema_decay": 0.9},
            "train": {
                "max_steps": max_steps,
                "batch_size": batch_size,
                "checkpoint_every_n_steps": checkpoint_every,
                "accelerator": "cpu",
                "devices": devices,
                "strategy": "ddp" if devices > 1 else "auto",
            },
            "data": {
                "kind": "markov",
                "num_tokens": 4,
                "length": 8,
                "num_train": max(64, 4 * batch_size * devices),
                "num_val": 8,
            },
        }
    )


QUIET: dict[str, Any] = {
    "enable_progress_bar": False,
    "enable_model_summary": False,
    "limit_val_batches": 0,
    "num_sanity_val_steps": 0,
    "logger": False,
}
"""Trainer overrides: no validation, no logging (the tests read checkpoints and files)."""


def main(argv: list[str] | None = None) -> int:
    import lightning as L
    from safetensors.torch import save_file

    from ddiff.run import train

    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir")
    parser.add_argument("--max-steps", type=int, required=True)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--checkpoint-every", type=int, default=5)
    parser.add_argument("--devices", type=int, default=1)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument(
        "--importance-warmup",
        type=int,
        help="train with time_sampling: importance, its proposal adapting after this many steps",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    run_dir = Path(args.run_dir)
    config = tiny_config(args.max_steps, args.batch_size, args.checkpoint_every, args.devices)
    if args.importance_warmup is not None:
        import ddiff.training.module
        from ddiff.losses import ImportanceTimes

        warmup = args.importance_warmup

        class QuickTimes(ImportanceTimes):  # the module's default sampler, a shorter warm-up
            def __init__(self) -> None:
                super().__init__(warmup_steps=warmup)

        config = config.model_copy(
            update={"train": config.train.model_copy(update={"time_sampling": "importance"})}
        )
        ddiff.training.module.ImportanceTimes = QuickTimes  # type: ignore[misc]

    losses: list[float] = []

    class RecordLoss(L.Callback):
        def on_train_batch_end(self, trainer: Any, module: Any, outputs: Any, *rest: Any) -> None:
            losses.append(float(outputs["loss"]))

    module = train(config, run_dir, resume=args.resume, callbacks=[RecordLoss()], **QUIET)
    rank = module.global_rank
    weights = {k: v.detach().cpu().contiguous() for k, v in module.net.state_dict().items()}
    save_file(weights, str(run_dir / f"rank{rank}.safetensors"))
    (run_dir / f"losses-rank{rank}.json").write_text(json.dumps(losses))
    if module.importance is not None:
        estimates = {k: v.detach().cpu() for k, v in module.importance.state_dict().items()}
        save_file(estimates, str(run_dir / f"importance-rank{rank}.safetensors"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
