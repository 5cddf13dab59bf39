"""Importance sampling of the training times (issue 16's lever), measured on the promoter-like
source of table 1 with the 3-block convolutional network.

The training loss is a one-sample estimate of the bound's time integral. Its variance is not
spread evenly over t: for the absorbing graph the number of masked positions at time t is
Binomial(L, t) and the integrand weighs them by 1/t, so its standard deviation grows like
sqrt((1 - t) / t) as t -> 0. `--variance` measures the integrand's mean and standard deviation
in 32 time bins on a trained model, and the per-sample variance that stratified uniform times
give against Neyman allocation (times drawn in proportion to each bin's standard deviation),
the best any importance sampling over these bins can do.

Training (`--mix M`): adaptive importance sampling in the manner of Nichol & Dhariwal (2021,
"Improved DDPM"): a running mean of the squared integrand per bin (uniform times for the first
100 steps), times drawn by stratified inversion of the proposal q = (1 - M) sqrt(E f^2) / Z + M
(uniform), and the loss weighted by 1 / q(t), so it stays an unbiased estimate of the bound.
`--rule sd` replaces sqrt(E f^2) by the bin's standard deviation: with stratified draws the
between-bin differences of the mean cost nothing, so Neyman allocation is the better target.
The module is `DiffusionModule` with `_step_loss` replaced here; nothing in the library changes.

    .venv/bin/python benchmarks/time_importance.py --variance \
        runs/benchmarks/models/promoter-absorbing_conv3_cos-steps2300.pt
    .venv/bin/python benchmarks/time_importance.py --mix 0.2 --steps 2300 --seed 0

Results: runs/benchmarks/entropy_gap/promoter-absorbing_conv3_cos-steps<N>-is<M>[...].json,
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

BINS = 32
WARMUP = 100  # uniform times until every bin has a running estimate


def variance(path: Path, num: int = 512, seed: int = 0) -> None:
    from ddiff.losses.likelihood import bound_integrand

    source = entropy_gap.source_of("promoter")
    x = source.sample(num, torch.Generator().manual_seed(2))
    model = h.load("absorbing_conv3_cos", source.num_tokens, path)
    generator = torch.Generator().manual_seed(seed)
    means, sds = [], []
    with torch.no_grad():
        for b in range(BINS):
            t = (b + torch.rand(2 * num, generator=generator, dtype=torch.float64)) / BINS
            f = bound_integrand(
                model.net, model.graph, model.schedule, x.repeat(2, 1), t, generator
            ).double()
            means.append(f.mean().item())
            sds.append(f.std().item())
    print(h.machine())
    print("bin  t range        mean (nats/seq)  sd (nats/seq)")
    for b in range(BINS):
        print(f"{b:3d}  [{b / BINS:.3f}, {(b + 1) / BINS:.3f})  {means[b]:15.1f}  {sds[b]:13.1f}")
    stratified = sum(s**2 for s in sds) / BINS
    neyman = (sum(sds) / BINS) ** 2
    bits = sum(means) / BINS / source.length / math.log(2)
    print(f"bound estimate {bits:.4f} bits/token")
    print(
        f"per-sample variance of the loss: stratified uniform {stratified:.1f}, Neyman allocation "
        f"{neyman:.1f} (ratio {stratified / neyman:.2f})"
    )


def importance_module(mix: float, rule: str) -> type:
    from ddiff.losses.likelihood import bound_integrand
    from ddiff.training import DiffusionModule
    from ddiff.training.module import _as_batch

    class ImportanceModule(DiffusionModule):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.second_moment = torch.ones(BINS, dtype=torch.float64)
            self.first_moment = torch.zeros(BINS, dtype=torch.float64)

        def _step_loss(self, batch: Any, batch_idx: int) -> Tensor:
            tokens, lengths = _as_batch(batch)
            u, generator = self._training_draws(tokens.shape[0], batch_idx)  # stratified
            proposal = torch.full((BINS,), 1.0 / BINS, dtype=torch.float64)
            if self.global_step >= WARMUP:
                spread = self.second_moment
                if rule == "sd":
                    spread = (spread - self.first_moment**2).clamp(min=1e-12)
                root = spread.sqrt()
                proposal = (1.0 - mix) * root / root.sum() + mix / BINS
            upper = torch.cumsum(proposal, 0)
            b = torch.searchsorted(upper, u, right=True).clamp(max=BINS - 1)
            within = ((u - (upper[b] - proposal[b])) / proposal[b]).clamp(0.0, 1.0 - 1e-9)
            t = ((b + within) / BINS).clamp(max=1.0 - 1e-6)
            weight = 1.0 / (proposal[b] * BINS)
            f = bound_integrand(self.net, self.graph, self.schedule, tokens, t, generator)
            with torch.no_grad():
                counts = torch.bincount(b, minlength=BINS).double()
                seen = counts > 0
                for moment, power in ((self.first_moment, 1), (self.second_moment, 2)):
                    sums = torch.zeros(BINS, dtype=torch.float64).index_add_(
                        0, b, f.double() ** power
                    )
                    moment[seen] = 0.98 * moment[seen] + 0.02 * sums[seen] / counts[seen]
                if self.global_step == WARMUP - 1:  # bins never drawn yet: the mean of the rest
                    unseen = self.second_moment == 1.0
                    for moment in (self.first_moment, self.second_moment):
                        moment[unseen] = moment[~unseen].mean()
            return (weight.to(f.dtype) * f).sum() / lengths.sum()

    return ImportanceModule


def train(args: argparse.Namespace) -> None:
    import ddiff.training

    torch.set_num_threads(1)
    name = (
        f"promoter-absorbing_conv3_cos-steps{args.steps}-is{args.mix:g}"
        + ("-sd" if args.rule == "sd" else "")
        + (f"-lr{args.lr:g}" if args.lr is not None else "")
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
    original = ddiff.training.DiffusionModule
    ddiff.training.DiffusionModule = importance_module(args.mix, args.rule)  # type: ignore[misc]
    try:
        model, record = h.train(
            model,
            train_data,
            steps=args.steps,
            batch_size=64,
            seed=args.seed,
            lr=args.lr,
            precision=args.precision,
        )
    finally:
        ddiff.training.DiffusionModule = original  # type: ignore[misc]
    estimate = h.score(model, heldout, num_t=8, seed=args.seed)
    like = estimate.as_dict()
    write_json(
        path,
        {
            "source": "promoter",
            "model": "absorbing_conv3_cos",
            "time_sampling": f"importance ({args.rule}), mix {args.mix:g}",
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
        f"promoter importance ({args.rule}) mix {args.mix:g}: {like['bits_per_token']:.4f} bits/token, gap "
        f"{like['bits_per_token'] - entropy:+.4f}; {record['train_seconds']:.0f} s training"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variance", type=Path, help="a trained promoter conv3 model's weights")
    p.add_argument("--mix", type=float, default=0.2, help="the uniform share of the proposal")
    p.add_argument(
        "--rule",
        default="rms",
        choices=["rms", "sd"],
        help="proposal in proportion to the root mean square of the integrand per bin (Improved "
        "DDPM's rule) or to its standard deviation (Neyman allocation, for stratified times)",
    )
    p.add_argument("--steps", type=int, default=2300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lr", type=float)
    p.add_argument("--precision", default="32-true", choices=["32-true", "bf16-mixed"])
    p.add_argument("--force", action="store_true")
    args = p.parse_args()
    if args.variance is not None:
        variance(args.variance)
    else:
        if not 0.0 < args.mix <= 1.0:
            p.error(f"--mix must be in (0, 1], got {args.mix}")
        train(args)


if __name__ == "__main__":
    main()
