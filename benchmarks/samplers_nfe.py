"""Sample quality against network calls (NFE) for every sampler, with wall time as ratios.

Three settings, each run as one interleaved measurement (every configuration once per round,
`--rounds` rounds, the minimum wall time kept), so the time ratios share the machine's load:

- `oracle`: exact scores (`ddiff.testing.ExactOracle`), 3 data tokens, 20,000 samples: total
  variation to p_0 against NFE for the grid samplers, first-hitting, caching and
  predictor-corrector at equal NFE (absorbing L = 4, uniform L = 3).
- `markov`: the order-2 Markov source of benchmarks/entropy_gap.py (4 tokens, L = 64), an
  absorbing model trained here (time-conditioned, and a time-agnostic twin for exact caching):
  exact NLL of the samples (bits/token) and 3-mer JS to 20,000 source samples.
- `dna`: the DNA recipe's model (a run directory of `python -m ddiff.recipes.dna train`):
  3-mer and 6-mer JS of the samples to the held-out windows, against Euler 128 steps, the
  recipes' default.
- `recipe`: the DNA demo's sampling stage itself, through the recipe's command line.

    .venv/bin/python benchmarks/samplers_nfe.py --only oracle
    .venv/bin/python benchmarks/samplers_nfe.py --only markov
    .venv/bin/python benchmarks/samplers_nfe.py --only dna --run /tmp/dnarun
    .venv/bin/python benchmarks/samplers_nfe.py --only recipe --run /tmp/dnarun --rounds 3

Results: runs/benchmarks/nfe/<setting>.json and a markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ddiff.io import write_json

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as h
from samples_vs_steps import kmer_js

Draw = Callable[[torch.Generator], Any]  # -> SampleResult


def configurations(graph: Any, schedule: Any, length: int, *, grid: list[int]) -> dict[str, Any]:
    """name -> (sampler, steps) for every sampler and setting compared."""
    from ddiff import AbsorbingGraph
    from ddiff.samplers import (
        AnalyticSampler,
        EulerSampler,
        FirstHittingSampler,
        RateCorrector,
        RemaskingCorrector,
        TauLeapingSampler,
    )

    out: dict[str, Any] = {}
    for steps in grid:
        out[f"euler {steps}"] = (EulerSampler(graph, schedule), steps)
        out[f"tau-leaping {steps}"] = (TauLeapingSampler(graph, schedule), steps)
        out[f"analytic {steps}"] = (AnalyticSampler(graph, schedule), steps)
    absorbing = isinstance(graph, AbsorbingGraph)
    for steps in grid[:-1]:
        # Predictor-corrector at about the NFE of twice the steps (steps + (steps - 1) + 1).
        corrector = RemaskingCorrector() if absorbing else RateCorrector()
        out[f"euler+{_short(corrector)} {steps}"] = (
            EulerSampler(graph, schedule, corrector=corrector),
            steps,
        )
        if absorbing:
            out[f"euler+rate0.5 {steps}"] = (
                EulerSampler(graph, schedule, corrector=RateCorrector(0.5)),
                steps,
            )
    if absorbing:
        out["first-hitting"] = (FirstHittingSampler(graph, schedule), None)
        for k in (2, 4, 8):
            if k < length:
                out[f"first-hitting k={k}"] = (
                    FirstHittingSampler(graph, schedule, tokens_per_call=k),
                    None,
                )
        for steps in (grid[-1], 4 * grid[-1]):
            out[f"euler cached {steps}"] = (EulerSampler(graph, schedule, cache=True), steps)
    return out


def _short(corrector: Any) -> str:
    return "remask" if type(corrector).__name__ == "RemaskingCorrector" else "rate"


def interleaved(
    draws: dict[str, Draw], rounds: int, measure: Callable[[Any], dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Every draw once per round (seeded by the round); quality from round 0, min wall time."""
    rows: dict[str, dict[str, Any]] = {}
    for r in range(rounds):
        for name, draw in draws.items():
            start = time.perf_counter()
            result = draw(torch.Generator().manual_seed(r))
            seconds = time.perf_counter() - start
            if r == 0:
                rows[name] = {
                    "nfe": result.nfe,
                    "sequence_nfe": result.sequence_nfe,
                    **measure(result.tokens),
                }
            rows[name]["seconds"] = min(rows[name].get("seconds", math.inf), seconds)
            print(f"round {r} {name}: {rows[name]}", flush=True)
    return rows


