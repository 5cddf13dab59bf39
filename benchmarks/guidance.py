"""Guidance benchmarks (not tests): exactness per sampler, and the first-order mode's cost and error.

    .venv/bin/python benchmarks/guidance.py                 # everything (a few minutes on 2 cores)
    .venv/bin/python benchmarks/guidance.py --only exact    # one table: exact, weights, first-order

Prints markdown tables:

1. **exact**: with the exact unconditional score and the exact noisy classifier of a
   `ddiff.testing.LabelledOracle` (absorbing graph, 3 data tokens, L = 2, label 1 with
   p(c) = 0.27), the total-variation distance of 20,000 samples to p(x | c) under classifier
   guidance and classifier-free guidance at weight 1, and to p(x) at weight 0, per sampler.
2. **weights**: E[p(c | x)] of the samples (exact classifier) and TV to p(x | c) at weights
   0, 0.5, 1, 2, 4: classifier guidance (= classifier-free guidance with exact ingredients),
   and classifier-free guidance renormalised over the data tokens (`graph=`).
3. **first-order**: (a) on exact oracles (L = 4, 3 data tokens): the mean absolute error of the
   first-order log-ratio against the exact one at the entries samplers use, the fraction with
   the same sign, and the TV to p(x | c) at weight 1 with each mode; (b) a small
   `NoisyClassifierNet` trained on the absorbing problem (600 steps): TV to p(x | c) with each
   mode; (c) cost, for DNA-sized inputs (absorbing graph, S = 5, L = 128, batch 16, two thirds
   masked, a width-64, 2-block classifier): wall time of one guided call in each mode.
"""

from __future__ import annotations

import argparse
import time

import torch
from _harness import machine  # benchmarks/ is the script's directory, hence on sys.path

from ddiff import AbsorbingGraph, Graph, UniformGraph
from ddiff.guidance import ClassifierFreeGuidance, ClassifierGuidance, select_label
from ddiff.nets import NoisyClassifierNet
from ddiff.samplers import AnalyticSampler, EulerSampler, FirstHittingSampler, TauLeapingSampler
from ddiff.schedules import LogLinearSchedule
from ddiff.testing import LabelledOracle

LABEL = 1
NUM = 20_000


def samplers(graph: Graph) -> dict[str, tuple[object, int | None]]:
    """name -> (sampler, steps); the first-hitting sampler takes no steps."""
    out: dict[str, tuple[object, int | None]] = {
        "euler": (EulerSampler(graph, LogLinearSchedule()), 32),
        "tau-leaping": (TauLeapingSampler(graph, LogLinearSchedule()), 32),
        "analytic": (AnalyticSampler(graph, LogLinearSchedule()), 32),
    }
    if isinstance(graph, AbsorbingGraph):
        out["first-hitting"] = (FirstHittingSampler(graph, LogLinearSchedule()), None)
    return out


def draw(sampler: object, score_fn: object, steps: int | None, num: int = NUM) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return sampler.sample(score_fn, num, 2, steps, generator=g)  # type: ignore[attr-defined]


def exact_table() -> None:
    graph = AbsorbingGraph(3)
    oracle = LabelledOracle.random(graph, length=2, num_labels=2, seed=0)
    cond, uncond = oracle.conditional(LABEL), oracle.unconditional
    print(
        "| sampler | classifier, w=1: TV to p(x\\|c) | free, w=1: TV to p(x\\|c) | w=0: TV to p(x) |"
    )
    print("|---|---|---|---|")
    for name, (sampler, steps) in samplers(graph).items():
        cls = ClassifierGuidance(uncond, oracle.classifier(LABEL), 1.0, graph=graph)
        free = ClassifierFreeGuidance(cond, uncond, 1.0)
        zero = ClassifierGuidance(uncond, oracle.classifier(LABEL), 0.0, graph=graph)
        tvs = (
            cond.total_variation(draw(sampler, cls, steps)),
            cond.total_variation(draw(sampler, free, steps)),
            uncond.total_variation(draw(sampler, zero, steps)),
        )
        print(f"| {name} | " + " | ".join(f"{tv:.4f}" for tv in tvs) + " |")
    print(
        f"\nTV(p(x | c), p(x)) = {0.5 * float((cond.data_probs - uncond.data_probs).abs().sum()):.3f}"
    )


