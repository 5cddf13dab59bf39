"""Table 2: diffusion vs autoregressive on real data (E. coli promoters, proteins, text).

For each recipe (`ddiff.recipes.dna`, `protein`, `text`) the diffusion model is exactly the
recipe's default (its graph, schedule, network, optimiser, batch and step count, built with
`ddiff.run.build_module` from the recipe's configuration, trained on the recipe's data and
data module) and the baseline is a `CausalTransformer` of the same size trained by
`AutoregressiveModule` on the same batches for the same number of steps (no time limit for
either); for a recipe whose network is not a transformer (the DNA recipe's convolutional one)
the baseline is the `tiny` transformer of the synthetic tables (`_harness.NET`). `--seed`
changes the training seed of both (data order and initial weights), not the evaluation's. Both are scored by `ddiff.eval.bits_per_token` on the recipe's held-out set: the bound
with `evaluate.num_t` times per sequence, and the exact NLL.

    .venv/bin/python benchmarks/real_data.py                    # all three recipes
    .venv/bin/python benchmarks/real_data.py --recipes dna --steps 500
    .venv/bin/python benchmarks/real_data.py --recipes dna --seed 1   # another training seed
    .venv/bin/python benchmarks/real_data.py --recipes text --set optim.lr_decay=cosine --tag cos
    .venv/bin/python benchmarks/real_data.py --table

`--set key=value` (repeatable) overrides the recipe's configuration for both models, as the
recipes' own `--set` does; `--tag T` names such a run's results <recipe>-T[-seed<N>].json;
`--reuse-ar` scores the untagged run's AR model instead of training it again (for a --set that
the AR model does not read, such as train.time_sampling).

Results: runs/benchmarks/real_data/<recipe>[-seed<N>].json; weights: runs/benchmarks/models/<recipe>-*.pt.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch
import yaml

from ddiff.io import write_json

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as h

RECIPES = ("dna", "protein", "text")
LABELS = {
    "dna": "E. coli promoter windows (bits/base)",
    "protein": "proteins (bits/residue)",
    "text": "text, BPE tokens (bits/token)",
}


def recipe_of(name: str) -> Any:
    """The recipe's task (`ddiff.recipes.<name>.TASK`)."""
    import importlib

    return importlib.import_module(f"ddiff.recipes.{name}").TASK