# -- settings ---------------------------------------------------------------------------------------


def oracle(args: argparse.Namespace) -> dict[str, Any]:
    from ddiff import AbsorbingGraph, UniformGraph
    from ddiff.samplers import EulerSampler, RemaskingCorrector
    from ddiff.schedules import LogLinearSchedule
    from ddiff.testing import ExactOracle

    out: dict[str, Any] = {}
    for label, graph, length in (
        ("absorbing L=4", AbsorbingGraph(3), 4),
        ("uniform L=3", UniformGraph(3), 3),
    ):
        exact = ExactOracle.random(graph, length, seed=1)
        schedule = LogLinearSchedule()
        configs = configurations(graph, schedule, length, grid=[4, 8, 16, 32])
        if isinstance(graph, AbsorbingGraph):
            one = RemaskingCorrector(one_position=True)
            for steps in (4, 8, 16):
                configs[f"euler+remask1 {steps}"] = (
                    EulerSampler(graph, schedule, corrector=one),
                    steps,
                )
        draws = {
            name: _draw(sampler, exact, args.num, length, steps)
            for name, (sampler, steps) in configs.items()
        }
        floor = exact.total_variation(exact.sample_data(args.num, torch.Generator().manual_seed(9)))
        rows = interleaved(draws, 1, lambda x, exact=exact: {"tv": exact.total_variation(x)})
        out[label] = {"rows": rows, "floor": floor}
    return out


def markov(args: argparse.Namespace) -> dict[str, Any]:
    import entropy_gap

    from ddiff.nets import ScaledAbsorbingParameterization, TransformerScoreNet

    source = entropy_gap.source_of("markov4")
    train_data = source.sample(20_000, torch.Generator().manual_seed(1))
    models = {}
    for agnostic in (False, True):
        name = "markov4-absorbing" + ("-agnostic" if agnostic else "")
        path = h.OUT / "models" / f"{name}.pt"
        model = h.build_model("absorbing", source.num_tokens, seed=0)
        if agnostic:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                net = TransformerScoreNet(
                    model.graph.num_states,
                    parameterization=ScaledAbsorbingParameterization(model.graph),
                    time_conditioning=False,
                    **h.NET,
                )
            model = h.Model(model.name, net, model.graph, model.schedule)
        if path.is_file():
            model.net.load_state_dict(torch.load(path, weights_only=True))
            model = h.Model(model.name, model.net.eval(), model.graph, model.schedule)
        else:
            model, _ = h.train(model, train_data, steps=args.train_steps, batch_size=32, seed=0)
            h.save(model, path)
        models["time-agnostic" if agnostic else "time-conditioned"] = model
    reference = source.sample(20_000, torch.Generator().manual_seed(5))

    def measure(x: torch.Tensor) -> dict[str, Any]:
        bits = source.nll(x) / math.log(2) / x.shape[1]
        return {
            "nll_bits": float(bits.mean()),
            "nll_stderr": float(bits.std() / math.sqrt(bits.numel())),
            "js3": kmer_js(x, reference, 3, source.num_tokens),
        }

    out: dict[str, Any] = {"entropy_bits": entropy_gap.entropy_bits(source)[0]}
    fresh = source.sample(args.num, torch.Generator().manual_seed(7))
    out["source samples"] = measure(fresh)
    for label, model in models.items():
        configs = configurations(model.graph, model.schedule, source.length, grid=[8, 32, 128])
        draws = {
            name: _draw(sampler, model.net, args.num, source.length, steps)
            for name, (sampler, steps) in configs.items()
        }
        out[label] = {"rows": interleaved(draws, args.rounds, measure)}
    return out


