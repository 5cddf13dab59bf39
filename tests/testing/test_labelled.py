"""LabelledOracle: the exact noisy classifier and conditional laws, checked by independent routes."""

from __future__ import annotations

import pytest
import torch

from ddiff import UniformGraph
from ddiff.conditioning import Clamp, Condition
from ddiff.testing import ExactOracle, LabelledOracle
from ddiff.testing.contracts import tiny_graphs

F64 = torch.float64
GRAPHS = tiny_graphs()
graphs = pytest.mark.parametrize("graph_name", list(GRAPHS))


def oracle_for(graph_name: str) -> LabelledOracle:
    return LabelledOracle.random(GRAPHS[graph_name], length=3, num_labels=3, seed=4)


@graphs
def test_conditional_law_is_bayes(graph_name: str) -> None:
    oracle = oracle_for(graph_name)
    p_x = oracle.unconditional.data_probs.reshape(-1)
    p_c_x = oracle.label_probs.reshape(-1, 3)
    for c in range(3):
        expected = p_x * p_c_x[:, c] / (p_x * p_c_x[:, c]).sum()
        torch.testing.assert_close(oracle.conditional(c).data_probs.reshape(-1), expected)
    torch.testing.assert_close(oracle.label_marginal(), (p_x[:, None] * p_c_x).sum(0))


@graphs
def test_noisy_classifier_is_bayes_over_the_noised_marginals(graph_name: str) -> None:
    """p(c | x_t) = p(c) p_t(x_t | c) / p_t(x_t), from the conditional oracles' marginals: a
    route that never forms p(x_0 | x_t)."""
    oracle = oracle_for(graph_name)
    sigma = torch.tensor([0.05, 0.7, 3.0], dtype=F64)
    every = oracle.unconditional.all_sequences()
    p_t = oracle.unconditional.marginal(sigma)  # [3, S^L]
    reachable = p_t > 1e-300
    for k in range(3):
        x = every[reachable[k]]
        got = oracle.log_classifier(x, sigma[k].expand(x.shape[0])).exp()
        for c in range(3):
            p_t_c = oracle.conditional(c).marginal(sigma[k])[reachable[k]]
            expected = oracle.label_marginal()[c] * p_t_c / p_t[k][reachable[k]]
            torch.testing.assert_close(got[:, c], expected, atol=1e-10, rtol=1e-8)


@graphs
def test_classifier_at_the_ends_of_the_noise(graph_name: str) -> None:
    """Zero noise: p(c | x_0) at data sequences; infinite noise: p(c)."""
    oracle = oracle_for(graph_name)
    x0 = oracle.unconditional.all_sequences(data_only=True)
    clean = oracle.log_classifier(x0, torch.zeros(x0.shape[0], dtype=F64)).exp()
    keep = oracle.unconditional.data_probs.reshape(-1) > 0
    torch.testing.assert_close(clean[keep], oracle.label_probs.reshape(-1, 3)[keep])
    inf = torch.tensor(float("inf"), dtype=F64)
    x1 = oracle.unconditional.all_sequences()[oracle.unconditional.marginal(inf) > 0]  # all MASK
    limit = oracle.log_classifier(x1, inf).exp()
    torch.testing.assert_close(limit, oracle.label_marginal().expand_as(limit))


@graphs
def test_one_hot_input_gives_the_same_answer_and_a_finite_gradient(graph_name: str) -> None:
    oracle = oracle_for(graph_name)
    g = torch.Generator().manual_seed(0)
    x0 = oracle.unconditional.sample_data(32, g)
    sigma = torch.rand(32, generator=g, dtype=F64) * 2 + 0.1
    x_t = oracle.graph.sample_transition(x0, sigma, g)
    one_hot = torch.nn.functional.one_hot(x_t, oracle.graph.num_states).to(F64)
    one_hot.requires_grad_(True)
    out = oracle.classifier(2)(one_hot, sigma)
    torch.testing.assert_close(out.detach(), oracle.classifier(2)(x_t, sigma))
    (grad,) = torch.autograd.grad(out.sum(), one_hot)
    assert bool(torch.isfinite(grad).all())


