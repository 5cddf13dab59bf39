"""Importance sampling of the training times (issue 16's lever), measured on the promoter-like
source of table 1 with the 3-block convolutional network.

The training loss is a one-sample estimate of the bound's time integral. Its variance is not
spread evenly over t: for the absorbing graph the number of masked positions at time t is
Binomial(L, t) and the integrand weighs them by 1/t, so its standard deviation grows like
sqrt((1 - t) / t) as t -> 0. `--variance` measures the integrand's mean and standard deviation
in 32 time bins on a trained model, and the per-sample variance that stratified uniform times
give against Neyman allocation (times drawn in proportion to each bin's standard deviation),
the best any importance sampling over these bins can do with stratified draws.

The library's sampler (`train.time_sampling: importance`, `ddiff.losses.ImportanceTimes`) is
Neyman allocation with a uniform share; entropy_gap.py trains with it (`--time-sampling
importance`). Without `--variance` this script trains the alternative it was chosen over: the
proposal in proportion to the root mean square of the integrand per bin (Nichol & Dhariwal,
ICML 2021, the optimum for i.i.d. times), everything else the same.

    .venv/bin/python benchmarks/time_importance.py --variance \
        runs/benchmarks/models/promoter-absorbing_conv3_cos-steps2300.pt
    .venv/bin/python benchmarks/time_importance.py --seed 0     # bf16, 2,950 steps, rms rule

Results: runs/benchmarks/entropy_gap/promoter-absorbing_conv3_cos-steps<N>-rms[-bf16][-seed<N>].json,
beside entropy_gap.py's own (`--seeds-table` lists them).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ddiff.io import write_json

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as h
import entropy_gap


def variance(path: Path, bins: int = 32, num: int = 512, seed: int = 0) -> None:
    from ddiff.losses.likelihood import bound_integrand

    source = entropy_gap.source_of("promoter")
    x = source.sample(num, torch.Generator().manual_seed(2))
    model = h.load("absorbing_conv3_cos", source.num_tokens, path)
    generator = torch.Generator().manual_seed(seed)
    means, sds = [], []
    with torch.no_grad():
        for b in range(bins):
            t = (b + torch.rand(2 * num, generator=generator, dtype=torch.float64)) / bins
            f = bound_integrand(
                model.net, model.graph, model.schedule, x.repeat(2, 1), t, generator
            ).double()
            means.append(f.mean().item())
            sds.append(f.std().item())
    print(h.machine())
    print("bin  t range        mean (nats/seq)  sd (nats/seq)")
    for b in range(bins):
        print(f"{b:3d}  [{b / bins:.3f}, {(b + 1) / bins:.3f})  {means[b]:15.1f}  {sds[b]:13.1f}")
    stratified = sum(s**2 for s in sds) / bins
    neyman = (sum(sds) / bins) ** 2
    bits = sum(means) / bins / source.length / math.log(2)
    print(f"bound estimate {bits:.4f} bits/token")
    print(
        f"per-sample variance of the loss: stratified uniform {stratified:.1f}, Neyman allocation "
        f"{neyman:.1f} (ratio {stratified / neyman:.2f})"
    )
    # The library's proposal mixes Neyman allocation with a uniform share m: bin b gets a share
    # q_b of the draws, each weighted 1 / (bins q_b), so the per-sample variance is
    # sum_b s_b^2 / (bins^2 q_b).
    for share in (0.0, 0.1, 0.2, 0.5):
        q = [(1 - share) * sd / sum(sds) + share / bins for sd in sds]
        mixed = sum(sd**2 / (bins**2 * qb) for sd, qb in zip(sds, q, strict=True))
        print(f"  uniform share {share:.1f}: {mixed:.1f} (ratio {stratified / mixed:.2f})")


def rms_times() -> Any:
    """The library's sampler with the proposal in proportion to the root mean square of the
    integrand per bin (Nichol & Dhariwal's rule for i.i.d. times) instead of its standard
    deviation."""
    from ddiff.losses import ImportanceTimes

    class RmsTimes(ImportanceTimes):
        def _spread(self) -> Tensor:
            return self.second_moment.sqrt()

    return RmsTimes()


def train(args: argparse.Namespace) -> None:
    torch.set_num_threads(1)
    name = (
        f"promoter-absorbing_conv3_cos-steps{args.steps}-rms"
        + ("-bf16" if args.precision == "bf16-mixed" else "")
        + (f"-seed{args.seed}" if args.seed else "")
    )
    path = h.OUT / "entropy_gap" / f"{name}.json"
    if path.is_file() and not args.force:
        raise SystemExit(f"{path} exists (use --force to redo)")
    source = entropy_gap.source_of("promoter")
    entropy, _ = entropy_gap.entropy_bits(source)
    train_data = source.sample(50_000, torch.Generator().manual_seed(1))
    heldout = source.sample(1000, torch.Generator().manual_seed(2))
    model = h.build_model("absorbing_conv3_cos", source.num_tokens, seed=args.seed)
    model, record = h.train(
        model,
        train_data,
        steps=args.steps,
        batch_size=64,
        seed=args.seed,
        precision=args.precision,
        time_sampling=rms_times(),
    )
    record["time_sampling"] = "importance (rms)"
    like = h.score(model, heldout, num_t=8, seed=args.seed).as_dict()
    write_json(
        path,
        {
            "source": "promoter",
            "model": "absorbing_conv3_cos",
            "seed": args.seed,
            "entropy_bits": entropy,
            "num_t": 8,
            "likelihood": like,
            "gap_bits": like["bits_per_token"] - entropy,
            "training": record,
            "machine": h.machine(),
            "commit": h.git_commit(),
        },
    )
    print(
        f"promoter, importance (rms): {like['bits_per_token']:.4f} bits/token, gap "
        f"{like['bits_per_token'] - entropy:+.4f}; {record['train_seconds']:.0f} s training"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variance", type=Path, help="a trained promoter conv3 model's weights")
    p.add_argument("--bins", type=int, default=32, help="time bins of --variance")
    p.add_argument("--steps", type=int, default=2950)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--precision", default="bf16-mixed", choices=["32-true", "bf16-mixed"])
    p.add_argument("--force", action="store_true")
    args = p.parse_args()
    if args.variance is not None:
        variance(args.variance, args.bins)
    else:
        train(args)


if __name__ == "__main__":
    main()
