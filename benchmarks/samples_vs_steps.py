"""Table 3: sample quality against the number of reverse steps, for each sampler.

The absorbing-graph models trained by benchmarks/entropy_gap.py (synthetic sources) and
benchmarks/real_data.py (the DNA recipe's E. coli promoter model) draw `--num` samples with
the Euler, tau-leaping and analytic samplers at 8, 32, 128 and 512 steps (plus the denoise
step). On a synthetic source every sample's exact log-likelihood is known: the table gives the
mean NLL of the samples in bits per token (the source's own samples average its entropy; a
sampler that drops low-probability sequences can go below it, so read it with the divergence)
and the Jensen-Shannon divergence of their k-mer spectrum to 20,000 source samples. On E. coli
promoters: the 3-mer JS to the held-out windows. Reference rows: samples of the source itself
(or training windows) of the same size, and the autoregressive model's samples.

    .venv/bin/python benchmarks/samples_vs_steps.py            # needs the trained models
    .venv/bin/python benchmarks/samples_vs_steps.py --sources promoter --steps 8 32
    .venv/bin/python benchmarks/samples_vs_steps.py --table
    # table 3 over training seeds, beside the transformer: Euler at 32 and 128 steps
    .venv/bin/python benchmarks/samples_vs_steps.py --sources markov4 markov20 markov30 promoter \
        --model absorbing_conv3_cos --seed 1 --samplers euler --steps 32 128 --num 256
    .venv/bin/python benchmarks/samples_vs_steps.py --seeds-summary
    # every sampler over training seeds (after runs with --samplers euler tau-leaping analytic)
    .venv/bin/python benchmarks/samples_vs_steps.py --seeds-samplers

Results: runs/benchmarks/steps/<source>.json (the default model, the transformer, seed 0) or
<source>-<model>[-seed<N>].json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ddiff.io import write_json

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as h
import entropy_gap

SOURCES = ("markov4", "markov20", "markov30", "promoter", "ecoli")
SAMPLERS = ("euler", "tau-leaping", "analytic")
K = {"markov4": 3, "promoter": 3, "ecoli": 3, "markov20": 2, "markov30": 2}


def kmer_js(samples: torch.Tensor, reference: torch.Tensor, k: int, base: int) -> float:
    """Jensen-Shannon divergence (bits) of the pooled k-mer spectra of two token sets."""
    from ddiff.eval._common import js_divergence_bits, packed_kmers

    def spectrum(x: torch.Tensor) -> np.ndarray:
        codes = np.concatenate([packed_kmers(row, k, base) for row in x.numpy()])
        return np.bincount(codes, minlength=base**k).astype(np.float64)

    return js_divergence_bits(spectrum(samples), spectrum(reference), f"{k}-mers")


def sampler_of(name: str, graph: Any, schedule: Any) -> Any:
    from ddiff.samplers import AnalyticSampler, EulerSampler, TauLeapingSampler

    cls = {"euler": EulerSampler, "tau-leaping": TauLeapingSampler, "analytic": AnalyticSampler}
    return cls[name](graph, schedule)


def model_file(name: str, model: str, seed: int) -> str:
    """The stem of a trained model's file and of its result here (entropy_gap's naming)."""
    return f"{name}-{model}" + (f"-seed{seed}" if seed else "")


def result_path(name: str, model: str, seed: int) -> Path:
    if model == "absorbing" and seed == 0:
        return h.OUT / "steps" / f"{name}.json"
    return h.OUT / "steps" / f"{model_file(name, model, seed)}.json"


def setting(name: str, model_name: str = "absorbing", seed: int = 0) -> dict[str, Any]:
    """Models, reference set and scoring of one source (synthetic sources: the diffusion model
    `model_name` and the AR model trained with `seed`)."""
    if name == "ecoli":
        from ddiff.recipes.dna import TASK
        from ddiff.run import build_module

        recipe = TASK
        config = recipe.default_config()
        data = recipe.load_data(config)
        module = build_module(config.run_config())
        net = module.net
        net.load_state_dict(torch.load(h.OUT / "models" / "dna-diffusion.pt", weights_only=True))
        model = h.Model("absorbing", net.eval(), module.graph, module.schedule)
        ar_path = h.OUT / "models" / "dna-ar.pt"
        ar = None
        if ar_path.is_file():
            from ddiff.nets import CausalTransformer

            c = config.net
            ar_net = CausalTransformer(
                4, dim=c.dim, depth=c.depth, heads=c.heads, cond_dim=c.cond_dim
            )
            ar_net.load_state_dict(torch.load(ar_path, weights_only=True))
            ar = h.Model("ar", ar_net.eval())
        train = data.train[
            torch.randperm(data.train.shape[0], generator=torch.Generator().manual_seed(0))
        ]
        return {
            "model": model,
            "ar": ar,
            "reference": data.heldout,
            "same_size": lambda n: train[:n],
            "same_size_label": "training windows",
            "length": data.heldout.shape[1],
            "num_tokens": 4,
            "source": None,
        }
    source = entropy_gap.source_of(name)
    models = h.OUT / "models"
    model = h.load(
        model_name, source.num_tokens, models / f"{model_file(name, model_name, seed)}.pt"
    )
    ar_path = models / f"{model_file(name, 'ar', seed)}.pt"
    ar = h.load("ar", source.num_tokens, ar_path) if ar_path.is_file() else None
    fresh = torch.Generator().manual_seed(7)
    return {
        "model": model,
        "ar": ar,
        "reference": source.sample(20_000, torch.Generator().manual_seed(5)),
        "same_size": lambda n: source.sample(n, fresh),
        "same_size_label": "source samples",
        "length": source.length,
        "num_tokens": source.num_tokens,
        "source": source,
    }


def measure(name: str, s: dict[str, Any], x: torch.Tensor, seconds: float) -> dict[str, Any]:
    row: dict[str, Any] = {
        "js": kmer_js(x, s["reference"], K[name], s["num_tokens"]),
        "seconds": seconds,
        "tokens_per_second": x.numel() / seconds if seconds > 0 else None,
    }
    if s["source"] is not None:
        bits = s["source"].nll(x) / np.log(2) / x.shape[1]
        row["nll_bits"] = float(bits.mean())
        row["nll_stderr"] = float(bits.std() / np.sqrt(bits.numel()))
    return row


def run(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    for name in args.sources:
        if name == "ecoli" and (args.model, args.seed) != ("absorbing", 0):
            raise SystemExit("--model and --seed apply to the synthetic sources only")
        path = result_path(name, args.model, args.seed)
        result: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {}
        s = setting(name, args.model, args.seed)
        result |= {
            "source": name,
            "num_samples": args.num,
            "length": s["length"],
            "k": K[name],
            "model": args.model,
            "seed": args.seed,
            "machine": h.machine(),
        }
        if s["source"] is not None:
            result["entropy_bits"] = entropy_gap.entropy_bits(s["source"])[0]
        result["reference"] = measure(name, s, s["same_size"](args.num), 0.0)
        result["reference"]["label"] = s["same_size_label"]
        if s["ar"] is not None:
            start = time.perf_counter()
            with torch.no_grad():
                x = s["ar"].net.sample(
                    args.num, s["length"], generator=torch.Generator().manual_seed(0)
                )
            result["ar"] = measure(name, s, x, time.perf_counter() - start)
        rows = result.setdefault("rows", {})
        model = s["model"]
        for sampler_name in [] if args.references_only else args.samplers:
            sampler = sampler_of(sampler_name, model.graph, model.schedule)
            for steps in args.steps:
                start = time.perf_counter()
                out = sampler.run(
                    model.net,
                    args.num,
                    s["length"],
                    steps,
                    generator=torch.Generator().manual_seed(steps),
                )
                row = measure(name, s, out.tokens, time.perf_counter() - start)
                rows[f"{sampler_name}/{steps}"] = row
                print(f"{name} {sampler_name} {steps}: {row}", flush=True)
                write_json(path, result)
        write_json(path, result)


def table() -> str:
    out = []
    for name in SOURCES:
        path = h.OUT / "steps" / f"{name}.json"
        if not path.is_file():
            continue
        r = json.loads(path.read_text())
        synthetic = "entropy_bits" in r
        header = ["sampler", "steps"]
        header += ["mean NLL (bits/token)"] if synthetic else []
        header += [f"{r['k']}-mer JS (bits)", "seconds", "tokens/s"]
        rows = []
        for key, row in r["rows"].items():
            sampler, steps = key.split("/")
            cells: list[Any] = [sampler, steps]
            if synthetic:
                cells.append(f"{row['nll_bits']:.3f} ± {row['nll_stderr']:.3f}")
            cells += [
                f"{row['js']:.4f}",
                f"{row['seconds']:.1f}",
                f"{row['tokens_per_second']:.0f}",
            ]
            rows.append(cells)
        for label, row in (("AR model", r.get("ar")), (r["reference"]["label"], r["reference"])):
            if row is None:
                continue
            # The AR model makes one network call per token.
            cells = [label, str(r["length"]) if label == "AR model" else ""]
            if synthetic:
                cells.append(f"{row['nll_bits']:.3f} ± {row['nll_stderr']:.3f}")
            seconds = row["seconds"]
            cells += [
                f"{row['js']:.4f}",
                f"{seconds:.1f}" if seconds else "",
                f"{row['tokens_per_second']:.0f}" if row.get("tokens_per_second") else "",
            ]
            rows.append(cells)
        label = {**entropy_gap.LABELS, "ecoli": "E. coli promoter windows"}[name]
        title = f"**{label}**, {r['num_samples']} samples"
        if synthetic:
            title += f"; source entropy {r['entropy_bits']:.3f} bits/token"
        out.append(title + "\n\n" + h.markdown_table(header, rows, right=lambda i: i > 0))
    return "\n\n".join(out)


def seed_results(name: str, models: tuple[str, ...]) -> dict[str, list[dict[str, Any]]]:
    """The saved results of `models` on source `name` for training seeds 0, 1, 2 (those found)."""
    return {
        model: [
            json.loads(path.read_text())
            for seed in (0, 1, 2)
            if (path := result_path(name, model, seed)).is_file()
        ]
        for model in models
    }


def cell(values: list[float], form: str) -> str:
    """The mean of `values` and, in brackets, their range (max - min), in `form`."""
    if not values:
        return ""
    mean = format(sum(values) / len(values), form)
    spread = format(max(values) - min(values), form.lstrip("+"))
    return mean if len(values) == 1 else f"{mean} ({spread})"


def seeds_summary(models: tuple[str, ...] = ("absorbing", "absorbing_conv3_cos")) -> str:
    """Euler at 32 and 128 steps for each model over training seeds 0, 1, 2: the mean over seeds
    (in brackets the range, max - min) of the samples' mean NLL minus the entropy and of their
    k-mer JS; the AR models' samples and the source's own (the floor, seed 0's set) below."""
    header = ["source", "samples of", "seeds", "NLL - H, Euler 32", "NLL - H, Euler 128"]
    header += ["JS, Euler 32", "JS, Euler 128"]
    rows: list[list[Any]] = []

    for name in SOURCES[:4]:
        found = seed_results(name, models)
        for model, results in found.items():
            picked = [r for r in results if {"euler/32", "euler/128"} <= r["rows"].keys()]
            if not picked:
                continue
            row: list[Any] = [name, model, len(picked)]
            for key in ("nll_bits", "js"):
                for steps in (32, 128):
                    values = [r["rows"][f"euler/{steps}"][key] for r in picked]
                    if key == "nll_bits":
                        gaps = [v - r["entropy_bits"] for v, r in zip(values, picked, strict=True)]
                        row.append(cell(gaps, "+.3f"))
                    else:
                        row.append(cell(values, ".4f"))
            rows.append(row)
        results = found[models[-1]]
        ars = [r for r in results if r.get("ar")]
        if ars:
            gaps = [r["ar"]["nll_bits"] - r["entropy_bits"] for r in ars]
            js = [r["ar"]["js"] for r in ars]
            rows.append([name, "AR model", len(ars), cell(gaps, "+.3f"), "", cell(js, ".4f"), ""])
        if results:
            ref = results[0]
            gap = ref["reference"]["nll_bits"] - ref["entropy_bits"]
            rows.append(
                [
                    name,
                    "the source (floor)",
                    "",
                    f"{gap:+.3f}",
                    "",
                    f"{ref['reference']['js']:.4f}",
                    "",
                ]
            )
    return h.markdown_table(header, rows, right=lambda i: i > 1)


def seeds_samplers(models: tuple[str, ...] = ("absorbing", "absorbing_conv3_cos")) -> str:
    """Every sampler and step count measured for all of training seeds 0, 1, 2 of both models:
    one row per source, sampler and steps; per model the mean over seeds (in brackets the range,
    max - min) of the samples' mean NLL minus the entropy and of their k-mer JS."""
    labels = {"absorbing": "transformer", "absorbing_conv3_cos": "conv3 + cosine"}
    header = ["source", "sampler", "steps"]
    header += [f"NLL - H, {labels.get(m, m)}" for m in models]
    header += [f"JS, {labels.get(m, m)}" for m in models]
    rows: list[list[Any]] = []
    for name in SOURCES[:4]:
        found = seed_results(name, models)
        if any(len(results) < 3 for results in found.values()):
            continue
        keys = [k for k in found[models[0]][0]["rows"] if all(
            k in r["rows"] for results in found.values() for r in results
        )]  # fmt: skip
        keys.sort(key=lambda k: (SAMPLERS.index(k.split("/")[0]), int(k.split("/")[1])))
        for key in keys:
            sampler, steps = key.split("/")
            row: list[Any] = [entropy_gap.LABELS[name], sampler, steps]
            for metric, form in (("nll_bits", "+.3f"), ("js", ".4f")):
                for model in models:
                    values = [
                        r["rows"][key][metric] - (r["entropy_bits"] if metric == "nll_bits" else 0)
                        for r in found[model]
                    ]
                    row.append(cell(values, form))
            rows.append(row)
    return h.markdown_table(header, rows, right=lambda i: i > 1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sources", nargs="+", default=list(SOURCES), choices=SOURCES)
    p.add_argument("--samplers", nargs="+", default=list(SAMPLERS), choices=SAMPLERS)
    p.add_argument("--steps", nargs="+", type=int, default=[8, 32, 128, 512])
    p.add_argument("--num", type=int, default=512, help="samples per setting")
    p.add_argument(
        "--model",
        default="absorbing",
        type=entropy_gap.model_name,
        help="the diffusion model of the synthetic sources (entropy_gap's names)",
    )
    p.add_argument("--seed", type=int, default=0, help="the training seed of the models")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--references-only",
        action="store_true",
        help="only the reference rows (AR model, source samples); keep saved sampler rows",
    )
    p.add_argument("--table", action="store_true", help="print the tables of saved results")
    p.add_argument(
        "--seeds-summary", action="store_true", help="print Euler 32/128 over training seeds"
    )
    p.add_argument(
        "--seeds-samplers",
        action="store_true",
        help="print every sampler and step count measured for training seeds 0, 1, 2",
    )
    args = p.parse_args()
    if args.table:
        print(table())
    elif args.seeds_summary:
        print(seeds_summary())
    elif args.seeds_samplers:
        print(seeds_samplers())
    else:
        run(args)


if __name__ == "__main__":
    main()
