"""`python -m ddiff.training --config run.yaml --run-dir runs/x [--resume] [--set key=value ...]`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import yaml

from ddiff.config import RunConfig
from ddiff.training.run import train


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ddiff.training",
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
