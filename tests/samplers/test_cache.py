"""cache=True: scores reused while a sequence does not change, exact for absorbing graphs."""

from __future__ import annotations

import pytest
import torch

from ddiff import AbsorbingGraph, DenseGraph, UniformGraph
from ddiff.conditioning import Condition
from ddiff.nets import ScaledAbsorbingParameterization, TransformerScoreNet
from ddiff.samplers import AnalyticSampler, EulerSampler, TauLeapingSampler
from ddiff.schedules import LogLinearSchedule
from ddiff.testing import ExactOracle
from ddiff.testing.contracts import ToyScore
from tests.nets.test_contract import perturb

from .cases import GRID_SAMPLERS

GRAPH = AbsorbingGraph(3)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class Counting:
    """A score function that counts the sequences it evaluates."""

    def __init__(self, score_fn: object) -> None:
        self.score_fn = score_fn
        self.batches: list[int] = []

    def __call__(self, x_t: torch.Tensor, sigma: torch.Tensor, **kwargs: object) -> torch.Tensor:
        self.batches.append(x_t.shape[0])
        return self.score_fn(x_t, sigma, **kwargs)  # type: ignore[operator]


@pytest.mark.parametrize("name", list(GRID_SAMPLERS))
def test_exact_oracle_cached_samples_equal_uncached_ones(name: str) -> None:
    oracle = ExactOracle.random(GRAPH, 3, seed=1)
    cls = GRID_SAMPLERS[name]
    plain = cls(GRAPH, LogLinearSchedule()).run(oracle, 1000, 3, 48, generator=gen())
    counting = Counting(oracle)
    cached = cls(GRAPH, LogLinearSchedule(), cache=True).run(counting, 1000, 3, 48, generator=gen())
    assert torch.equal(plain.tokens, cached.tokens)
    assert cached.nfe == len(counting.batches) <= plain.nfe == 49
    # 3 positions over 48 steps: most steps change nothing in a sequence
    assert cached.sequence_nfe == sum(counting.batches) / 1000 < 6
    assert plain.sequence_nfe == 49


def test_time_agnostic_network_cached_samples_equal_uncached_ones() -> None:
    torch.manual_seed(0)
    net = TransformerScoreNet.from_preset(
        "tiny",
        GRAPH.num_states,
        time_conditioning=False,
        parameterization=ScaledAbsorbingParameterization(GRAPH),
    )
    perturb(net)
    net.eval()
    sampler = EulerSampler(GRAPH, LogLinearSchedule(survival=0.0))
    cached_sampler = EulerSampler(GRAPH, LogLinearSchedule(survival=0.0), cache=True)
    plain = sampler.run(net, 8, 12, 128, generator=gen(2))
    cached = cached_sampler.run(net, 8, 12, 128, generator=gen(2))
    assert torch.equal(plain.tokens, cached.tokens)
    assert cached.sequence_nfe <= 13 < plain.sequence_nfe  # at most one evaluation per unmasking


def test_no_change_no_call() -> None:
    counting = Counting(ExactOracle.random(GRAPH, 2, seed=0))
    result = EulerSampler(GRAPH, LogLinearSchedule(), cache=True).run(
        counting, 1, 2, 100, generator=gen()
    )
    # one sequence of 2 positions: a call at the start and after each step that unmasked one
    assert result.nfe == len(counting.batches) <= 3 and result.sequence_nfe == result.nfe


def test_the_condition_is_passed_for_the_evaluated_rows() -> None:
    graph = GRAPH
    score = ToyScore(graph)
    condition = Condition.at({1: 2})
    result = AnalyticSampler(graph, LogLinearSchedule(), cache=True).run(
        score, 8, 4, 32, condition=condition, pass_condition=True, generator=gen()
    )
    assert len(score.conditions) == result.nfe
    for x_t, clamp in zip(score.calls, score.conditions, strict=True):
        assert clamp.mask.shape == x_t.shape and bool(clamp.mask[:, 1].all())
    assert bool((result.tokens[:, 1] == 2).all())


@pytest.mark.parametrize(
    "graph", [UniformGraph(3), DenseGraph(AbsorbingGraph(3).rate_matrix(), num_tokens=3)]
)
def test_cache_needs_an_absorbing_graph(graph: object) -> None:
    with pytest.raises(TypeError, match="exact only for an AbsorbingGraph"):
        TauLeapingSampler(graph, LogLinearSchedule(), cache=True)  # type: ignore[arg-type]


def test_grid_samplers_need_steps() -> None:
    with pytest.raises(ValueError, match="needs steps, the number of grid steps"):
        EulerSampler(GRAPH, LogLinearSchedule()).sample(ToyScore(GRAPH), 2, 3)
