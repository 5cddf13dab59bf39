"""Guided samplers against the exact conditional law (`ddiff.testing.LabelledOracle`).

With the exact unconditional score and the exact noisy classifier, classifier guidance at
weight 1 is the exact conditional score, and so is classifier-free guidance at weight 1 with the
exact conditional score: every sampler must then draw p(x | c) up to its discretisation error.
Weight 0 is the unconditional law. 20,000 samples of 9 sequences: the Monte Carlo floor of the
total-variation distance is about 0.005-0.01; the label changes the law by 0.65 in TV, so a
guidance that does nothing fails by far.
"""

from __future__ import annotations

import itertools

import pytest
import torch

from ddiff import AbsorbingGraph, Graph, Sampler, UniformGraph
from ddiff.conditioning import Clamp, Condition
from ddiff.guidance import ClassifierFreeGuidance, ClassifierGuidance
from ddiff.schedules import LogLinearSchedule
from ddiff.testing import LabelledOracle
from tests.samplers.cases import GRID_SAMPLERS, SAMPLERS

NUM_SAMPLES = 20_000
LABEL = 1  # p(c) = 0.27; TV(p(x | c), p(x)) = 0.65
GRAPHS: dict[str, Graph] = {"absorbing": AbsorbingGraph(3), "uniform": UniformGraph(3)}
# Enough steps for TV < 0.03 with the exact score (first-order samplers on the uniform graph
# need more; on the absorbing graph with the log-linear schedule Euler is the analytic step).
STEPS = {"absorbing": 32, "uniform": 64}


def oracle_for(graph_name: str) -> LabelledOracle:
    return LabelledOracle.random(GRAPHS[graph_name], length=2, num_labels=2, seed=0)


def sampler_for(name: str, graph_name: str) -> Sampler:
    return SAMPLERS[name](GRAPHS[graph_name], LogLinearSchedule())


def guided(kind: str, oracle: LabelledOracle, weight: float) -> object:
    if kind == "classifier":
        return ClassifierGuidance(
            oracle.unconditional, oracle.classifier(LABEL), weight, graph=oracle.graph
        )
    return ClassifierFreeGuidance(oracle.conditional(LABEL), oracle.unconditional, weight)


def draw(
    sampler: Sampler, score_fn: object, oracle: LabelledOracle, steps: int, **kw: object
) -> torch.Tensor:
    """`NUM_SAMPLES` samples; samplers without a time grid (first hitting) take no steps."""
    g = torch.Generator().manual_seed(0)
    grid = type(sampler) in GRID_SAMPLERS.values()
    return sampler.sample(  # type: ignore[call-overload]
        score_fn, NUM_SAMPLES, oracle.length, steps if grid else None, generator=g, **kw
    )


def test_the_label_changes_the_law() -> None:
    oracle = oracle_for("absorbing")
    target = oracle.conditional(LABEL).data_probs
    assert 0.5 * float((target - oracle.unconditional.data_probs).abs().sum()) > 0.5


@pytest.mark.parametrize("kind", ["classifier", "free"])
@pytest.mark.parametrize("sampler_name", list(SAMPLERS))
def test_weight_one_samples_the_conditional(sampler_name: str, kind: str) -> None:
    oracle = oracle_for("absorbing")
    sampler = sampler_for(sampler_name, "absorbing")
    x = draw(sampler, guided(kind, oracle, 1.0), oracle, STEPS["absorbing"])
    tv = oracle.conditional(LABEL).total_variation(x)
    assert tv < 0.03, f"{sampler_name}, {kind} guidance at weight 1: TV to p(x | c) = {tv:.4f}"


@pytest.mark.parametrize(
    "sampler_name",
    [pytest.param(s, marks=() if s == "analytic" else pytest.mark.slow) for s in GRID_SAMPLERS],
)
def test_classifier_guidance_on_a_uniform_graph(sampler_name: str) -> None:
    """Every position and every neighbour is guided (no frozen state). Slow for the first-order
    samplers, which need 64 steps here (the absorbing tests cover them by default)."""
    oracle = oracle_for("uniform")
    sampler = sampler_for(sampler_name, "uniform")
    x = draw(sampler, guided("classifier", oracle, 1.0), oracle, STEPS["uniform"])
    tv = oracle.conditional(LABEL).total_variation(x)
    assert tv < 0.03, f"{sampler_name}: TV to p(x | c) = {tv:.4f}"


