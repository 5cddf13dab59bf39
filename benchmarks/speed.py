"""Table 4: training and sampling speed, tiny and small configurations, diffusion and AR.

Each row runs in its own process (`--threads` torch threads):

- **training tokens/s**: `DiffusionModule` (absorbing graph) or `AutoregressiveModule` under a
  `lightning.Trainer`, the timed steps after `--warmup` untimed ones
  (`benchmarks/training_throughput.py`'s child);
- **sampling tokens/s**: sampled tokens per second of wall time, Euler sampler for the
  diffusion model (`--sample-steps` steps plus the denoise step), one network call per token for
  the AR model (no KV cache);
- **outside**: the fraction of the sampling time spent outside the network (the sampler's own
  work), from a wrapper that times every network call (`benchmarks/samplers.py`'s TimedScore).

Configurations: tiny (preset "tiny", 4 data tokens, batch 32 x 128 tokens; sampling 64 x 128)
and small (preset "small", GPT-2 vocabulary of 50,257 tokens, batch 4 x 128; sampling 4 x 128),
and dna-conv (the DNA recipe's ConvScoreNet, 4 data tokens, batch 32 x 150; sampling 64 x 150;
its AR row is the tiny transformer on the same windows).

    .venv/bin/python benchmarks/speed.py
    .venv/bin/python benchmarks/speed.py --configs tiny
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

SAMPLING = {"tiny": (64, 128, 32), "small": (4, 128, 4), "dna-conv": (64, 150, 32)}
"""Batch, length and diffusion steps of the sampling rows."""
TRAIN_STEPS = {"tiny": 30, "small": 3, "dna-conv": 30}


def sampling_speed(config: str, kind: str, sample_steps: int | None) -> dict[str, Any]:
    import samplers as sampler_bench
    import torch
    from training_throughput import CONFIGS, ar_net, diffusion_net

    from ddiff import AbsorbingGraph, LogLinearSchedule
    from ddiff.samplers import EulerSampler

    spec = CONFIGS[config]
    batch, length, steps = SAMPLING[config]
    steps = sample_steps or steps
    torch.manual_seed(0)
    if kind == "ar":
        ar = ar_net(spec).eval()
        torch.nn.init.normal_(ar.trunk.head.weight, std=0.5)  # varied predictions, as if trained
        calls: list[tuple[float, float]] = []
        forward = ar.forward

        def timed_forward(tokens: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
            start = time.perf_counter()
            out = forward(tokens, *args, **kwargs)
            calls.append((start, time.perf_counter()))
            return out

        ar.forward = timed_forward  # type: ignore[method-assign]
        start = time.perf_counter()
        with torch.no_grad():
            ar.sample(batch, length, generator=torch.Generator().manual_seed(0))
        total = time.perf_counter() - start
        net_time, nfe = sum(b - a for a, b in calls), len(calls)
    else:
        graph = AbsorbingGraph(spec["num_tokens"])
        net = diffusion_net(spec, graph)
        head = net.head if spec.get("conv") else net.trunk.head
        torch.nn.init.normal_(head.weight, std=0.5)
        net.eval()
        timed = sampler_bench.TimedScore(net)
        sampler = EulerSampler(graph, LogLinearSchedule(survival=0.0))
        start = time.perf_counter()
        with torch.no_grad():
            sampler.run(timed, batch, length, steps, generator=torch.Generator().manual_seed(0))
        total = time.perf_counter() - start
        net_time, nfe = sum(b - a for a, b in timed.calls), len(timed.calls)
    return {
        "sample_batch": f"{batch} x {length}",
        "network_calls": nfe,
        "sample_seconds": total,
        "sample_tokens_per_s": batch * length / total,
        "outside_fraction": 1.0 - net_time / total,
    }


def child(config: str, kind: str, threads: int, sample_steps: int | None) -> dict[str, Any]:
    import torch

    torch.set_num_threads(threads)
    import training_throughput

    row = training_throughput.child(config, "32-true", TRAIN_STEPS[config], 2, threads, kind)
    row |= sampling_speed(config, kind, sample_steps)
    return row


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", nargs="+", default=["tiny", "small"], choices=list(SAMPLING))
    p.add_argument("--models", nargs="+", default=["diffusion", "ar"], choices=["diffusion", "ar"])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--sample-steps", type=int, help="diffusion sampling steps (default per config)")
    p.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(*args.child, args.threads, args.sample_steps)))
        return 0
    import _harness as h

    rows = []
    for config in args.configs:
        for kind in args.models:
            command = [
                sys.executable,
                __file__,
                "--child",
                config,
                kind,
                "--threads",
                str(args.threads),
            ]
            if args.sample_steps:
                command += ["--sample-steps", str(args.sample_steps)]
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                print(done.stderr[-3000:], file=sys.stderr)
                return done.returncode
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(h.machine(threads=args.threads) + "\n")
    header = [
        "config",
        "model",
        "params (M)",
        "train batch",
        "train tokens/s",
        "peak RSS (MB)",
        "sample batch",
        "network calls",
        "sample tokens/s",
        "outside the network",
    ]
    table = [
        [
            r["config"],
            r["model"],
            f"{r['params_M']:.1f}",
            r["batch"],
            f"{r['tokens_per_s']:,.0f}",
            f"{r['peak_rss_mb']:,.0f}",
            r["sample_batch"],
            r["network_calls"],
            f"{r['sample_tokens_per_s']:,.1f}",
            f"{100 * r['outside_fraction']:.1f}%",
        ]
        for r in rows
    ]
    print(h.markdown_table(header, table, right=lambda i: i > 1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