@graphs
def test_table_and_row_paths_agree(graph_name: str) -> None:
    """Tokens at few noise levels are looked up in a table; at many, computed row by row."""
    oracle = oracle_for(graph_name)
    x = oracle.unconditional.all_sequences()
    p_t = oracle.unconditional.marginal(torch.tensor(0.4, dtype=F64))
    x = x[p_t > 0]
    one_level = oracle.log_classifier(x, torch.full((x.shape[0],), 0.4, dtype=F64))
    levels = torch.full((x.shape[0],), 0.4, dtype=F64)
    levels[0] = 0.5  # two levels over few rows: the row path
    rows = oracle.log_classifier(x, levels)
    torch.testing.assert_close(rows[1:], one_level[1:], atol=1e-12, rtol=0.0)


@graphs
def test_condition_keeps_fixed_positions_clean(graph_name: str) -> None:
    """With a condition, p(c | x_t) is that of the clamped process: Bayes over the marginals of
    the ConditionalOracles of p(x_0) and p(x_0 | c) given the fixed tokens."""
    oracle = oracle_for(graph_name)
    condition = Condition.at({1: 2})
    clamp = condition.resolve(3, oracle.graph.num_tokens)
    sigma = torch.tensor(0.8, dtype=F64)
    base = oracle.unconditional.conditional(condition)
    p_t = base.marginal(sigma)
    x = base.all_sequences()[p_t > 0]
    got = oracle.log_classifier(x, sigma.expand(x.shape[0]), condition=clamp).exp()
    # p(c | x_0^F = f) by enumeration.
    seqs = oracle.unconditional.all_sequences(data_only=True)
    agree = seqs[:, 1] == 2
    joint = oracle.unconditional.data_probs.reshape(-1)[:, None] * oracle.label_probs.reshape(-1, 3)
    p_c_f = joint[agree].sum(0) / joint[agree].sum()
    for c in range(3):
        p_t_c = oracle.conditional(c).conditional(condition).marginal(sigma)[p_t > 0]
        torch.testing.assert_close(
            got[:, c], p_c_f[c] * p_t_c / p_t[p_t > 0], atol=1e-10, rtol=1e-8
        )
    batched = Clamp(clamp.mask.expand(x.shape[0], -1), clamp.tokens.expand(x.shape[0], -1))
    same = oracle.log_classifier(x, sigma.expand(x.shape[0]), condition=batched).exp()
    torch.testing.assert_close(same, got)


def test_label_probability_of_samples() -> None:
    oracle = LabelledOracle(
        UniformGraph(2), torch.tensor([0.5, 0.5]), torch.tensor([[0.9, 0.1], [0.2, 0.8]])
    )
    x = torch.tensor([[0], [1], [1], [1]])
    assert oracle.label_probability(x, 1) == pytest.approx((0.1 + 3 * 0.8) / 4)


def test_random_problems_have_informative_labels() -> None:
    oracle = LabelledOracle.random(GRAPHS["absorbing"], length=2, num_labels=2, seed=0)
    for c in range(2):
        tv = 0.5 * float(
            (oracle.conditional(c).data_probs - oracle.unconditional.data_probs).abs().sum()
        )
        assert tv > 0.2
    assert isinstance(oracle.conditional(0), ExactOracle)


def test_errors_name_the_problem() -> None:
    graph = UniformGraph(2)
    with pytest.raises(ValueError, match=r"label_probs must have shape \[2\] \* 1 \+ \[labels\]"):
        LabelledOracle(graph, torch.tensor([0.5, 0.5]), torch.tensor([0.5, 0.5]))
    with pytest.raises(ValueError, match="each sequence's row summing to 1"):
        LabelledOracle(graph, torch.tensor([0.5, 0.5]), torch.tensor([[0.5, 0.6], [0.5, 0.5]]))
    oracle = LabelledOracle(graph, torch.tensor([0.5, 0.5]), torch.tensor([[1.0, 0.0], [1.0, 0.0]]))
    with pytest.raises(ValueError, match=r"label must be a class index in \[0, 2\)"):
        oracle.classifier(2)
    with pytest.raises(ValueError, match="label 1 has probability 0"):
        oracle.conditional(1)
    with pytest.raises(ValueError, match=r"one-hot x_t must have shape \[batch, 1, 2\]"):
        oracle.log_classifier(torch.zeros(1, 1, 3), 0.5)
