"""ConditionalOracle: the exact scores of p_0 given fixed tokens, fixed positions kept clean."""

from __future__ import annotations

import itertools

import pytest
import torch

from ddiff import AbsorbingGraph, DenseGraph, Graph, UniformGraph
from ddiff.conditioning import Clamp, Condition
from ddiff.testing import ConditionalOracle, ExactOracle


def _dense() -> DenseGraph:
    g = torch.Generator().manual_seed(3)
    q = torch.rand(3, 3, generator=g, dtype=torch.float64) * 2
    q.fill_diagonal_(0.0)
    q.diagonal().sub_(q.sum(dim=0))
    return DenseGraph(q)


GRAPHS: dict[str, Graph] = {
    "uniform": UniformGraph(3),
    "absorbing": AbsorbingGraph(3),
    "dense": _dense(),
}
graphs = pytest.mark.parametrize("graph_name", list(GRAPHS))
CONDITION = Condition.at({1: 2})
F64 = torch.float64


@graphs
def test_data_distribution_is_conditioned(graph_name: str) -> None:
    oracle = ExactOracle.random(GRAPHS[graph_name], 3, seed=1)
    cond = oracle.conditional(CONDITION)
    assert isinstance(cond, ConditionalOracle)
    expected = torch.zeros_like(oracle.data_probs)
    expected[:, 2, :] = oracle.data_probs[:, 2, :] / oracle.data_probs[:, 2, :].sum()
    torch.testing.assert_close(cond.data_probs, expected)
    samples = cond.sample_data(2000, torch.Generator().manual_seed(0))
    assert bool((samples[:, 1] == 2).all())


@graphs
def test_fixed_positions_are_never_noised(graph_name: str) -> None:
    graph = GRAPHS[graph_name]
    oracle = ExactOracle.random(graph, 3, seed=1)
    cond = oracle.conditional(CONDITION)
    p = cond.marginal(torch.tensor([0.0, 0.7, 5.0], dtype=F64))
    seqs = cond.all_sequences()
    torch.testing.assert_close(p.sum(dim=-1), torch.ones(3, dtype=F64))
    assert float(p[:, seqs[:, 1] != 2].abs().max()) == 0.0
    torch.testing.assert_close(p[0], cond._p0.reshape(-1))
    # The free positions follow the forward kernel: p_t^c = (P x I x P) p_0^c.
    kernel = graph.kernel(torch.tensor([0.7], dtype=F64))[0]
    full = torch.kron(torch.kron(kernel, torch.eye(graph.num_states, dtype=F64)), kernel)
    torch.testing.assert_close(p[1], full @ cond._p0.reshape(-1))


@graphs
def test_forward_equation_of_the_conditional_process(graph_name: str) -> None:
    """d p_t^c / d sigma = Q_free p_t^c, with Q_free the generator of the free positions."""
    cond = ExactOracle.random(GRAPHS[graph_name], 2, seed=2).conditional(Condition.at({0: 1}))
    h, sigma = 1e-6, 0.8
    deriv = (cond.marginal(sigma + h) - cond.marginal(sigma - h)) / (2 * h)
    torch.testing.assert_close(
        deriv, cond.generator_matrix() @ cond.marginal(sigma), atol=1e-7, rtol=1e-6
    )


@graphs
def test_scores_are_ratios_of_the_conditional_marginal(graph_name: str) -> None:
    graph = GRAPHS[graph_name]
    cond = ExactOracle.random(graph, 3, seed=1).conditional(CONDITION)
    sigma = torch.tensor(0.9, dtype=F64)
    p = cond.marginal(sigma)
    s = graph.num_states
    x = torch.tensor([[a, 2, b] for a, b in itertools.product(range(s), repeat=2)])
    scores = cond(x, sigma)
    for row, seq in enumerate(x.tolist()):
        for i in (0, 2):
            for v in range(s):
                other = list(seq)
                other[i] = v
                expected = torch.log(
                    p[cond.index(torch.tensor(other))] / p[cond.index(torch.tensor(seq))]
                )
                torch.testing.assert_close(scores[row, i, v], expected)
    assert bool((scores[:, 1, torch.arange(s) != 2] == -torch.inf).all())


def test_absorbing_conditional_scores_equal_unconditional_ones_at_free_positions() -> None:
    """Why clamping with unconditional scores is exact for absorbing graphs (and not others)."""
    for name, graph in GRAPHS.items():
        oracle = ExactOracle.random(graph, 3, seed=1)
        cond = oracle.conditional(CONDITION)
        x = torch.tensor(
            [[a, 2, b] for a, b in itertools.product(range(graph.num_states), repeat=2)]
        )
        sigma = torch.tensor(0.9, dtype=F64)
        same = torch.allclose(oracle(x, sigma)[:, [0, 2]], cond(x, sigma)[:, [0, 2]])
        assert same == (name == "absorbing"), name


def test_conditional_log_score_handles_per_row_conditions() -> None:
    oracle = ExactOracle.random(UniformGraph(3), 3, seed=1)
    mask = torch.tensor([[False, True, False], [True, False, False], [False, True, False]])
    tokens = torch.tensor([[0, 2, 0], [1, 0, 0], [0, 2, 0]])
    clamp = Clamp.from_tensors(tokens, mask)
    x = torch.tensor([[0, 2, 1], [1, 0, 2], [2, 2, 2]])
    sigma = torch.tensor([0.3, 0.6, 0.9], dtype=F64)
    got = oracle.conditional_log_score(x, sigma, condition=clamp)
    for row in range(3):
        single = Clamp(mask[row], tokens[row])
        expected = oracle.conditional(single)(x[row : row + 1], sigma[row : row + 1])
        torch.testing.assert_close(got[row : row + 1], expected)
    shared = oracle.conditional_log_score(x[:1], sigma[:1], condition=Clamp(mask[0], tokens[0]))
    torch.testing.assert_close(shared, got[:1])


def test_errors() -> None:
    oracle = ExactOracle(UniformGraph(2), torch.tensor([[0.5, 0.0], [0.0, 0.5]]))
    with pytest.raises(ValueError, match="probability 0"):
        oracle.conditional(Condition.at({0: 0}) | Condition.at({1: 1}))
    with pytest.raises(ValueError, match="runs past the end"):
        oracle.conditional(Condition.span(1, [0, 0]))
    with pytest.raises(ValueError, match="shape \\[2\\]"):
        oracle.conditional(
            Clamp(torch.ones(2, 2, dtype=torch.bool), torch.zeros(2, 2, dtype=torch.long))
        )
    with pytest.raises(TypeError, match="Condition or Clamp"):
        oracle.conditional({0: 1})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="must be a Clamp"):
        oracle.conditional_log_score(torch.zeros(1, 2, dtype=torch.long), 0.1, condition=CONDITION)  # type: ignore[arg-type]
    assert "fixed=[0]" in repr(oracle.conditional(Condition.at({0: 1})))