def weights_table() -> None:
    graph = AbsorbingGraph(3)
    oracle = LabelledOracle.random(graph, length=2, num_labels=2, seed=0)
    cond, uncond = oracle.conditional(LABEL), oracle.unconditional
    sampler, steps = samplers(graph)["analytic"]
    print(
        "| weight | classifier: E p(c\\|x) | classifier: TV to p(x\\|c) | free + renormalised: E p(c\\|x) | free + renormalised: TV to p(x\\|c) |"
    )
    print("|---|---|---|---|---|")
    for w in (0.0, 0.5, 1.0, 2.0, 4.0):
        a = draw(
            sampler, ClassifierGuidance(uncond, oracle.classifier(LABEL), w, graph=graph), steps
        )
        b = draw(sampler, ClassifierFreeGuidance(cond, uncond, w, graph=graph), steps)
        row = (
            oracle.label_probability(a, LABEL),
            cond.total_variation(a),
            oracle.label_probability(b, LABEL),
            cond.total_variation(b),
        )
        print(f"| {w:g} | " + " | ".join(f"{v:.4f}" for v in row) + " |")
    exact = float((oracle.label_probs.reshape(-1, 2)[:, LABEL] * cond.data_probs.reshape(-1)).sum())
    print(f"\nE p(c | x) under p(x | c) itself: {exact:.4f}")


def first_order_table() -> None:
    print(
        "| graph | mean abs error of the log-ratio | same sign | TV to p(x\\|c), exact | TV to p(x\\|c), first order |"
    )
    print("|---|---|---|---|---|")
    for graph in (AbsorbingGraph(3), UniformGraph(3)):
        oracle = LabelledOracle.random(graph, length=4, num_labels=2, seed=0)
        uncond, cond = oracle.unconditional, oracle.conditional(LABEL)
        exact = ClassifierGuidance(uncond, oracle.classifier(LABEL), 1.0, graph=graph)
        first = ClassifierGuidance(
            uncond, oracle.classifier(LABEL), 1.0, graph=graph, mode="first_order"
        )
        g = torch.Generator().manual_seed(0)
        x0 = uncond.sample_data(2000, g)
        sigma = LogLinearSchedule().total(torch.rand(2000, generator=g, dtype=torch.float64))
        x_t = graph.sample_transition(x0, sigma, g)
        e = exact.log_ratio(x_t, sigma, graph.num_states)
        f = first.log_ratio_first_order(x_t, sigma, graph.num_states).to(e.dtype)
        moves = ~graph.frozen_states()[x_t]
        used = moves[..., None] & (torch.arange(graph.num_states) != x_t[..., None])
        used &= torch.isfinite(e)
        err = float((e - f)[used].abs().mean())
        sign = float((torch.sign(e[used]) == torch.sign(f[used])).double().mean())
        sampler = AnalyticSampler(graph, LogLinearSchedule())
        tv = []
        for m in (exact, first):
            try:
                x = sampler.sample(m, NUM, 4, 64, generator=torch.Generator().manual_seed(0))
                tv.append(f"{cond.total_variation(x):.4f}")
            except ValueError as err_:  # overflowing scores near sigma = 0 (see the docs)
                tv.append(f"fails ({str(err_)[:40]}...)")
        print(f"| {type(graph).__name__} | {err:.3f} | {sign:.3f} | {tv[0]} | {tv[1]} |")
    print(
        f"\nTV(p(x | c), p(x)) on these problems: {[round(0.5 * float((LabelledOracle.random(g, 4, 2, seed=0).conditional(LABEL).data_probs - LabelledOracle.random(g, 4, 2, seed=0).unconditional.data_probs).abs().sum()), 3) for g in (AbsorbingGraph(3), UniformGraph(3))]}"
    )

    # (b) A trained classifier on the absorbing problem: both modes against p(x | c).
    graph = AbsorbingGraph(3)
    oracle = LabelledOracle.random(graph, length=4, num_labels=2, seed=0)
    net = train_classifier(oracle)
    classifier = select_label(net, LABEL)
    uncond, cond = oracle.unconditional, oracle.conditional(LABEL)
    sampler = AnalyticSampler(graph, LogLinearSchedule())
    print("\n| trained classifier (absorbing, L = 4), weight 1 | TV to p(x\\|c) | E p(c\\|x) |")
    print("|---|---|---|")
    for mode in ("exact", "first_order"):
        guided = ClassifierGuidance(uncond, classifier, 1.0, graph=graph, mode=mode)  # type: ignore[arg-type]
        with torch.no_grad():
            x = sampler.sample(guided, NUM, 4, 64, generator=torch.Generator().manual_seed(0))
        print(
            f"| {mode} | {cond.total_variation(x):.4f} | {oracle.label_probability(x, LABEL):.4f} |"
        )
    exact_classifier = ClassifierGuidance(uncond, oracle.classifier(LABEL), 1.0, graph=graph)
    x = sampler.sample(exact_classifier, NUM, 4, 64, generator=torch.Generator().manual_seed(0))
    print(
        f"| exact classifier (reference) | {cond.total_variation(x):.4f} | {oracle.label_probability(x, LABEL):.4f} |"
    )
    print(
        f"| no guidance | {cond.total_variation(uncond.sample_data(NUM, torch.Generator().manual_seed(0))):.4f} | {oracle.label_probability(uncond.sample_data(NUM, torch.Generator().manual_seed(0)), LABEL):.4f} |"
    )

    # (c) Cost on a network, DNA-sized.
    graph = AbsorbingGraph(4)
    torch.manual_seed(0)
    net = NoisyClassifierNet(graph.num_states, 2, dim=64, depth=2, heads=2, cond_dim=64).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    classifier = select_label(net, 1)
    zero = lambda x, s: torch.zeros(*x.shape, graph.num_states)  # noqa: E731
    x_t = torch.full((16, 128), graph.mask_token)
    x_t[:, ::3] = torch.randint(0, 4, (16, 43), generator=torch.Generator().manual_seed(1))
    sigma = torch.full((16,), 1.0, dtype=torch.float64)
    masked = int((x_t == graph.mask_token).sum(dim=1)[0])

    def best_of_3(fn) -> float:  # type: ignore[no-untyped-def]
        fn()  # warm up
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return min(times)

    with torch.no_grad():
        forward = best_of_3(lambda: net(x_t, sigma))
    print(
        f"\n| mode (batch 16, L = 128, S = 5, {masked} masked positions) | classifier inputs per call | seconds per guided call | in classifier forwards of the batch |"
    )
    print("|---|---|---|---|")
    for mode in ("exact", "first_order"):
        guided = ClassifierGuidance(zero, classifier, 1.0, graph=graph, mode=mode, max_batch=4096)  # type: ignore[arg-type]
        with torch.no_grad():
            seconds = best_of_3(lambda g=guided: g(x_t, sigma))
        inputs = 16 * masked * 4 + 16 if mode == "exact" else 16
        print(f"| {mode} | {inputs:,} | {seconds:.3f} | {seconds / forward:.1f} |")
    print(f"\none forward pass of the batch: {forward:.4f} s")


