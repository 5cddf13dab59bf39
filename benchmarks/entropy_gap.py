"""Table 1: the likelihood bound minus the exact entropy on synthetic sources, beside the exact
NLL of an autoregressive model of the same size trained for the same steps.

Sources (length 64, `ddiff.data`): Markov chains over 4 (order 2), 20 and 30 tokens, and a
promoter-like source (order-2 background over ACGT with a TTGACA box, a 15-19 spacer and a TATAAT
box at random positions). Models: the absorbing, uniform and substitution-model (HKY85 for 4
tokens, BLOSUM62-derived for 20) diffusion models and the autoregressive baseline, every one the
same transformer size (benchmarks/_harness.py), trained for `--steps` optimizer steps of
`--batch` sequences on 50,000 training sequences and scored on 1,000 fresh ones.

    .venv/bin/python benchmarks/entropy_gap.py                       # train and score everything
    .venv/bin/python benchmarks/entropy_gap.py --sources markov4 --models absorbing ar
    .venv/bin/python benchmarks/entropy_gap.py --table                # the table of saved results
    # score saved weights again, more precisely (same flags as the run, which used 8 times)
    .venv/bin/python benchmarks/entropy_gap.py --sources promoter --models absorbing \
        --rescore 8 --num-t 64 --heldout 4000

Results go to runs/benchmarks/entropy_gap/<source>-<model>.json and the trained weights to
runs/benchmarks/models/ (read by benchmarks/samples_vs_steps.py).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path
from typing import Any

import torch

from ddiff.io import write_json

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as h

LENGTH = 64
SOURCES = ("markov4", "markov20", "markov30", "promoter")
MODELS = ("absorbing", "uniform", "substitution", "ar")
EXTRA_MODELS = (
    "absorbing_conv",
    "absorbing_conv_cos",
    "absorbing_conv3_cos",
    "absorbing_conv4_cos",
    "absorbing_conv3_nopos_cos",
)
"""Run on request (`--models absorbing_conv`): the absorbing graph with `ConvScoreNet` (6
blocks; `conv3`, `conv4`: 3 or 4 blocks; `_nopos`: without absolute positions), `_cos`: with a
cosine learning-rate decay over the steps."""
CONV_NAME = r"absorbing_conv\d*(k\d+)?(w\d+)?(_nopos)?(_cos)?"
"""Any conv variant: `kK` sets the kernel size K, `wW` the width W (`absorbing_conv3k9w96_cos`)."""
LABELS = {
    "markov4": "Markov, 4 tokens, order 2",
    "markov20": "Markov, 20 tokens",
    "markov30": "Markov, 30 tokens",
    "promoter": "promoter-like (4 tokens, 2 motifs)",
}


def source_of(name: str) -> Any:
    from ddiff.data import MarkovSource, PlantedMotifSource

    if name == "markov4":
        return MarkovSource.random(4, LENGTH, seed=0, concentration=0.3, order=2)
    if name == "markov20":
        return MarkovSource.random(20, LENGTH, seed=0, concentration=0.3)
    if name == "markov30":
        return MarkovSource.random(30, LENGTH, seed=0, concentration=0.3)
    if name == "promoter":
        return PlantedMotifSource.promoter_like(LENGTH, seed=0)
    raise ValueError(f"unknown source {name!r}; choose from {SOURCES}")


def entropy_bits(source: Any) -> tuple[float, float]:
    """Entropy per token in bits and its standard error (0 when exact)."""
    if hasattr(source, "entropy_estimate"):
        nats, se = source.entropy_estimate()
        return nats / source.length / math.log(2), se / source.length / math.log(2)
    return source.entropy_per_token("bits"), 0.0


def graph_kwargs(kind: str, source: Any) -> dict[str, Any]:
    if kind == "substitution" and source.num_tokens == 4:
        # HKY85 with the source's own base composition as its stationary distribution.
        x = source.sample(20_000, torch.Generator().manual_seed(3))
        return {"frequencies": torch.bincount(x.reshape(-1), minlength=4) / x.numel()}
    return {}


def has_model(kind: str, num_tokens: int) -> bool:
    return kind != "substitution" or num_tokens in (4, 20)


def run_name(source: str, kind: str, args: argparse.Namespace, num_t: int | None = None) -> str:
    """The file stem of a run's result and weights: the settings that differ from the defaults.
    `num_t` (default: `args.num_t`) and `args.heldout` are the scoring's; the rest, training's."""
    num_t = args.num_t if num_t is None else num_t
    return f"{source}-{kind}" + (
        (f"-steps{args.steps}" if args.steps != 1000 else "")
        + (f"-batch{args.batch}" if args.batch != 64 else "")
        + (f"-lr{args.lr:g}" if args.lr is not None else "")
        + (f"-beta2_{args.beta2:g}" if args.beta2 is not None else "")
        + (f"-minlr{args.min_lr_ratio:g}" if args.min_lr_ratio else "")
        + (f"-t{num_t}" if num_t != 8 else "")
        + (f"-h{args.heldout}" if args.heldout != 1000 else "")
        + ("-bf16" if args.precision == "bf16-mixed" else "")
        + ("-is" if args.time_sampling == "importance" else "")
        + (f"-seed{args.seed}" if args.seed else "")
    )


def optim_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """`OptimSettings` fields that `--beta2` and `--min-lr-ratio` change."""
    over: dict[str, Any] = {}
    if args.beta2 is not None:
        from ddiff.training import OptimSettings

        over["betas"] = (OptimSettings.betas[0], args.beta2)
    if args.min_lr_ratio:
        over["min_lr_ratio"] = args.min_lr_ratio
    return over


def run(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    for name in args.sources:
        source = source_of(name)
        entropy, entropy_se = entropy_bits(source)
        train_data = source.sample(50_000, torch.Generator().manual_seed(1))
        heldout = source.sample(args.heldout, torch.Generator().manual_seed(2))
        for kind in args.models:
            if not has_model(kind, source.num_tokens):
                continue
            stem = run_name(name, kind, args)
            path = h.OUT / "entropy_gap" / f"{stem}.json"
            if path.is_file() and not args.force:
                print(f"{path} exists (use --force to redo)", flush=True)
                continue
            kwargs = graph_kwargs(kind, source)
            if args.rescore is not None:
                # Score the weights of an earlier run (its scoring settings: `--rescore` times,
                # 1,000 held-out sequences) again; its training record is copied.
                scored = argparse.Namespace(**{**vars(args), "heldout": 1000})
                earlier = run_name(name, kind, scored, num_t=args.rescore)
                weights = h.OUT / "models" / f"{earlier}.pt"
                if not weights.is_file():
                    raise SystemExit(f"--rescore: no weights at {weights}; train that run first")
                record = json.loads((h.OUT / "entropy_gap" / f"{earlier}.json").read_text())
                record = record["training"]
                model = h.load(kind, source.num_tokens, weights, **kwargs)
            else:
                model = h.build_model(
                    kind, source.num_tokens, seed=args.seed, length=LENGTH, **kwargs
                )
                model, record = h.train(
                    model,
                    train_data,
                    steps=args.steps,
                    batch_size=args.batch,
                    seed=args.seed,
                    lr=args.lr,
                    precision=args.precision,
                    time_sampling=args.time_sampling,
                    optim=optim_overrides(args),
                )
                h.save(model, h.OUT / "models" / f"{stem}.pt")
            estimate = h.score(model, heldout, num_t=args.num_t, seed=args.seed)
            result = {
                "source": name,
                "model": kind,
                "seed": args.seed,
                "entropy_bits": entropy,
                "entropy_stderr": entropy_se,
                "uniform_bits": math.log2(source.num_tokens),
                "likelihood": estimate.as_dict(),
                "gap_bits": estimate.bits_per_token - entropy,
                "training": record,
                "heldout_sequences": args.heldout,
                "num_t": args.num_t,
                "machine": h.machine(),
                "commit": h.git_commit(),
            }
            if args.rescore is not None:
                result["rescored_from"] = earlier
            write_json(path, result)
            print(
                f"{name:9s} {kind:12s} {estimate} entropy {entropy:.4f}; gap "
                f"{result['gap_bits']:+.4f}; {record['train_seconds']:.0f} s training",
                flush=True,
            )


def seeds_table() -> str:
    """Every saved result grouped by source, model and steps: the gap per training seed, its
    mean and spread across seeds, and the mean training time."""
    groups: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    for path in sorted((h.OUT / "entropy_gap").glob("*.json")):
        r = json.loads(path.read_text())
        training = r["training"]
        model = r["model"]
        if training.get("batch_size", 64) != 64:
            model += f", batch {training['batch_size']}"
        if training.get("lr", 1e-3) != 1e-3:
            model += f", lr {training['lr']:g}"
        if "betas" in training:
            model += f", beta2 {training['betas'][1]:g}"
        if training.get("min_lr_ratio"):
            model += f", final lr ratio {training['min_lr_ratio']:g}"
        if r.get("num_t", 8) != 8:
            model += f", {r['num_t']} bound times"
        if r.get("heldout_sequences", 1000) != 1000:
            model += f", {r['heldout_sequences']} held-out"
        if training.get("precision", "32-true") != "32-true":
            model += f", {training['precision']}"
        if training.get("time_sampling", "stratified") != "stratified":
            model += f", {training['time_sampling']} times"
        key = (r["source"], model, int(training["steps"]))
        groups.setdefault(key, []).append(r)
    rows = []
    for (name, kind, steps), rs in sorted(groups.items()):
        rs.sort(key=lambda r: r.get("seed", 0))
        gaps = torch.tensor([r["gap_bits"] for r in rs], dtype=torch.float64)
        spread = f"{float(gaps.std()):.3f}" if len(rs) > 1 else "-"
        seconds = sum(r["training"]["train_seconds"] for r in rs) / len(rs)
        per_seed = " / ".join(f"{float(g):+.3f}" for g in gaps)
        rows.append(
            [LABELS[name], kind, steps, f"{seconds:.0f}", len(rs), per_seed,
             f"{float(gaps.mean()):+.3f}", spread]
        )  # fmt: skip
    header = [
        "source", "model", "steps", "training s (mean)", "seeds", "bound - H per seed",
        "mean", "sd over seeds",
    ]  # fmt: skip
    return h.markdown_table(header, rows, right=lambda i: i > 1)


SUMMARY_COLUMNS = (
    ("absorbing", 8),
    ("absorbing_conv3_cos", 8),
    ("uniform", 32),
    ("substitution", 32),
    ("ar", 8),
)
"""Table 1 by training seeds: (model, bound times per sequence) of each column, 1,000 steps."""


def seeds_summary(seeds: tuple[int, ...] = (0, 1, 2)) -> str:
    """Table 1 over training seeds: each cell the mean gap to the entropy and, in brackets, its
    standard deviation over the seeds; the last column the best diffusion bound over the AR
    NLL, per seed, averaged. Only 1,000-step, batch-64, float32 results with the default
    optimiser and time sampling, scored on 1,000 held-out sequences, are used."""
    found: dict[tuple[str, str, int], dict[int, dict[str, Any]]] = {}
    for path in sorted((h.OUT / "entropy_gap").glob("*.json")):
        r = json.loads(path.read_text())
        t = r["training"]
        if t["steps"] != 1000 or t.get("batch_size", 64) != 64 or t.get("lr", 1e-3) != 1e-3:
            continue
        if t.get("precision", "32-true") != "32-true":
            continue
        if t.get("time_sampling", "stratified") != "stratified":
            continue
        if "betas" in t or t.get("min_lr_ratio") or r.get("heldout_sequences", 1000) != 1000:
            continue
        found.setdefault((r["source"], r["model"], r.get("num_t", 8)), {})[r["seed"]] = r
    rows = []
    for name in SOURCES:
        row: list[Any] = [LABELS[name]]
        entropy = None
        per_seed: dict[int, dict[str, float]] = {}
        for model, num_t in SUMMARY_COLUMNS:
            rs = found.get((name, model, num_t), {})
            gaps = [rs[s]["gap_bits"] for s in seeds if s in rs]
            if not gaps:
                row.append("n/a")
                continue
            entropy = next(iter(rs.values()))["entropy_bits"]
            g = torch.tensor(gaps, dtype=torch.float64)
            spread = f" ({float(g.std()):.3f})" if len(gaps) > 1 else ""
            row.append(
                f"{float(g.mean()):+.3f}{spread}" + ("" if len(gaps) == 3 else f" [{len(gaps)}]")
            )
            for s in seeds:
                if s in rs:
                    per_seed.setdefault(s, {})[model] = rs[s]["likelihood"]["bits_per_token"]
        ratios = []
        for values in per_seed.values():
            bounds = [v for k, v in values.items() if k != "ar"]
            if bounds and "ar" in values:
                ratios.append(min(bounds) / values["ar"])
        row.insert(1, f"{entropy:.3f}" if entropy is not None else "")
        row.append(f"{sum(ratios) / len(ratios):.3f}" if ratios else "")
        rows.append(row)
    header = [
        "source", "entropy", "absorbing, transformer", "absorbing, conv3 + cosine",
        "uniform (32 times)", "substitution (32 times)", "AR NLL - H", "best bound / AR NLL",
    ]  # fmt: skip
    return h.markdown_table(header, rows, right=lambda i: i > 0)


def table() -> str:
    results: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted((h.OUT / "entropy_gap").glob("*.json")):
        r = json.loads(path.read_text())
        results[(r["source"], r["model"])] = r
    header = [
        "source",
        "entropy",
        "absorbing bound - H",
        "uniform bound - H",
        "substitution bound - H",
        "AR NLL - H",
        "best bound / AR NLL",
    ]
    rows = []
    for name in SOURCES:
        row: list[Any] = [LABELS[name]]
        rs = {k: results.get((name, k)) for k in MODELS}
        if not any(rs.values()):
            continue
        first = next(r for r in rs.values() if r)
        se = first["entropy_stderr"]
        row.append(f"{first['entropy_bits']:.3f}" + (f" ± {se:.4f}" if se else ""))
        for kind in MODELS:
            r = rs[kind]
            if r is None:
                row.append("n/a")
                continue
            like = r["likelihood"]
            row.append(f"{r['gap_bits']:+.3f} ± {like['stderr']:.3f}")
        bounds = [rs[k]["likelihood"]["bits_per_token"] for k in MODELS[:3] if rs[k]]
        ar = rs["ar"]
        row.append(
            f"{min(bounds) / ar['likelihood']['bits_per_token']:.3f}" if bounds and ar else ""
        )
        rows.append(row)
    return h.markdown_table(header, rows, right=lambda i: i > 0)


def model_name(name: str) -> str:
    """`--models`: MODELS, EXTRA_MODELS, or any conv variant `_harness.build_model` reads."""
    if name in MODELS or name in EXTRA_MODELS or re.fullmatch(CONV_NAME, name):
        return name
    raise argparse.ArgumentTypeError(
        f"unknown model {name!r}: choose from {', '.join(MODELS + EXTRA_MODELS)} or a conv "
        "variant such as absorbing_conv3k9w96_cos"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sources", nargs="+", default=list(SOURCES), choices=SOURCES)
    p.add_argument("--models", nargs="+", default=list(MODELS), type=model_name)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, help="peak learning rate (default: _harness.OPTIM's)")
    p.add_argument(
        "--beta2", type=float, help="AdamW's second-moment decay (default: OptimSettings's 0.999)"
    )
    p.add_argument(
        "--min-lr-ratio", type=float, default=0.0, help="the cosine's final learning rate / peak"
    )
    p.add_argument("--heldout", type=int, default=1000, help="held-out sequences scored")
    p.add_argument(
        "--precision",
        default="32-true",
        choices=["32-true", "bf16-mixed"],
        help="training precision (bf16-mixed: bf16 autocast; scoring is always float32)",
    )
    p.add_argument("--num-t", type=int, default=8)
    p.add_argument(
        "--time-sampling",
        default="stratified",
        choices=["stratified", "importance"],
        help="training times of the diffusion models (DiffusionModule's time_sampling)",
    )
    p.add_argument(
        "--rescore",
        type=int,
        metavar="T",
        help="no training: score the saved weights of the same run scored with T times on 1,000 "
        "held-out sequences again, with --num-t times on --heldout sequences",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--force", action="store_true", help="redo results that exist")
    p.add_argument("--table", action="store_true", help="print the table of saved results")
    p.add_argument("--seeds-table", action="store_true", help="print every result by training seed")
    p.add_argument(
        "--seeds-summary", action="store_true", help="print table 1 over training seeds 0, 1, 2"
    )
    args = p.parse_args()
    if args.table:
        print(table())
    elif args.seeds_table:
        print(seeds_table())
    elif args.seeds_summary:
        print(seeds_summary())
    else:
        run(args)


if __name__ == "__main__":
    main()