def dna(args: argparse.Namespace) -> dict[str, Any]:
    from ddiff.pretrained import load_pretrained
    from ddiff.recipes.dna import TASK
    from ddiff.samplers import EulerSampler, FirstHittingSampler

    run = Path(args.run)
    pre = load_pretrained(run / "pretrained")
    config = TASK.default_config()
    data = TASK.load_data(config)
    heldout = data.heldout
    train = data.train[
        torch.randperm(data.train.shape[0], generator=torch.Generator().manual_seed(0))
    ]
    length = heldout.shape[1]
    net, graph, schedule = pre.net.eval(), pre.graph, pre.schedule

    def measure(x: torch.Tensor) -> dict[str, Any]:
        return {"js3": kmer_js(x, heldout, 3, 4), "js6": kmer_js(x, heldout, 6, 4)}

    configs = {
        "euler 128": (EulerSampler(graph, schedule), 128),
        "euler 64": (EulerSampler(graph, schedule), 64),
        "euler 32": (EulerSampler(graph, schedule), 32),
        "euler 16": (EulerSampler(graph, schedule), 16),
        "euler cached 128": (EulerSampler(graph, schedule, cache=True), 128),
        "first-hitting": (FirstHittingSampler(graph, schedule), None),
        "first-hitting k=2": (FirstHittingSampler(graph, schedule, tokens_per_call=2), None),
        "first-hitting k=3": (FirstHittingSampler(graph, schedule, tokens_per_call=3), None),
        "first-hitting k=5": (FirstHittingSampler(graph, schedule, tokens_per_call=5), None),
    }
    draws = {
        name: _draw(sampler, net, args.num, length, steps)
        for name, (sampler, steps) in configs.items()
    }
    out: dict[str, Any] = {
        "training windows": measure(train[: args.num]),
        "rows": interleaved(draws, args.rounds, measure),
        "num_heldout": int(heldout.shape[0]),
    }
    return out


RECIPE_SAMPLERS = {
    "euler 128 (default)": [],
    "euler 32": ["--steps", "32"],
    "first-hitting": ["--sampler", "first_hitting"],
    "first-hitting k=3": ["--sampler", "first_hitting", "--set", "sampling.tokens_per_call=3"],
}


def recipe(args: argparse.Namespace) -> dict[str, Any]:
    """The DNA demo's sampling stage as users run it: `python -m ddiff.recipes.dna sample
    --checkpoint RUN --out DIR --sampler ...`, each command once per round (interleaved); the
    stage's own `seconds` (its record), and 3-mer and 6-mer JS of its 256 samples to the
    held-out windows with a bootstrap standard error over the samples."""
    import subprocess
    import tempfile

    import numpy as np

    from ddiff.recipes.dna import TASK

    heldout = TASK.load_data(TASK.default_config()).heldout
    rows: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for name, options in RECIPE_SAMPLERS.items():
                out = Path(tmp) / f"{r}-{name.replace(' ', '_')}"
                command = [sys.executable, "-m", "ddiff.recipes.dna", "sample", "--checkpoint"]
                command += [args.run, "--out", str(out), "--no-progress", *options]
                subprocess.run(command, check=True, capture_output=True)
                record = json.loads((out / "samples.json").read_text())
                row = rows.setdefault(name, {"seconds": math.inf, "nfe": record["nfe_per_batch"]})
                row["seconds"] = min(row["seconds"], record["seconds"])
                if r == 0:
                    x = torch.from_numpy(np.load(out / "samples_tokens.npy")).long()
                    row |= _js_with_error(x, heldout)
                print(f"round {r} {name}: {row}", flush=True)
    return {"rows": rows}


def _js_with_error(x: torch.Tensor, reference: torch.Tensor, boot: int = 50) -> dict[str, Any]:
    g = torch.Generator().manual_seed(0)
    out: dict[str, Any] = {}
    for k in (3, 6):
        values = [
            kmer_js(x[torch.randint(0, x.shape[0], (x.shape[0],), generator=g)], reference, k, 4)
            for _ in range(boot)
        ]
        out[f"js{k}"] = kmer_js(x, reference, k, 4)
        out[f"js{k}_se"] = float(torch.tensor(values).std())
    return out


def _draw(sampler: Any, score_fn: Any, num: int, length: int, steps: int | None) -> Draw:
    def draw(generator: torch.Generator) -> Any:
        with torch.no_grad():
            return sampler.run(score_fn, num, length, steps, generator=generator)

    return draw


# -- tables -----------------------------------------------------------------------------------------


