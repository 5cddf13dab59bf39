"""Samplers driven by exact scores (ddiff.testing oracles) on tiny problems.

With the exact concrete score the only errors left are the time discretisation (which must
vanish as steps grow) and Monte Carlo noise. 20,000 samples of sequences of length 2-3 over 3
data tokens: the Monte Carlo floor of the total-variation distance is about 0.005-0.01.
"""

from __future__ import annotations

import itertools

import pytest
import torch
from scipy import stats

from ddiff import AbsorbingGraph, DenseGraph, Graph, UniformGraph
from ddiff.conditioning import Condition
from ddiff.samplers import AnalyticSampler, Sampler
from ddiff.schedules import LogLinearSchedule
from ddiff.testing import ExactOracle

from .cases import SAMPLERS

NUM_SAMPLES = 20_000
STEPS = (4, 16, 64, 256)


def _dense_graph() -> DenseGraph:
    g = torch.Generator().manual_seed(3)
    q = torch.rand(3, 3, generator=g, dtype=torch.float64) * 2
    q.fill_diagonal_(0.0)
    q.diagonal().sub_(q.sum(dim=0))
    return DenseGraph(q)  # not reversible: the generic matrix_exp path


GRAPHS: dict[str, Graph] = {
    "uniform": UniformGraph(3),
    "absorbing": AbsorbingGraph(3),
    "dense": _dense_graph(),
}
# One (sampler, graph) pair per sampler runs by default; the rest are slow.
DEFAULT = {("euler", "dense"), ("tau-leaping", "uniform"), ("analytic", "absorbing")}


def cases() -> list[object]:
    quick = [pytest.param(s, g, 2, STEPS[:3], id=f"{s}-{g}-L2-quick") for s, g in sorted(DEFAULT)]
    full = [
        pytest.param(s, g, length, STEPS, marks=pytest.mark.slow, id=f"{s}-{g}-L{length}")
        for length in (2, 3)
        for s in SAMPLERS
        for g in GRAPHS
    ]
    return quick + full


def tv_after(sampler: Sampler, oracle: ExactOracle, steps: int, seed: int = 0, **kwargs) -> float:
    g = torch.Generator().manual_seed(seed)
    x = sampler.sample(oracle, NUM_SAMPLES, oracle.length, steps, generator=g, **kwargs)
    return oracle.total_variation(x)


@pytest.mark.parametrize(("sampler_name", "graph_name", "length", "steps"), cases())
def test_total_variation_falls_with_steps(
    sampler_name: str, graph_name: str, length: int, steps: tuple[int, ...]
) -> None:
    graph = GRAPHS[graph_name]
    oracle = ExactOracle.random(graph, length, seed=1)
    sampler = SAMPLERS[sampler_name](graph, LogLinearSchedule())
    tv = [tv_after(sampler, oracle, n) for n in steps]
    assert tv[-1] < 0.03, tv
    assert tv[0] > tv[-1] + 0.01, tv  # the discretisation error is visible at 4 steps
    for coarse, fine in itertools.pairwise(tv):
        assert fine < coarse + 0.01, tv  # falls, up to Monte Carlo noise


@pytest.mark.parametrize("graph_name", list(GRAPHS))
@pytest.mark.parametrize("steps", [1, 2, 5])
def test_analytic_sampler_is_exact_in_one_dimension(graph_name: str, steps: int) -> None:
    graph = GRAPHS[graph_name]
    oracle = ExactOracle.random(graph, length=1, seed=4, concentration=1.0)
    sampler = AnalyticSampler(graph, LogLinearSchedule())
    x = sampler.sample(oracle, NUM_SAMPLES, 1, steps, generator=torch.Generator().manual_seed(5))
    counts = torch.bincount(x[:, 0], minlength=graph.num_tokens).double()
    expected = oracle.data_probs * NUM_SAMPLES
    # Exact up to the start (the limit instead of p_1: e^-6.9 away) and Monte Carlo error; the
    # threshold is strict because 9 cases run (2M samples show no bias above 5e-4).
    assert stats.chisquare(counts.numpy(), expected.numpy()).pvalue > 1e-4


def infill_cases() -> list[object]:
    return [
        pytest.param(s, g, marks=() if s == "analytic" else pytest.mark.slow, id=f"{s}-{g}")
        for s in SAMPLERS
        for g in GRAPHS
    ]


@pytest.mark.parametrize(("sampler_name", "graph_name"), infill_cases())
def test_infill_samples_the_exact_conditional(sampler_name: str, graph_name: str) -> None:
    """One fixed position; the other two are drawn from p_0(. | fixed).

    Absorbing graphs: clamping with the unconditional exact scores is already exact. Other
    graphs: the score function must be conditional; it receives the condition
    (`pass_condition=True`) and answers with the conditional oracle's scores.
    """
    graph = GRAPHS[graph_name]
    oracle = ExactOracle.random(graph, 3, seed=1)
    condition = Condition.at({1: 2})
    target = oracle.conditional(condition)
    sampler = SAMPLERS[sampler_name](graph, LogLinearSchedule())
    steps = 64 if sampler_name == "analytic" else 256  # the first-order samplers need more
    g = torch.Generator().manual_seed(0)
    if isinstance(graph, AbsorbingGraph):
        x = sampler.sample(oracle, NUM_SAMPLES, 3, steps, condition=condition, generator=g)
    else:
        x = sampler.sample(
            oracle.conditional_log_score,
            NUM_SAMPLES,
            3,
            steps,
            condition=condition,
            pass_condition=True,
            generator=g,
        )
    assert bool((x[:, 1] == 2).all())
    assert target.total_variation(x) < 0.03
