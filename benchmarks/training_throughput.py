"""Training throughput (tokens/s) and peak memory of DiffusionModule + Lightning on this CPU.

Each configuration runs in its own process (so its peak RSS is its own): the real training path,
`DiffusionModule` with a `TokenDataModule` under `lightning.Trainer`, on random tokens; the first
`--warmup` optimizer steps are not timed. Prints a markdown table.

    .venv/bin/python benchmarks/training_throughput.py                  # tiny and small
    .venv/bin/python benchmarks/training_throughput.py --configs tiny --steps 50

Configurations (absorbing graph, log-linear schedule, SEDD's scaled parameterisation):

- tiny:  TransformerScoreNet preset "tiny" (dim 64, depth 2), 4 data tokens (DNA-sized),
         batch 32 x 128 tokens;
- small: preset "small" (dim 768, depth 12, 92M non-embedding parameters), the GPT-2 vocabulary
         (50,257 tokens), batch 4 x 128 tokens; a few steps only on a CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from typing import Any

CONFIGS: dict[str, dict[str, Any]] = {
    "tiny": {"preset": "tiny", "num_tokens": 4, "batch": 32, "length": 128, "steps": 30},
    "small": {"preset": "small", "num_tokens": 50257, "batch": 4, "length": 128, "steps": 3},
    # The DNA recipe's default network (ConvScoreNet: width 64, 3 blocks, kernel 5) on its
    # 150-base windows; its AR baseline is the tiny transformer, as in benchmarks/real_data.py.
    "dna-conv": {"conv": True, "num_tokens": 4, "batch": 32, "length": 150, "steps": 30},
}


def diffusion_net(spec: dict[str, Any], graph: Any) -> Any:
    """The configuration's score network (absorbing graph, SEDD's scaled parameterisation)."""
    from ddiff.nets import ConvScoreNet, ScaledAbsorbingParameterization, TransformerScoreNet

    param = ScaledAbsorbingParameterization(graph)
    if spec.get("conv"):
        return ConvScoreNet(graph.num_states, spec["length"], depth=3, parameterization=param)
    return TransformerScoreNet.from_preset(spec["preset"], graph.num_states, parameterization=param)


def ar_net(spec: dict[str, Any]) -> Any:
    """The configuration's autoregressive baseline (the tiny transformer for the conv one)."""
    from ddiff.nets import CausalTransformer

    return CausalTransformer.from_preset(spec.get("preset", "tiny"), spec["num_tokens"])


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def child(
    name: str, precision: str, steps: int | None, warmup: int, threads: int, kind: str = "diffusion"
) -> dict[str, Any]:
    """Train `kind` ("diffusion" or "ar", the same-size `CausalTransformer`) in this process."""
    import torch

    torch.set_num_threads(threads)
    import lightning as L

    from ddiff import AbsorbingGraph, LogLinearSchedule
    from ddiff.training import AutoregressiveModule, DiffusionModule, OptimSettings, TokenDataModule

    spec = CONFIGS[name]
    steps = steps or spec["steps"]
    baseline = _peak_rss_mb()
    torch.manual_seed(0)
    graph = AbsorbingGraph(spec["num_tokens"])
    module: Any
    if kind == "ar":
        net = ar_net(spec)
        module = AutoregressiveModule(net, OptimSettings(warmup_steps=0))
    else:
        net = diffusion_net(spec, graph)
        optim = OptimSettings(warmup_steps=0)
        module = DiffusionModule(graph, LogLinearSchedule(survival=0.0), net, optim)
    batch, length = spec["batch"], spec["length"]
    tokens = torch.randint(spec["num_tokens"], (batch * (warmup + steps + 1), length))
    data = TokenDataModule(tokens, batch_size=batch)
    marks: list[float] = []

    class Clock(L.Callback):
        def on_train_batch_end(self, *args: Any) -> None:
            marks.append(time.perf_counter())

    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        precision=precision,
        max_steps=warmup + steps,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        enable_checkpointing=False,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[Clock()],
    )
    trainer.fit(module, datamodule=data)
    elapsed = marks[-1] - marks[warmup - 1]
    return {
        "config": name,
        "model": kind,
        "precision": precision,
        "params_M": sum(p.numel() for p in net.parameters()) / 1e6,
        "batch": f"{batch} x {length}",
        "steps": steps,
        "s_per_step": elapsed / steps,
        "tokens_per_s": batch * length * steps / elapsed,
        "peak_rss_mb": _peak_rss_mb(),
        "baseline_rss_mb": baseline,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--configs", nargs="+", default=["tiny", "small"], choices=sorted(CONFIGS))
    parser.add_argument("--precisions", nargs="+", default=["32-true", "bf16-mixed"])
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default per config)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--child", nargs=2, metavar=("CONFIG", "PRECISION"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = child(args.child[0], args.child[1], args.steps, args.warmup, args.threads)
        print(json.dumps(result))
        return 0

    rows = []
    for name in args.configs:
        for precision in args.precisions:
            command = [sys.executable, __file__, "--child", name, precision]
            command += ["--warmup", str(args.warmup), "--threads", str(args.threads)]
            if args.steps:
                command += ["--steps", str(args.steps)]
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                print(done.stderr[-3000:], file=sys.stderr)
                return done.returncode
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    from _harness import machine  # benchmarks/ is on sys.path (the script's directory)

    print(machine(threads=args.threads) + "\n")
    print(
        "| config | precision | params (M) | batch | timed steps | s/step | tokens/s | peak RSS (MB) | RSS after imports (MB) |"
    )
    print("|---|---|---:|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['config']} | {r['precision']} | {r['params_M']:.1f} | {r['batch']} | {r['steps']} | "
            f"{r['s_per_step']:.3f} | {r['tokens_per_s']:,.0f} | {r['peak_rss_mb']:,.0f} | "
            f"{r['baseline_rss_mb']:,.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
