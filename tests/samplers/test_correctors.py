"""Corrector steps keep p_t: one step with the exact score from an exact draw of p_t.

The draws are exact (sampled from the oracle's p_t over all S^L sequences), so the distance
after one corrector step is compared with the Monte Carlo floor (the distance of the draws
themselves) and with a broken corrector that does not keep p_t.
"""

from __future__ import annotations

import math

import pytest
import torch

from ddiff import AbsorbingGraph, Graph, UniformGraph
from ddiff._categorical import sample_categorical
from ddiff.samplers import (
    AnalyticSampler,
    Corrector,
    EulerSampler,
    FirstHittingSampler,
    RateCorrector,
    RemaskingCorrector,
)
from ddiff.samplers.base import _Workspace
from ddiff.schedules import LogLinearSchedule
from ddiff.testing import ExactOracle, contracts
from ddiff.testing.contracts import ToyScore

NUM_SAMPLES = 20_000
GRAPHS = contracts.tiny_graphs()  # uniform, absorbing, dense; 3 data tokens


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def draw_p_t(
    oracle: ExactOracle, sigma: float, num: int, generator: torch.Generator
) -> torch.Tensor:
    p = oracle.marginal(sigma)
    return oracle.all_sequences()[sample_categorical(p.expand(num, -1), generator)]


def distance_to_p_t(oracle: ExactOracle, x: torch.Tensor, sigma: float) -> float:
    counts = torch.bincount(oracle.index(x), minlength=oracle.num_sequences).double()
    return 0.5 * float((counts / counts.sum() - oracle.marginal(sigma)).abs().sum())


def one_corrector_step(
    corrector: Corrector, oracle: ExactOracle, x: torch.Tensor, sigma: float, seed: int
) -> torch.Tensor:
    """The sampler's own corrector step (`Sampler._correct`) with the exact score."""
    sampler = AnalyticSampler(oracle.graph, LogLinearSchedule(), corrector=corrector)
    log_score = oracle(x, torch.full((x.shape[0],), sigma, dtype=torch.float64))
    return sampler._correct(x, log_score, None, _Workspace(), sigma, gen(seed))


# Sizes at which no stay probability is clamped (the random dense graph has exit rates to 2.8).
CORRECTORS = [
    ("uniform", RateCorrector(1.0, one_position=True)),
    ("absorbing", RateCorrector(1.0, one_position=True)),
    ("absorbing", RemaskingCorrector(1.0, one_position=True)),
    ("dense", RateCorrector(0.2, one_position=True)),
]


@pytest.mark.parametrize(("graph_name", "corrector"), CORRECTORS, ids=lambda v: repr(v))
@pytest.mark.parametrize("sigma", [0.3, 1.0, 3.0])
def test_one_corrector_step_keeps_p_t(graph_name: str, corrector: Corrector, sigma: float) -> None:
    oracle = ExactOracle.random(GRAPHS[graph_name], 3, seed=1)
    x = draw_p_t(oracle, sigma, NUM_SAMPLES, gen(0))
    y = one_corrector_step(corrector, oracle, x, sigma, seed=1)
    moved = float((y != x).any(dim=-1).double().mean())
    assert moved > 0.05  # the step does something
    floor = distance_to_p_t(oracle, x, sigma)
    assert distance_to_p_t(oracle, y, sigma) < max(0.02, floor + 0.005)


class ReverseOnly(Corrector):
    """Broken on purpose: the reverse rates without the forward ones (a predictor step that
    does not advance the time)."""

    def step(self, graph, x, score, sigma, generator, categorical_dtype):  # type: ignore[no-untyped-def]
        probs = graph.reverse_rates(x, score, scale=-math.expm1(-sigma), out=score)
        probs.scatter_add_(-1, x.unsqueeze(-1), torch.ones_like(probs[..., :1]))
        return sample_categorical(probs.clamp_min_(0.0), generator, categorical_dtype)


