"""The law of one step of each sampler, against closed forms written from the dense matrices."""

from __future__ import annotations

import pytest
import torch
from scipy import stats

from ddiff import AbsorbingGraph, DenseGraph, Graph, UniformGraph
from ddiff.graphs import hky85
from ddiff.samplers import (
    AnalyticSampler,
    EulerSampler,
    Interval,
    TauLeapingSampler,
    tweedie_probs,
)
from ddiff.schedules import LogLinearSchedule
from ddiff.testing import ExactOracle


def _random_q(s: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q = torch.rand(s, s, generator=g, dtype=torch.float64) * 2
    q.fill_diagonal_(0.0)
    q.diagonal().sub_(q.sum(dim=0))
    return q


GRAPHS: dict[str, Graph] = {
    "uniform": UniformGraph(4),
    "absorbing": AbsorbingGraph(3),
    "hky85": hky85(2.5, (0.1, 0.2, 0.3, 0.4)),
    "dense": DenseGraph(_random_q(4, 1)),
}
graphs = pytest.mark.parametrize("graph_name", list(GRAPHS))
NUM = 200_000


def interval(t: float, s: float, schedule: LogLinearSchedule | None = None) -> Interval:
    schedule = schedule or LogLinearSchedule()
    sigma = schedule.total(torch.tensor([t, s], dtype=torch.float64)).tolist()
    return Interval(t, s, sigma[0], sigma[1], float(schedule.rate(torch.tensor(t))))


def chi_square_p(samples: torch.Tensor, probs: torch.Tensor) -> float:
    counts = torch.bincount(samples.reshape(-1), minlength=probs.numel()).double()
    keep = probs > 0
    assert counts[~keep].sum() == 0, "a state with probability 0 was drawn"
    if int(keep.sum()) == 1:
        return 1.0  # a sure outcome, and it was the only one drawn
    expected = probs[keep] / probs[keep].sum() * counts.sum()
    return float(stats.chisquare(counts[keep].numpy(), expected.numpy()).pvalue)


@graphs
def test_analytic_step_is_the_exact_reverse_transition(graph_name: str) -> None:
    """One position, exact scores: Tweedie gives p(x_s = y | x_t = x) exactly (SEDD)."""
    graph = GRAPHS[graph_name]
    oracle = ExactOracle.random(graph, length=1, seed=2, concentration=1.0)
    sigma_t, sigma_s = 1.3, 0.4
    x = torch.arange(graph.num_states).reshape(-1, 1)  # every state once
    log_score = oracle(x, torch.tensor(sigma_t, dtype=torch.float64))
    probs = tweedie_probs(graph, x, log_score.exp(), sigma_t - sigma_s)[:, 0]
    probs = probs / probs.sum(dim=-1, keepdim=True)
    p_t, p_s = oracle.marginal(sigma_t), oracle.marginal(sigma_s)
    kernel = graph.kernel(torch.tensor([sigma_t - sigma_s], dtype=torch.float64))[0]
    exact = p_s[None, :] * kernel / p_t[:, None]  # [x, y] = p_s(y) P[x, y] / p_t(x)
    torch.testing.assert_close(probs, exact, atol=1e-10, rtol=1e-8)


@graphs
def test_euler_step_law(graph_name: str) -> None:
    graph = GRAPHS[graph_name]
    step = interval(0.6, 0.45)
    q = graph.rate_matrix(torch.float64)
    log_score = torch.randn(graph.num_states, generator=torch.Generator().manual_seed(0))
    for current in range(graph.num_states):
        # delta + dt * sigma(t) * score_y * Q[x, y], clamped and renormalised
        expected = step.dt * step.rate_t * log_score.double().exp() * q[current]
        expected[current] = 0.0
        expected[current] = 1.0 - expected.sum()
        expected = expected.clamp_min(0.0)
        x = torch.full((1, NUM), current)
        sampler = EulerSampler(graph, LogLinearSchedule())
        new = sampler.step(
            x,
            log_score.exp().expand(1, NUM, -1).clone(),
            step,
            torch.Generator().manual_seed(current),
        )
        assert chi_square_p(new, expected) > 1e-4


@graphs
def test_tau_leaping_step_law(graph_name: str) -> None:
    """Jump to y with prob lambda_y e^-Lambda; stay with 1 - Lambda e^-Lambda (rejection)."""
    graph = GRAPHS[graph_name]
    step = interval(0.7, 0.4)  # a long step: two or more jumps are common
    q = graph.rate_matrix(torch.float64)
    log_score = torch.randn(graph.num_states, generator=torch.Generator().manual_seed(1))
    for current in range(graph.num_states):
        lam = step.dt * step.rate_t * log_score.double().exp() * q[current]
        lam[current] = 0.0
        total = lam.sum()
        expected = lam * torch.exp(-total)
        expected[current] = 1.0 - total * torch.exp(-total)
        x = torch.full((1, NUM), current)
        sampler = TauLeapingSampler(graph, LogLinearSchedule())
        new = sampler.step(
            x,
            log_score.exp().expand(1, NUM, -1).clone(),
            step,
            torch.Generator().manual_seed(current),
        )
        assert chi_square_p(new, expected) > 1e-4


def test_tau_leaping_rejects_multiple_jumps() -> None:
    """With huge rates almost every position proposes several jumps: they all stay."""
    graph = UniformGraph(5)
    step = interval(0.9, 0.1)
    x = torch.zeros(1, 1000, dtype=torch.long)
    score = torch.full((1, 1000, 5), 20.0)
    new = TauLeapingSampler(graph, LogLinearSchedule()).step(x, score, step, None)
    assert (new == 0).float().mean() > 0.99


def test_euler_equals_analytic_for_absorbing_with_loglinear() -> None:
    """For absorbing graphs and the log-linear schedule, expm1(delta_sigma) = dt sigma(t) exactly,
    so an Euler step and an analytic step have the same law: same seed, same samples."""
    graph = AbsorbingGraph(3)
    oracle = ExactOracle.random(graph, length=2, seed=0)
    kwargs = {"batch": 5000, "length": 2, "steps": 8}
    a = EulerSampler(graph, LogLinearSchedule()).sample(
        oracle, generator=torch.Generator().manual_seed(0), **kwargs
    )
    b = AnalyticSampler(graph, LogLinearSchedule()).sample(
        oracle, generator=torch.Generator().manual_seed(0), **kwargs
    )
    assert (a == b).all(dim=-1).float().mean() > 0.999