def train_classifier(oracle: LabelledOracle, steps: int = 600) -> NoisyClassifierNet:
    """A small NoisyClassifierNet trained on (x_0, c) ~ p(x_0) p(c | x_0) noised by the oracle's
    graph and the log-linear schedule (the loss of ddiff.training.ClassifierModule)."""
    from ddiff.training import ClassifierModule, OptimSettings, TokenBatch

    g = torch.Generator().manual_seed(0)
    x0 = oracle.unconditional.sample_data(8192, g)
    p_c = torch.exp(oracle.log_classifier(x0, torch.zeros(8192, dtype=torch.float64)))
    c = torch.multinomial(p_c, 1, generator=g)[:, 0]
    torch.manual_seed(0)
    net = NoisyClassifierNet(oracle.graph.num_states, 2, dim=32, depth=2, heads=2, cond_dim=32)
    module = ClassifierModule(oracle.graph, LogLinearSchedule(), net, OptimSettings(ema_decay=None))
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3)
    length = oracle.length
    for _ in range(steps):
        rows = torch.randint(0, 8192, (256,), generator=g)
        batch = TokenBatch(x0[rows], torch.full((256,), length), c[rows])
        loss = module.loss(batch, torch.rand(256, generator=g), g)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=["exact", "weights", "first-order"])
    args = parser.parse_args()
    print(machine())
    tables = {"exact": exact_table, "weights": weights_table, "first-order": first_order_table}
    for name, table in tables.items():
        if args.only in (None, name):
            print(f"\n## {name}\n")
            table()


if __name__ == "__main__":
    main()
