"""Samplers driven by exact scores (ddiff.testing oracles) on tiny problems.

With the exact concrete score the only errors left are the time discretisation (which must
vanish as steps grow) and Monte Carlo noise. 20,000 samples of sequences of length 2-3 over 3
data tokens: the Monte Carlo floor of the total-variation distance is about 0.005-0.01.
"""

from __future__ import annotations

import pytest
import torch
from scipy import stats

from ddiff import Graph
from ddiff.conditioning import Condition
from ddiff.samplers import AnalyticSampler
from ddiff.schedules import LogLinearSchedule
from ddiff.testing import ExactOracle, contracts

from .cases import GRID_SAMPLERS as SAMPLERS

NUM_SAMPLES = 20_000
STEPS = (4, 16, 64, 256)

# Uniform, absorbing and a non-reversible dense graph (the generic matrix_exp path), 3 tokens.
GRAPHS: dict[str, Graph] = contracts.tiny_graphs()
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


@pytest.mark.parametrize(("sampler_name", "graph_name", "length", "steps"), cases())
def test_total_variation_falls_with_steps(
    sampler_name: str, graph_name: str, length: int, steps: tuple[int, ...]
) -> None:
    graph = GRAPHS[graph_name]
    oracle = ExactOracle.random(graph, length, seed=1)
    sampler = SAMPLERS[sampler_name](graph, LogLinearSchedule())
    # Below 0.03 at the most steps; falls, up to Monte Carlo noise 0.01; the discretisation
    # error is visible at 4 steps.
    contracts.check_sampler_exactness(
        sampler, oracle, steps=steps, num_samples=NUM_SAMPLES, tolerance=0.03, noise=0.01
    )


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
    sampler = SAMPLERS[sampler_name](graph, LogLinearSchedule())
    steps = 64 if sampler_name == "analytic" else 256  # the first-order samplers need more
    contracts.check_sampler_infill(
        sampler, oracle, Condition.at({1: 2}), steps=steps, num_samples=NUM_SAMPLES, tolerance=0.03
    )