def table(setting: str, result: dict[str, Any]) -> str:
    parts = []
    if setting == "oracle":
        for label, r in result.items():
            rows = [
                [name, row["nfe"], f"{row['sequence_nfe']:.1f}", f"{row['tv']:.4f}"]
                for name, row in sorted(r["rows"].items(), key=lambda kv: kv[1]["sequence_nfe"])
            ]
            rows.append(["exact draws from p_0", "", "", f"{r['floor']:.4f}"])
            header = ["sampler", "NFE", "NFE per sequence", "TV"]
            parts.append(f"**{label}**\n\n" + h.markdown_table(header, rows, right=lambda i: i > 0))
        return "\n\n".join(parts)
    if setting == "markov":
        for label in ("time-conditioned", "time-agnostic"):
            base = result[label]["rows"]["euler 128"]["seconds"]
            rows = [
                [
                    name,
                    row["nfe"],
                    f"{row['sequence_nfe']:.1f}",
                    f"{row['nll_bits']:.3f} ± {row['nll_stderr']:.3f}",
                    f"{row['js3']:.4f}",
                    f"{row['seconds'] / base:.2f}",
                ]
                for name, row in sorted(
                    result[label]["rows"].items(), key=lambda kv: kv[1]["sequence_nfe"]
                )
            ]
            ref = result["source samples"]
            rows.append(
                [
                    "source samples",
                    "",
                    "",
                    f"{ref['nll_bits']:.3f} ± {ref['nll_stderr']:.3f}",
                    f"{ref['js3']:.4f}",
                    "",
                ]
            )
            header = [
                "sampler",
                "NFE",
                "NFE per sequence",
                "NLL (bits/token)",
                "3-mer JS",
                "time / euler 128",
            ]
            parts.append(
                f"**{label} model**; source entropy {result['entropy_bits']:.3f} bits/token\n\n"
                + h.markdown_table(header, rows, right=lambda i: i > 0)
            )
        return "\n\n".join(parts)
    if setting == "recipe":
        base = result["rows"]["euler 128 (default)"]["seconds"]
        rows = [
            [
                name,
                row["nfe"],
                f"{row['js3']:.4f} ± {row['js3_se']:.4f}",
                f"{row['js6']:.4f} ± {row['js6_se']:.4f}",
                f"{row['seconds']:.1f}",
                f"{base / row['seconds']:.2f}",
            ]
            for name, row in result["rows"].items()
        ]
        header = ["sampler", "NFE", "3-mer JS", "6-mer JS", "stage seconds", "speed-up"]
        return h.markdown_table(header, rows, right=lambda i: i > 0)
    base = result["rows"]["euler 128"]["seconds"]
    rows = [
        [
            name,
            row["nfe"],
            f"{row['sequence_nfe']:.1f}",
            f"{row['js3']:.4f}",
            f"{row['js6']:.4f}",
            f"{row['seconds']:.1f}",
            f"{base / row['seconds']:.2f}",
        ]
        for name, row in sorted(result["rows"].items(), key=lambda kv: kv[1]["sequence_nfe"])
    ]
    ref = result["training windows"]
    rows.append(["training windows", "", "", f"{ref['js3']:.4f}", f"{ref['js6']:.4f}", "", ""])
    header = [
        "sampler",
        "NFE",
        "NFE per sequence",
        "3-mer JS",
        "6-mer JS",
        "seconds",
        "speed-up vs euler 128",
    ]
    return h.markdown_table(header, rows, right=lambda i: i > 0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", choices=["oracle", "markov", "dna", "recipe"], required=True)
    p.add_argument("--num", type=int, help="samples per configuration (oracle 20000, else 512)")
    p.add_argument("--rounds", type=int, default=2, help="interleaved timing rounds")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--train-steps", type=int, default=1500, help="markov: training steps")
    p.add_argument("--run", help="dna, recipe: the DNA recipe's run directory")
    p.add_argument("--table", action="store_true", help="print the table of saved results")
    args = p.parse_args()
    path = h.OUT / "nfe" / f"{args.only}.json"
    if not args.table:
        torch.set_num_threads(args.threads)
        h.quiet()
        args.num = args.num or (20_000 if args.only == "oracle" else 512)
        settings = {"oracle": oracle, "markov": markov, "dna": dna, "recipe": recipe}
        result = settings[args.only](args)
        result["machine"] = h.machine(args.threads)
        result["num_samples"] = args.num
        write_json(path, result)
    result = json.loads(path.read_text())
    print(
        table(args.only, {k: v for k, v in result.items() if k not in ("machine", "num_samples")})
    )


if __name__ == "__main__":
    main()
