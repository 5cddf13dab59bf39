"""Milliseconds per training step of table 1's models, interleaved, to set equal-time step counts.

Each configuration trains `--steps` optimizer steps on a source of table 1 (`--source`, by
default the promoter-like one; the harness's real training path: `DiffusionModule` under a
`lightning.Trainer`, batch 64 of length 64) in this one process, and the configurations take turns for `--rounds` rounds, so that
load on the machine affects them alike; the median over rounds is printed. A configuration is
MODEL[:PRECISION[:TIME_SAMPLING]] with entropy_gap.py's model names:

    .venv/bin/python benchmarks/step_time.py                       # the issue 16 set below
    .venv/bin/python benchmarks/step_time.py absorbing absorbing_conv3_cos:bf16-mixed
    .venv/bin/python benchmarks/step_time.py --source markov30 absorbing \
        absorbing_conv3_cos:bf16-mixed:importance
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as h
import entropy_gap

DEFAULT = (
    "absorbing",
    "absorbing_conv3_cos",
    "absorbing_conv3_cos:bf16-mixed",
    "absorbing_conv3_cos:bf16-mixed:importance",
    "absorbing_conv3_cos:32-true:importance",
)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("configs", nargs="*", default=list(DEFAULT))
    p.add_argument(
        "--steps", type=int, default=300, help="steps per round (150 for the transformer)"
    )
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--source", default="promoter", choices=entropy_gap.SOURCES)
    args = p.parse_args()
    torch.set_num_threads(1)
    source = entropy_gap.source_of(args.source)
    data = source.sample(20_000, torch.Generator().manual_seed(1))
    configs = []
    for text in args.configs:
        parts = text.split(":")
        model, precision, sampling = parts + ["32-true", "stratified"][len(parts) - 1 :]
        configs.append((entropy_gap.model_name(model), precision, sampling))
    times: dict[tuple[str, str, str], list[float]] = {c: [] for c in configs}
    for _ in range(args.rounds):
        for config in configs:
            model, precision, sampling = config
            steps = args.steps // 2 if model == "absorbing" else args.steps
            built = h.build_model(model, source.num_tokens, seed=0)
            _, record = h.train(
                built,
                data,
                steps=steps,
                batch_size=64,
                seed=0,
                precision=precision,
                time_sampling=sampling,
            )
            times[config].append(record["train_seconds"] / steps * 1000)
    print(h.machine())
    for (model, precision, sampling), values in times.items():
        rounds = " ".join(f"{v:.1f}" for v in values)
        print(
            f"{model:24s} {precision:10s} {sampling:10s} {statistics.median(values):6.1f} ms/step"
            f"  (rounds: {rounds})"
        )


if __name__ == "__main__":
    main()
