"""The DNA demo at fixed wall time: which network beats the order-3 Markov chain (issue 16).

Every variant is the DNA recipe (`python -m ddiff.recipes.dna`) with one change to its network,
trained for the same wall time (`--time-limit`, no step limit, one torch thread) for several
seeds, then sampled with the recipe's sampler and evaluated by the recipe's `evaluate`. Each
stage runs as its own process (`train`, `sample`, `evaluate`; no infill), one run at a time.
`--seed` sets the training, sampling and evaluation seeds, so the order-3 Markov samples that
the diffusion samples are compared with change with the seed too.

Per variant the table gives: the held-out bound (mean and spread across seeds), the paired
difference to the order-3 Markov chain's exact NLL with its standard error (per seed; a seed
passes when difference + 2 SE < 0), the samples' 3-mer and 6-mer Jensen-Shannon divergence to
the held-out windows and their ratio to the Markov samples' (a seed passes when the 3-mer ratio
is at most 1.5), and the optimizer steps reached. `--samplings` re-samples every trained run
with other samplers (`sample --checkpoint` then `evaluate --checkpoint` into
`<run>/sampling/<name>`), which costs no training.

    .venv/bin/python benchmarks/dna_sweep.py --out /work/runs-sweep/dna_sweep \\
        --variants transformer conv conv-nopos --seeds 0 1 2 --time-limit 170
    .venv/bin/python benchmarks/dna_sweep.py --out ... --samplings euler128 tau128
    .venv/bin/python benchmarks/dna_sweep.py --out ... --table

Results: `<out>/<variant>/seed<N>/metrics.json` (the recipe's run directories) and
`<out>/<variant>/seed<N>/sweep.json` (command, load average before and after).
Step counts depend on the machine's load: the comparison is at equal wall time, not steps.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as h

CONV = {"kind": "conv", "max_length": 150}
# The recipe's settings when the sweep was run (before it chose the conv-d3-cos variant with
# first-hitting sampling as its defaults): constant learning rate, 32 Euler steps. Every variant
# sets them, so that the table's runs are reproduced whatever the recipe's defaults are now.
SWEEP_BASE: dict[str, Any] = {
    "optim.lr_decay": "constant",
    "sampling": {"kind": "euler", "steps": 32},
}
# Each variant is a set of `--set KEY=VALUE` overrides of SWEEP_BASE and the recipe's config.
VARIANTS: dict[str, dict[str, Any]] = {
    # The recipe's default network (width 64, 2 blocks, 2 heads, rotary positions only).
    "transformer": {
        "net": {"kind": "transformer", "dim": 64, "depth": 2, "heads": 2, "cond_dim": 64}
    },
    # ConvScoreNet's defaults: width 64, 6 blocks, kernel 5, dilations 1..32, absolute positions.
    "transformer-pos": {
        "net": {
            "kind": "transformer",
            "dim": 64,
            "depth": 2,
            "heads": 2,
            "cond_dim": 64,
            "max_length": 150,
        }
    },
    "conv": {"net": CONV},
    "conv-nopos": {"net": {**CONV, "positions": False}},
    "conv-w32": {"net": {**CONV, "dim": 32}},
    "conv-w96": {"net": {**CONV, "dim": 96}},
    "conv-d3": {"net": {**CONV, "depth": 3}},
    "conv-d12": {"net": {**CONV, "depth": 12}},
    "conv-ema999": {"net": CONV, "optim.ema_decay": 0.999},
    # A cosine learning-rate decay needs a known run length: these variants train for a fixed
    # number of steps (about what the network reaches in 170 s here), the time limit still caps
    # them, and the table reports the seconds they took.
    "conv-cos": {
        "net": CONV,
        "optim.lr_decay": "cosine",
        "train.max_steps": 1800,
    },
    "conv-d3-cos": {
        "net": {**CONV, "depth": 3},
        "optim.lr_decay": "cosine",
        "train.max_steps": 3500,
    },
    "conv-d3-cos-lr2": {
        "net": {**CONV, "depth": 3},
        "optim.lr": 0.002,
        "optim.lr_decay": "cosine",
        "train.max_steps": 3500,
    },
}
SAMPLINGS: dict[str, list[str]] = {
    "euler128": ["--sampler", "euler", "--steps", "128"],
    "tau128": ["--sampler", "tau_leaping", "--steps", "128"],
    "analytic128": ["--sampler", "analytic", "--steps", "128"],
    "first_hitting": ["--sampler", "first_hitting"],
    "euler32-n1024": ["--sampler", "euler", "--steps", "32", "--num-samples", "1024"],
}
JS_RATIO_TARGET = 1.5


def _stage(args: list[str], log: Path) -> None:
    command = [sys.executable, "-m", "ddiff.recipes.dna", *args, "--threads", "1", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    with log.open("a") as stream:
        stream.write("$ " + " ".join(command) + "\n")
        stream.flush()
        subprocess.run(command, check=True, stdout=stream, stderr=subprocess.STDOUT, env=env)


def train_one(out: Path, variant: str, seed: int, time_limit: float) -> None:
    run = out / variant / f"seed{seed}"
    if (run / "metrics.json").is_file():
        return
    print(f"{variant} seed {seed}: training {time_limit:.0f} s", flush=True)
    load = os.getloadavg()[0]
    common = ["--out", str(run), "--seed", str(seed)]
    settings = {**SWEEP_BASE, **VARIANTS[variant]}
    max_steps = settings.pop("train.max_steps", 1_000_000)
    overrides = [a for k, v in settings.items() for a in ("--set", f"{k}={json.dumps(v)}")]
    log = out / f"{variant}-seed{seed}.log"
    limits = ["--max-steps", str(max_steps), "--time-limit", str(time_limit)]
    _stage(["train", *common, *limits, *overrides], log)
    _stage(["sample", *common], log)
    _stage(["evaluate", *common], log)
    record = {
        "variant": variant,
        "overrides": {**SWEEP_BASE, **VARIANTS[variant]},
        "seed": seed,
        "time_limit_s": time_limit,
        "load_average_before": load,
        "load_average_after": os.getloadavg()[0],
        "machine": h.machine(threads=1),
        "commit": h.git_commit(),
    }
    (run / "sweep.json").write_text(json.dumps(record, indent=2) + "\n")


def resample_one(run: Path, name: str) -> None:
    target = run / "sampling" / name
    if (target / "metrics.json").is_file() or not (run / "metrics.json").is_file():
        return
    seed = int(run.name.removeprefix("seed"))
    print(f"{run}: sampling {name}", flush=True)
    common = ["--checkpoint", str(run), "--out", str(target), "--seed", str(seed)]
    log = run.parent.parent / f"{run.parent.name}-{run.name}-{name}.log"
    _stage(["sample", *common, "--overwrite", *SAMPLINGS[name]], log)
    _stage(["evaluate", *common], log)


# -- the table ---------------------------------------------------------------------------------------


def _row(metrics: dict[str, Any]) -> dict[str, Any]:
    lik, sets = metrics["likelihood"], metrics["sets"]
    ours, markov = sets["diffusion samples"], sets["order-3 Markov samples"]
    diff = lik["bound_minus_markov3"]
    return {
        "steps": metrics["training"]["steps"],
        "seconds": metrics["training"]["seconds"],
        "bound": lik["diffusion_bound"]["bits_per_token"],
        "bound_se": lik["diffusion_bound"]["stderr"],
        "markov": lik["markov3_nll"]["bits_per_token"],
        "diff": diff["mean"],
        "diff_se": diff["stderr"],
        "js3": ours["js_k3"],
        "js3_markov": markov["js_k3"],
        "js3_real": sets["real (training windows)"]["js_k3"],
        "js6": ours["js_k6"],
        "js6_markov": markov["js_k6"],
        "sampler": _sampler_label(metrics["sampling"]),
    }


def _sampler_label(record: dict[str, Any]) -> str:
    steps = record["steps"]
    label = record["sampler"] if steps is None else f"{record['sampler']} {steps}"
    return label if record["num_samples"] == 256 else f"{label}, {record['num_samples']} samples"


def collect(out: Path) -> dict[tuple[str, str], dict[int, dict[str, Any]]]:
    """(variant, sampling) -> seed -> row; sampling "" is the recipe's default sampler."""
    found: dict[tuple[str, str], dict[int, dict[str, Any]]] = {}
    for path in sorted(out.glob("*/seed*/metrics.json")) + sorted(
        out.glob("*/seed*/sampling/*/metrics.json")
    ):
        rel = path.relative_to(out).parts
        variant, seed = rel[0], int(rel[1].removeprefix("seed"))
        sampling = rel[3] if len(rel) > 3 else ""
        metrics = json.loads(path.read_text())
        if sampling:  # a re-sampled run: training record from the run itself
            parent = json.loads((out / rel[0] / rel[1] / "metrics.json").read_text())
            metrics["training"] = parent["training"]
        found.setdefault((variant, sampling), {})[seed] = _row(metrics)
    return found