@pytest.mark.parametrize("graph_name", ["uniform", "absorbing", "dense"])
def test_a_reverse_only_step_does_not_keep_p_t(graph_name: str) -> None:
    """The test above has teeth: without the forward rates the step drifts off p_t."""
    oracle = ExactOracle.random(GRAPHS[graph_name], 3, seed=1)
    x = draw_p_t(oracle, 0.3, NUM_SAMPLES, gen(0))
    y = one_corrector_step(ReverseOnly(one_position=True), oracle, x, 0.3, seed=1)
    # measured: 2.8x (uniform), 5.3x (absorbing), 3.9x (dense) the floor
    assert distance_to_p_t(oracle, y, 0.3) > 2 * distance_to_p_t(oracle, x, 0.3)


@pytest.mark.parametrize(
    ("graph_name", "corrector"),
    [("uniform", RateCorrector(1.0)), ("absorbing", RemaskingCorrector(1.0))],
    ids=["uniform-rate", "absorbing-remasking"],
)
def test_parallel_corrector_is_exact_for_one_position(
    graph_name: str, corrector: Corrector
) -> None:
    oracle = ExactOracle.random(GRAPHS[graph_name], 1, seed=1, concentration=1.0)
    x = draw_p_t(oracle, 1.0, NUM_SAMPLES, gen(0))
    y = one_corrector_step(corrector, oracle, x, 1.0, seed=1)
    assert float((y != x).double().mean()) > 0.2
    assert distance_to_p_t(oracle, y, 1.0) < 0.015


def test_parallel_corrector_on_sequences_is_approximate() -> None:
    """Updating every position from the same scores neglects their interaction: at the largest
    remasking step the distance grows well above the floor (measured 0.086 vs 0.014)."""
    oracle = ExactOracle.random(GRAPHS["absorbing"], 3, seed=1)
    x = draw_p_t(oracle, 1.0, NUM_SAMPLES, gen(0))
    y = one_corrector_step(RemaskingCorrector(1.0), oracle, x, 1.0, seed=1)
    assert distance_to_p_t(oracle, y, 1.0) > 0.05


# -- in the sampler ------------------------------------------------------------------------------


@pytest.mark.parametrize("corrector_steps", [1, 3])
def test_nfe_with_corrector_steps(corrector_steps: int) -> None:
    graph = GRAPHS["uniform"]
    score = ToyScore(graph)
    sampler = EulerSampler(
        graph, LogLinearSchedule(), corrector=RateCorrector(), corrector_steps=corrector_steps
    )
    result = sampler.run(score, 4, 5, 6, generator=gen())
    assert result.nfe == len(score.calls) == 6 + corrector_steps * 5 + 1
    assert int(result.tokens.max()) < graph.num_tokens


def test_remasking_moves_unmasked_tokens_and_keeps_fixed_ones() -> None:
    graph = GRAPHS["absorbing"]
    score = ToyScore(graph)
    sampler = EulerSampler(graph, LogLinearSchedule(), corrector=RemaskingCorrector())
    from ddiff.conditioning import Condition

    sampler.run(score, 64, 6, 8, condition=Condition.at({2: 1}), generator=gen())
    seen = torch.stack(score.calls)  # [nfe, B, L]
    masked = seen == graph.mask_token
    assert bool((masked[1:] & ~masked[:-1]).any())  # some token was masked again
    assert bool((seen[:, :, 2] == 1).all())


def test_corrector_arguments() -> None:
    graph: Graph = UniformGraph(3)
    with pytest.raises(TypeError, match="RemaskingCorrector needs an AbsorbingGraph"):
        EulerSampler(graph, LogLinearSchedule(), corrector=RemaskingCorrector())
    with pytest.raises(TypeError, match=r"must be a ddiff\.samplers\.Corrector"):
        EulerSampler(graph, LogLinearSchedule(), corrector="remask")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="corrector_steps must be a positive int"):
        EulerSampler(graph, LogLinearSchedule(), corrector=RateCorrector(), corrector_steps=0)
    with pytest.raises(ValueError, match="size must be a positive number"):
        RateCorrector(0.0)
    with pytest.raises(ValueError, match="strength must be in"):
        RemaskingCorrector(1.5)
    text = repr(
        EulerSampler(AbsorbingGraph(3), LogLinearSchedule(), corrector=RemaskingCorrector())
    )
    assert (
        "corrector=RemaskingCorrector(strength=1.0, one_position=False), corrector_steps=1" in text
    )
    assert FirstHittingSampler  # correctors belong to the grid samplers' loop
