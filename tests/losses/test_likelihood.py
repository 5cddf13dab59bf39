"""The likelihood bound: exact with exact scores (quadrature), and its Monte Carlo estimator."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from ddiff import AbsorbingGraph, DenseGraph, Graph, UniformGraph
from ddiff.losses import denoising_score_entropy, likelihood_bound, prior_kl, sample_times
from ddiff.schedules import LogLinearSchedule
from ddiff.testing import ExactOracle

generic_prior_kl = prior_kl.dispatch(Graph)


def _hky_like() -> DenseGraph:
    pi = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)
    q = pi[:, None].expand(4, 4).clone()  # Q[j, i] = pi_j (Felsenstein 81)
    q.fill_diagonal_(0.0)
    q.diagonal().sub_(q.sum(0))
    return DenseGraph(q)


# graph, total noise at t = 1 (the limit: exact for absorbing, e^-25 away for the others)
CASES = {
    "uniform": (UniformGraph(3), 25.0),
    "absorbing": (AbsorbingGraph(3), math.inf),
    "dense": (_hky_like(), 25.0),
}


def diffusion_term_by_quadrature(
    oracle: ExactOracle, score_fn, total_max: float, nodes: int = 160
) -> torch.Tensor:
    """int_0^total_max E_{x_t | x_0} [sum_i DSE] d sigma, per data sequence, exact in x_t.

    Gauss-Legendre in u = log sigma over [log 1e-9, log min(total_max, 60)]; the pieces left out
    are below 1e-8 nats.
    """
    graph = oracle.graph
    x_0_all = oracle.all_sequences(data_only=True)
    x_t_all = oracle.all_sequences()
    n0, m = x_0_all.shape[0], x_t_all.shape[0]
    x_0 = x_0_all.repeat_interleave(m, 0)
    x_t = x_t_all.repeat(n0, 1)
    lo, hi = math.log(1e-9), math.log(min(total_max, 60.0))
    u, w = np.polynomial.legendre.leggauss(nodes)
    result = torch.zeros(n0, dtype=torch.float64)
    for uk, wk in zip(u, w, strict=True):
        sigma = math.exp(lo + (hi - lo) * (uk + 1) / 2)
        sig = torch.full((x_0.shape[0],), sigma, dtype=torch.float64)
        p_t = graph.transition(x_0, sig).gather(-1, x_t.unsqueeze(-1)).squeeze(-1).prod(-1)
        keep = p_t > 0
        loss = torch.zeros_like(p_t)
        ls = score_fn(x_t[keep], sig[keep])
        loss[keep] = p_t[keep] * denoising_score_entropy(
            graph, ls, x_t[keep], x_0[keep], sig[keep]
        ).sum(-1)
        result += wk * (hi - lo) / 2 * sigma * loss.reshape(n0, m).sum(-1)
    return result


@pytest.mark.parametrize("name", list(CASES))
def test_bound_is_tight_with_exact_scores(name: str) -> None:
    """With exact scores and a schedule reaching the limit the bound equals -log p_0(x_0)."""
    graph, total_max = CASES[name]
    oracle = ExactOracle.random(graph, length=2, seed=3)
    x_0_all = oracle.all_sequences(data_only=True)
    prior = prior_kl(graph, x_0_all, torch.tensor(total_max, dtype=torch.float64)).sum(-1)
    bound = diffusion_term_by_quadrature(oracle, oracle, total_max) + prior
    nll = oracle.nll(x_0_all)
    support = oracle.data_probs.reshape(-1) > 1e-12
    assert (bound[support] >= nll[support] - 1e-5).all()
    torch.testing.assert_close(bound[support], nll[support], atol=1e-4, rtol=1e-4)
    expected = float((oracle.data_probs.reshape(-1) * bound).sum())
    assert abs(expected - oracle.entropy()) < 0.01 * oracle.entropy()


@pytest.mark.parametrize("name", ["uniform", "absorbing"])
def test_bound_with_wrong_scores_is_strictly_larger(name: str) -> None:
    graph, total_max = CASES[name]
    oracle = ExactOracle.random(graph, length=2, seed=3)
    other = ExactOracle.random(graph, length=2, seed=4)
    x_0_all = oracle.all_sequences(data_only=True)
    prior = prior_kl(graph, x_0_all, torch.tensor(total_max, dtype=torch.float64)).sum(-1)
    bound = diffusion_term_by_quadrature(oracle, other, total_max) + prior
    # The model is `other`, so the bound holds against other's NLL, and on average exceeds H.
    assert (bound >= other.nll(x_0_all) - 1e-5).all()
    expected = float((oracle.data_probs.reshape(-1) * bound).sum())
    assert expected > oracle.entropy() + 0.05


@pytest.mark.parametrize("name", list(CASES))
def test_monte_carlo_bound_agrees_with_quadrature(name: str) -> None:
    graph, total_max = CASES[name]
    schedule = LogLinearSchedule(survival=0.0 if math.isinf(total_max) else math.exp(-total_max))
    oracle = ExactOracle.random(graph, length=2, seed=5)
    x_0_all = oracle.all_sequences(data_only=True)
    support = oracle.data_probs.reshape(-1) > 1e-6
    x_0 = x_0_all[support]
    est = likelihood_bound(
        oracle,
        graph,
        schedule,
        x_0,
        num_t=256,
        method="stratified",
        generator=torch.Generator().manual_seed(0),
    )
    exact = oracle.nll(x_0)
    z = (est.nats - exact) / est.stderr
    assert z.abs().max() < 4.5, z
    assert est.num_tokens.tolist() == [2] * x_0.shape[0]
    assert est.bits_per_token == pytest.approx(
        float(est.nats.sum()) / (2 * x_0.shape[0]) / math.log(2)
    )


def test_bound_estimate_mean_matches_entropy() -> None:
    """Averaged over data drawn from p_0, the estimate is close to the exact entropy."""
    graph = AbsorbingGraph(4)
    oracle = ExactOracle.random(graph, length=3, seed=11)
    gen = torch.Generator().manual_seed(2)
    x_0 = oracle.sample_data(3000, gen)
    est = likelihood_bound(
        oracle,
        graph,
        LogLinearSchedule(survival=0.0),
        x_0,
        num_t=2,
        method="antithetic",
        generator=gen,
    )
    entropy_bits = oracle.entropy() / math.log(2) / 3
    # sampling error of the data average plus Monte Carlo error in t
    data_se = float(oracle.nll(x_0).std()) / math.sqrt(3000) / math.log(2) / 3
    se = math.hypot(data_se, est.stderr_bits_per_token)
    assert abs(est.bits_per_token - entropy_bits) < 4 * se + 1e-3


def test_prior_kl_fast_paths() -> None:
    x_0 = torch.tensor([[0, 2, 1]])
    for sigma in [0.01, 1.0, 7.0, 30.0]:
        sig = torch.tensor(sigma, dtype=torch.float64)
        graph = UniformGraph(5)
        torch.testing.assert_close(prior_kl(graph, x_0, sig), generic_prior_kl(graph, x_0, sig))
        absorbing = AbsorbingGraph(5)
        assert torch.isinf(prior_kl(absorbing, x_0, sig)).all()
        assert torch.isinf(generic_prior_kl(absorbing, x_0, sig)).all()
    assert (prior_kl(AbsorbingGraph(5), x_0, torch.tensor(math.inf)) == 0).all()
    assert (generic_prior_kl(AbsorbingGraph(5), x_0, torch.tensor(math.inf)) == 0).all()
    assert float(prior_kl(UniformGraph(5), x_0, torch.tensor(40.0)).max()) < 1e-15


@pytest.mark.parametrize("method", ["uniform", "stratified", "antithetic"])
def test_sample_times_are_uniform(method: str) -> None:
    t = sample_times((500, 8), method, torch.Generator().manual_seed(0))
    assert t.dtype == torch.float64 and t.shape == (500, 8)
    assert float(t.min()) >= 0.0 and float(t.max()) < 1.0
    assert stats.kstest(t.reshape(-1).numpy(), "uniform").pvalue > 1e-3
    if method == "stratified":
        k = torch.floor(t * 8)
        assert (k == torch.arange(8.0, dtype=torch.float64)).all()
    if method == "antithetic":
        torch.testing.assert_close(t[:, :4] + t[:, 4:], torch.ones(500, 4, dtype=torch.float64))


def test_argument_errors() -> None:
    with pytest.raises(ValueError, match="even"):
        sample_times((2, 3), "antithetic")
    with pytest.raises(ValueError, match="unknown time sampling"):
        sample_times((2, 3), "sobol")  # type: ignore[arg-type]
    graph = AbsorbingGraph(2)
    oracle = ExactOracle.random(graph, length=2)
    with pytest.raises(ValueError, match=r"shape \[batch, length\]"):
        likelihood_bound(oracle, graph, LogLinearSchedule(), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="x_0 holds token 2"):
        likelihood_bound(oracle, graph, LogLinearSchedule(), torch.full((1, 2), 2))