def table(out: Path) -> str:
    found = collect(out)
    order = list(VARIANTS)
    keys = sorted(found, key=lambda k: (order.index(k[0]) if k[0] in order else 99, k))
    summary, per_seed = [], []
    for variant, sampling in keys:
        seeds = found[(variant, sampling)]
        rows = [seeds[s] for s in sorted(seeds)]
        bounds = np.array([r["bound"] for r in rows])
        ratio3 = [r["js3"] / r["js3_markov"] for r in rows]
        ratio6 = [r["js6"] / r["js6_markov"] for r in rows]
        passes_bound = sum(r["diff"] + 2 * r["diff_se"] < 0 for r in rows)
        passes_js = sum(x <= JS_RATIO_TARGET for x in ratio3)
        spread = f" (sd {bounds.std(ddof=1):.4f})" if len(rows) > 1 else ""
        summary.append(
            [
                variant,
                rows[0]["sampler"],
                len(rows),
                f"{np.mean([r['steps'] for r in rows]):,.0f}",
                f"{bounds.mean():.4f}{spread}",
                f"{np.mean([r['diff'] for r in rows]):+.4f}",
                f"{passes_bound}/{len(rows)}",
                f"{np.mean([r['js3'] for r in rows]):.5f}",
                " / ".join(f"{x:.2f}" for x in ratio3),
                f"{passes_js}/{len(rows)}",
                " / ".join(f"{x:.2f}" for x in ratio6),
            ]
        )
        for seed, r in zip(sorted(seeds), rows, strict=True):
            per_seed.append(
                [
                    variant,
                    r["sampler"],
                    seed,
                    f"{r['steps']:,}",
                    f"{r['bound']:.4f} ± {r['bound_se']:.4f}",
                    f"{r['diff']:+.4f} ± {r['diff_se']:.4f}",
                    f"{r['js3']:.5f} / {r['js3_markov']:.5f}",
                    f"{r['js3'] / r['js3_markov']:.2f}",
                    f"{r['js3_real'] / r['js3_markov']:.2f}",
                    f"{r['js6']:.4f} / {r['js6_markov']:.4f}",
                ]
            )
    head = [
        "variant",
        "sampler",
        "seeds",
        "mean steps",
        "bound, mean (sd over seeds)",
        "bound - Markov, mean",
        "bound passes",
        "3-mer JS, mean",
        "3-mer JS / Markov's, per seed",
        "JS passes",
        "6-mer JS / Markov's, per seed",
    ]
    seed_head = [
        "variant",
        "sampler",
        "seed",
        "steps",
        "bound (bits/base)",
        "bound - Markov (paired)",
        "3-mer JS (samples / Markov)",
        "ratio",
        "real windows' ratio",
        "6-mer JS (samples / Markov)",
    ]
    return (
        h.markdown_table(head, summary, lambda i: 2 <= i <= 7 or i == 9)
        + "\n\n"
        + h.markdown_table(seed_head, per_seed, lambda i: i >= 2)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=h.OUT / "dna_sweep")
    parser.add_argument("--variants", nargs="*", choices=list(VARIANTS), default=[])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--time-limit", type=float, default=170.0, help="training seconds")
    parser.add_argument(
        "--samplings", nargs="*", choices=list(SAMPLINGS), default=[],
        help="re-sample the trained runs of --variants (every variant if none given)",
    )  # fmt: skip
    parser.add_argument("--table", action="store_true", help="print the tables and stop")
    args = parser.parse_args()
    if not args.table:
        start = time.perf_counter()
        for seed in args.seeds:  # seed-major: an interrupted sweep has every variant's seed 0
            for variant in args.variants:
                train_one(args.out, variant, seed, args.time_limit)
        for name in args.samplings:
            for variant in args.variants or list(VARIANTS):
                for seed in args.seeds:
                    run = args.out / variant / f"seed{seed}"
                    if run.is_dir():
                        resample_one(run, name)
        print(f"done in {time.perf_counter() - start:.0f} s", flush=True)
    print(table(args.out))


if __name__ == "__main__":
    main()
