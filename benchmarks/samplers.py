"""Sampler benchmarks (not tests): per-step overhead, and sample quality against exact oracles.

    .venv/bin/python benchmarks/samplers.py            # everything (about 15-30 min on 2 cores)
    .venv/bin/python benchmarks/samplers.py --only tv  # one table: overhead, tv or infill

Prints markdown tables:

1. **Overhead**: for batch 64 and length 256, a 4-block, 256-wide `TransformerScoreNet` (the
   default size; a small transformer) as the score function, the wall time per step spent
   outside the score function, as a fraction of the whole run (target <= 3%), for every sampler
   and graph at the vocabulary sizes of DNA (4), proteins (20) and a small text vocabulary.
2. **TV vs steps**: total-variation distance between 20,000 samples and the data distribution
   of the exact-oracle problems of `tests/samplers/test_exactness.py` (3 data tokens, L = 3).
3. **Infill**: position 1 fixed; TV to the exact conditional when the score function is the
   unconditional oracle (plain clamping) and when it is the conditional oracle.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterator

import torch
from _harness import machine  # benchmarks/ is the script's directory, hence on sys.path
from torch import Tensor

from ddiff import AbsorbingGraph, DenseGraph, Graph, UniformGraph
from ddiff.conditioning import Condition
from ddiff.graphs import hky85, protein_graph
from ddiff.nets import (
    LogScoreParameterization,
    ScaledAbsorbingParameterization,
    TransformerScoreNet,
)
from ddiff.samplers import AnalyticSampler, EulerSampler, Sampler, TauLeapingSampler
from ddiff.schedules import LogLinearSchedule
from ddiff.testing import ExactOracle

SAMPLERS: dict[str, type[Sampler]] = {
    "euler": EulerSampler,
    "tau-leaping": TauLeapingSampler,
    "analytic": AnalyticSampler,
}


# Wall time by default; `--cpu-time` (with `--threads 1`) uses the main thread's CPU time, which
# does not count the time the process waits for a core on a shared machine.
CLOCK: Callable[[], float] = time.perf_counter


class TimedScore:
    """Wraps a score function and records when each call starts and ends."""

    def __init__(self, fn: Callable[[Tensor, Tensor], Tensor]) -> None:
        self.fn = fn
        self.calls: list[tuple[float, float]] = []

    def __call__(self, x_t: Tensor, sigma: Tensor) -> Tensor:
        start = CLOCK()
        out = self.fn(x_t, sigma)
        self.calls.append((start, CLOCK()))
        return out


def stand_in_net(graph: Graph, seed: int = 0) -> TransformerScoreNet:
    """The default TransformerScoreNet (4 blocks, width 256, 4 heads), head randomised.

    The head is zero-initialised in the library (raw outputs 0); small random weights make the
    scores vary across tokens, as a trained network's do.
    """
    torch.manual_seed(seed)
    param = (
        ScaledAbsorbingParameterization(graph)
        if isinstance(graph, AbsorbingGraph)
        else LogScoreParameterization()
    )
    net = TransformerScoreNet(graph.num_states, parameterization=param).eval()
    torch.nn.init.normal_(net.trunk.head.weight, std=0.5)
    return net


def overhead_configs() -> list[tuple[str, Graph]]:
    return [
        ("uniform", UniformGraph(4)),
        ("absorbing", AbsorbingGraph(4)),
        ("dense (HKY85)", hky85(2.0, (0.3, 0.2, 0.2, 0.3))),
        ("uniform", UniformGraph(20)),
        ("absorbing", AbsorbingGraph(20)),
        ("dense (protein)", protein_graph()),
        ("uniform", UniformGraph(1024)),
        ("absorbing", AbsorbingGraph(1024)),
        ("uniform", UniformGraph(8192)),
        ("absorbing", AbsorbingGraph(8192)),
    ]


def overhead_table(steps: int, repeats: int, batch: int = 64, length: int = 256) -> Iterator[str]:
    yield "| graph | S | sampler | net ms/step | outside ms/step | outside / total |"
    yield "|---|---:|---|---:|---:|---:|"
    schedule = LogLinearSchedule()
    for graph_name, graph in overhead_configs():
        net = stand_in_net(graph)
        for sampler_name, cls in SAMPLERS.items():
            sampler = cls(graph, schedule)
            # Same seed every repeat: the same trajectory, so the same work at every step.
            # Per step, the minimum over repeats is the least disturbed time on a shared
            # machine; outside time is everything between two score calls (and before the first
            # and after the last one).
            net_runs, out_runs = [], []
            sampler.run(net, batch, length, 1)  # warm up
            for _ in range(repeats):
                timed = TimedScore(net)
                start = CLOCK()
                sampler.run(timed, batch, length, steps, generator=torch.Generator().manual_seed(0))
                end = CLOCK()
                edges = [start, *(t for call in timed.calls for t in call), end]
                net_runs.append([b - a for a, b in timed.calls])
                out_runs.append([edges[k + 1] - edges[k] for k in range(0, len(edges), 2)])
            net_total = sum(map(min, zip(*net_runs, strict=True)))
            out_total = sum(map(min, zip(*out_runs, strict=True)))
            nfe = len(net_runs[0])
            yield (
                f"| {graph_name} | {graph.num_states} | {sampler_name} | "
                f"{1e3 * net_total / nfe:.0f} | {1e3 * out_total / nfe:.1f} | "
                f"{100 * out_total / (net_total + out_total):.1f}% |"
            )


def _dense_graph() -> DenseGraph:
    g = torch.Generator().manual_seed(3)
    q = torch.rand(3, 3, generator=g, dtype=torch.float64) * 2
    q.fill_diagonal_(0.0)
    q.diagonal().sub_(q.sum(dim=0))
    return DenseGraph(q)


def oracle_graphs() -> dict[str, Graph]:
    return {"uniform": UniformGraph(3), "absorbing": AbsorbingGraph(3), "dense": _dense_graph()}


def tv_table(steps_list: tuple[int, ...], num: int = 20_000, length: int = 3) -> Iterator[str]:
    yield "| sampler | graph | " + " | ".join(f"{n} steps" for n in steps_list) + " |"
    yield "|---|---|" + "---:|" * len(steps_list)
    for sampler_name, cls in SAMPLERS.items():
        for graph_name, graph in oracle_graphs().items():
            oracle = ExactOracle.random(graph, length, seed=1)
            sampler = cls(graph, LogLinearSchedule())
            tvs = []
            for steps in steps_list:
                g = torch.Generator().manual_seed(0)
                tvs.append(
                    oracle.total_variation(sampler.sample(oracle, num, length, steps, generator=g))
                )
            yield (
                f"| {sampler_name} | {graph_name} | " + " | ".join(f"{tv:.4f}" for tv in tvs) + " |"
            )
    # The Monte Carlo floor: exact draws from p_0 (the same p_0 for every graph).
    oracle = ExactOracle.random(UniformGraph(3), length, seed=1)
    floor = [
        oracle.total_variation(oracle.sample_data(num, torch.Generator().manual_seed(k)))
        for k in range(len(steps_list))
    ]
    yield "| exact draws from p_0 | (any) | " + " | ".join(f"{tv:.4f}" for tv in floor) + " |"


def infill_table(steps: int, num: int = 20_000, length: int = 3) -> Iterator[str]:
    yield "| sampler | graph | clamp, unconditional scores | clamp, conditional scores |"
    yield "|---|---|---:|---:|"
    condition = Condition.at({1: 2})
    for sampler_name, cls in SAMPLERS.items():
        for graph_name, graph in oracle_graphs().items():
            oracle = ExactOracle.random(graph, length, seed=1)
            target = oracle.conditional(condition)
            sampler = cls(graph, LogLinearSchedule())
            plain = sampler.sample(
                oracle,
                num,
                length,
                steps,
                condition=condition,
                generator=torch.Generator().manual_seed(0),
            )
            exact = sampler.sample(
                oracle.conditional_log_score,
                num,
                length,
                steps,
                condition=condition,
                pass_condition=True,
                generator=torch.Generator().manual_seed(0),
            )
            yield (
                f"| {sampler_name} | {graph_name} | {target.total_variation(plain):.4f} | "
                f"{target.total_variation(exact):.4f} |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=["overhead", "tv", "infill"], default=None)
    parser.add_argument("--steps", type=int, default=8, help="steps per overhead run")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per overhead row")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--cpu-time", action="store_true", help="time with CPU time (needs --threads 1)"
    )
    args = parser.parse_args()
    if args.cpu_time and args.threads != 1:
        parser.error("--cpu-time measures one thread: add --threads 1")
    torch.set_num_threads(args.threads)
    global CLOCK
    CLOCK = time.thread_time if args.cpu_time else time.perf_counter
    print(f"{machine()}, {'CPU time' if args.cpu_time else 'wall time'}\n")
    sections: list[tuple[str, Iterator[str]]] = []
    if args.only in (None, "overhead"):
        title = f"Time outside the score function (batch 64, length 256, {args.steps} steps)"
        sections.append((title, overhead_table(args.steps, args.repeats)))
    if args.only in (None, "tv"):
        title = "Total variation vs steps (exact oracle, 20,000 samples, L = 3, N = 3)"
        sections.append((title, tv_table((4, 16, 64, 256))))
    if args.only in (None, "infill"):
        title = "Infill: TV to the exact conditional (position 1 fixed, 256 steps)"
        sections.append((title, infill_table(256)))
    for title, lines in sections:
        print(f"## {title}\n")
        for line in lines:
            print(line, flush=True)
        print()


if __name__ == "__main__":
    main()