@pytest.mark.parametrize("kind", ["classifier", "free"])
@pytest.mark.parametrize("sampler_name", list(SAMPLERS))
def test_weight_zero_samples_the_unconditional(sampler_name: str, kind: str) -> None:
    oracle = oracle_for("absorbing")
    sampler = sampler_for(sampler_name, "absorbing")
    x = draw(sampler, guided(kind, oracle, 0.0), oracle, STEPS["absorbing"])
    tv = oracle.unconditional.total_variation(x)
    assert tv < 0.03, f"{sampler_name}, {kind} guidance at weight 0: TV to p(x) = {tv:.4f}"


@pytest.mark.parametrize("kind", ["classifier", "free"])
@pytest.mark.parametrize("sampler_name", list(SAMPLERS))
def test_label_probability_rises_with_the_weight(sampler_name: str, kind: str) -> None:
    """E[p(c | x)] over samples at weights 0, 1, 2, 4 (exact classifier): 0.27, 0.87, 0.95, 0.96.

    5,000 samples each: the Monte Carlo error of each mean is below 0.004; the smallest step
    (2 -> 4) is 0.017.
    """
    oracle = oracle_for("absorbing")
    sampler = sampler_for(sampler_name, "absorbing")
    steps = 16 if type(sampler) in GRID_SAMPLERS.values() else None
    rates = []
    for weight in (0.0, 1.0, 2.0, 4.0):
        g = torch.Generator().manual_seed(1)
        x = sampler.sample(guided(kind, oracle, weight), 5_000, 2, steps, generator=g)  # type: ignore[call-overload]
        rates.append(oracle.label_probability(x, LABEL))
    assert all(b > a + 0.01 for a, b in itertools.pairwise(rates)), rates


@pytest.mark.parametrize("sampler_name", ["analytic", "first-hitting"])
@pytest.mark.parametrize("pass_condition", [False, True])
def test_guidance_composes_with_infill_on_an_absorbing_graph(
    sampler_name: str, pass_condition: bool
) -> None:
    """Clamping is exact for absorbing graphs, with guidance too: p(x | c, fixed tokens). The
    first-hitting sampler also hands the guidance the positions it unmasks (`reads_positions`),
    with the condition when `pass_condition` is set."""
    oracle = oracle_for("absorbing")
    condition = Condition.at({0: 2})
    sampler = sampler_for(sampler_name, "absorbing")
    kw = {"condition": condition, "pass_condition": pass_condition}
    for kind in ("classifier", "free"):
        fn = guided(kind, oracle, 1.0)
        if pass_condition:  # the oracle's functions take no condition: drop it on their way
            inner = fn

            def fn(x_t, sigma, *, condition, positions=None, _inner=inner):  # type: ignore[no-untyped-def]
                extra = {} if positions is None else {"positions": positions}
                return _inner(x_t, sigma, **extra)

            fn.reads_positions = getattr(inner, "reads_positions", False)  # type: ignore[attr-defined]
        x = draw(sampler, fn, oracle, 32, **kw)
        assert bool((x[:, 0] == 2).all())
        tv = oracle.conditional(LABEL).conditional(condition).total_variation(x)
        assert tv < 0.03, f"{kind}: TV to p(x | c, x^0 = 2) = {tv:.4f}"


def test_guidance_composes_with_infill_through_pass_condition() -> None:
    """Uniform graph: the score and the classifier must be those of the clamped process; the
    guidance hands the condition to both."""
    oracle = oracle_for("uniform")
    condition = Condition.at({0: 2})
    sampler = sampler_for("analytic", "uniform")

    def score(x_t: torch.Tensor, sigma: torch.Tensor, *, condition: Clamp) -> torch.Tensor:
        return oracle.unconditional.conditional_log_score(x_t, sigma, condition=condition)

    guidance = ClassifierGuidance(score, oracle.classifier(LABEL), 1.0, graph=oracle.graph)
    x = draw(sampler, guidance, oracle, 64, condition=condition, pass_condition=True)
    assert bool((x[:, 0] == 2).all())
    tv = oracle.conditional(LABEL).conditional(condition).total_variation(x)
    assert tv < 0.03, f"TV to p(x | c, x^0 = 2) = {tv:.4f}"