def heldout_of(task: Any, config: Any, data: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The held-out rows `[N, L]` and real lengths, as the recipe's `evaluate` builds them."""
    from ddiff.eval import subsample
    from ddiff.recipes.task import count, select

    ev = config.evaluate
    rows = subsample(count(data.heldout), ev.max_heldout, ev.seed)
    return task.as_rows(config, select(data.heldout, rows))


def run(args: argparse.Namespace) -> None:
    from ddiff.nets import CausalTransformer
    from ddiff.recipes.pipeline import datamodule
    from ddiff.run import build_module
    from ddiff.training import AutoregressiveModule

    torch.set_num_threads(args.threads)
    for name in args.recipes:
        tag = name + (f"-{args.tag}" if args.tag else "")
        tag += "" if args.seed is None else f"-seed{args.seed}"
        path = h.OUT / "real_data" / f"{tag}.json"
        if path.is_file() and not args.force:
            print(f"{path} exists (use --force to redo)", flush=True)
            continue
        recipe = recipe_of(name)
        config = recipe.default_config()
        if args.steps is not None:
            config = config.with_overrides({"train.max_steps": args.steps})
        if args.seed is not None:
            config = config.with_overrides({"train.seed": args.seed})
        if args.set:
            pairs = (item.split("=", 1) for item in args.set)
            config = config.with_overrides({k: yaml.safe_load(v) for k, v in pairs})
        data = recipe.load_data(config)
        heldout, lengths = heldout_of(recipe, config, data)
        ev = config.evaluate
        steps, seed = config.train.max_steps, config.train.seed
        result: dict[str, Any] = {
            "recipe": name,
            "steps": steps,
            "seed": seed,
            "net": config.net.kind,
            "tag": args.tag,
            "overrides": args.set,
            "machine": h.machine(),
        }

        diffusion = build_module(config.run_config())
        result["diffusion_training"] = h.fit(
            diffusion, datamodule(recipe, config, data), steps=steps, seed=seed
        )
        model = h.Model(
            "diffusion", diffusion.averaged_net.eval(), diffusion.graph, diffusion.schedule
        )
        h.save(model, h.OUT / "models" / f"{tag}-diffusion.pt")
        bound = h.score(model, heldout, lengths=lengths, num_t=ev.num_t, seed=ev.seed)
        print(f"{name}: diffusion {bound}", flush=True)

        net_cfg = config.net
        sizes = dict(h.NET)
        if net_cfg.kind == "transformer":
            sizes = {k: getattr(net_cfg, k) for k in ("dim", "depth", "heads", "cond_dim")}
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            ar_net = CausalTransformer(diffusion.graph.num_tokens, **sizes)
        baseline = name if args.seed is None else f"{name}-seed{args.seed}"
        saved = h.OUT / "models" / f"{baseline}-ar.pt"
        if args.reuse_ar and args.tag and saved.is_file():
            # The AR baseline does not depend on a --set of the diffusion side (the optimiser
            # and data are the recipe's): reuse the untagged run's trained weights.
            ar_net.load_state_dict(torch.load(saved, weights_only=True))
            ar_model = ar_net.eval()
            untagged = json.loads((h.OUT / "real_data" / f"{baseline}.json").read_text())
            result["ar_training"] = untagged["ar_training"] | {"reused": saved.name}
        else:
            ar = AutoregressiveModule(ar_net, config.optim.build())
            result["ar_training"] = h.fit(
                ar, datamodule(recipe, config, data), steps=steps, seed=seed
            )
            h.save(h.Model("ar", ar.averaged_net), h.OUT / "models" / f"{tag}-ar.pt")
            ar_model = ar.averaged_net.eval()
        nll = h.score(h.Model("ar", ar_model), heldout, lengths=lengths, num_t=0, seed=0)
        print(f"{name}: AR {nll}", flush=True)

        diff = bound.per_sequence - nll.per_sequence
        result |= {
            "heldout_sequences": int(heldout.shape[0]),
            "diffusion": bound.as_dict(),
            "ar": nll.as_dict(),
            "ratio": bound.bits_per_token / nll.bits_per_token,
            "paired_difference_bits": float(diff.mean()),
            "paired_difference_stderr": float(diff.std(ddof=1) / len(diff) ** 0.5),
            "commit": h.git_commit(),
        }
        write_json(path, result)
        print(f"{name}: bound / AR = {result['ratio']:.3f}", flush=True)


def table() -> str:
    rows = []
    for name in RECIPES:
        paths = sorted((h.OUT / "real_data").glob(f"{name}*.json"))
        for path in paths:
            if path.stem != name and not path.stem.startswith(f"{name}-"):
                continue
            rows.append(_table_row(name, json.loads(path.read_text())))
    header = [
        "data",
        "network",
        "seed",
        "held-out seqs",
        "steps",
        "diffusion bound",
        "AR NLL",
        "bound / AR",
        "bound - AR (paired)",
        "train s (diff / AR)",
    ]
    return h.markdown_table(header, rows, right=lambda i: i > 1)


def _table_row(name: str, r: dict[str, Any]) -> list[Any]:
    d, a = r["diffusion"], r["ar"]
    return [
        LABELS[name],
        r.get("net", "transformer") + (f", {r['tag']}" if r.get("tag") else ""),
        r.get("seed", 0),
        r["heldout_sequences"],
        r["steps"],
        f"{d['bits_per_token']:.3f} ± {d['stderr']:.3f}",
        f"{a['bits_per_token']:.3f} ± {a['stderr']:.3f}",
        f"{r['ratio']:.3f}",
        f"{r['paired_difference_bits']:+.3f} ± {r['paired_difference_stderr']:.3f}",
        f"{r['diffusion_training']['train_seconds']:.0f} / {r['ar_training']['train_seconds']:.0f}",
    ]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=RECIPES)
    p.add_argument("--steps", type=int, help="optimizer steps (default: the recipe's)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, help="training seed (default: the recipe's)")
    p.add_argument("--force", action="store_true", help="redo results that exist")
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override the config"
    )
    p.add_argument("--tag", help="names the results of a run with --set")
    p.add_argument(
        "--reuse-ar",
        action="store_true",
        help="with --tag: score the untagged run's AR model instead of training it again "
        "(valid when --set changes only the diffusion model's training)",
    )
    p.add_argument("--table", action="store_true", help="print the table of saved results")
    args = p.parse_args()
    if args.set and not args.tag:
        p.error("--set needs --tag, so that the results do not replace the defaults'")
    if any("=" not in item for item in args.set):
        p.error("--set takes KEY=VALUE")
    if args.table:
        print(table())
    else:
        run(args)


if __name__ == "__main__":
    main()
