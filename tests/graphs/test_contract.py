"""The Graph contract (DESIGN.md section 3), checked for every graph against dense references.

A new graph is one line in GRAPHS; hypothesis also draws random uniform/absorbing/dense graphs.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from ddiff import AbsorbingGraph, DenseGraph, Graph, UniformGraph
from ddiff.testing import strategies as dst


def _random_generator(s: int, seed: int, reversible: bool) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if reversible:
        pi = torch.rand(s, generator=g, dtype=torch.float64) + 0.2
        pi /= pi.sum()
        sym = torch.rand(s, s, generator=g, dtype=torch.float64)
        q = (sym + sym.T) * pi[:, None]  # Q[j, i] = r_ij pi_j: detailed balance with pi
    else:
        q = torch.rand(s, s, generator=g, dtype=torch.float64) * 2
    q.fill_diagonal_(0.0)
    q.diagonal().sub_(q.sum(dim=0))
    return q


GRAPHS: dict[str, Graph] = {
    "uniform-2": UniformGraph(2),
    "uniform-6": UniformGraph(6),
    "absorbing-1": AbsorbingGraph(1),
    "absorbing-5": AbsorbingGraph(5),
    "dense-reversible": DenseGraph(_random_generator(5, 0, reversible=True)),
    "dense-nonreversible": DenseGraph(_random_generator(4, 1, reversible=False)),
    "dense-absorbing": DenseGraph(AbsorbingGraph(3).rate_matrix(), num_tokens=3),
}
try:  # substitution models (ddiff.graphs.substitution)
    from ddiff.graphs import gtr, hky85, jc69, k80, protein_graph

    GRAPHS |= {
        "jc69": jc69(),
        "k80": k80(3.0),
        "hky85": hky85(2.5, (0.1, 0.2, 0.3, 0.4)),
        "gtr": gtr((1.0, 2.0, 0.5, 0.7, 3.0, 1.0), (0.3, 0.2, 0.2, 0.3)),
        "protein": protein_graph(),
    }
except ImportError:  # pragma: no cover - only while the module is being written
    pass

SIGMAS = [0.0, 1e-5, 1e-3, 0.1, 1.0, 10.0]
names = pytest.mark.parametrize("name", list(GRAPHS))


def dense_kernel(graph: Graph, sigma: float) -> torch.Tensor:
    return torch.linalg.matrix_exp(sigma * graph.rate_matrix(torch.float64))


def all_states(graph: Graph) -> torch.Tensor:
    return torch.arange(graph.num_states)[None, :]


def data_states(graph: Graph) -> torch.Tensor:
    return torch.arange(graph.num_tokens)[None, :]


# -- the rate matrix ----------------------------------------------------------------------------


def check_rate_matrix(graph: Graph) -> None:
    q = graph.rate_matrix(torch.float64)
    s = graph.num_states
    assert q.shape == (s, s)
    off = q - torch.diag(q.diagonal())
    assert (off >= 0).all()
    assert q.sum(dim=0).abs().max() < 1e-12
    x = all_states(graph)
    torch.testing.assert_close(graph.rates_out(x, dtype=torch.float64)[0], q.T)  # columns
    torch.testing.assert_close(graph.rates_in(x, dtype=torch.float64)[0], q)  # rows


@names
def test_rate_matrix(name: str) -> None:
    check_rate_matrix(GRAPHS[name])


@given(dst.graphs())
def test_rate_matrix_random(graph: Graph) -> None:
    check_rate_matrix(graph)


# -- kernels ------------------------------------------------------------------------------------


def check_transition(graph: Graph, sigma: float) -> None:
    ref = dense_kernel(graph, sigma)  # ref[j, i] = P[j, i]
    sig = torch.tensor([sigma], dtype=torch.float64)
    p = graph.transition(all_states(graph), sig)[0]  # p[i, j] = P[j, i]
    torch.testing.assert_close(p, ref.T, atol=1e-9, rtol=1e-7)
    torch.testing.assert_close(p.sum(-1), torch.ones(graph.num_states, dtype=torch.float64))
    p_in = graph.transition_in(all_states(graph), sig)[0]  # p_in[x, y] = P[x, y]
    torch.testing.assert_close(p_in, ref, atol=1e-9, rtol=1e-7)
    # float32 path (what training uses) agrees to float32 accuracy
    p32 = graph.transition(all_states(graph), sig.float())[0]
    assert p32.dtype == torch.float32
    torch.testing.assert_close(p32.double(), ref.T, atol=2e-6, rtol=1e-5)


@names
@pytest.mark.parametrize("sigma", SIGMAS)
def test_transition_is_matrix_exp(name: str, sigma: float) -> None:
    check_transition(GRAPHS[name], sigma)


@given(dst.graphs(), dst.noise_levels())
def test_transition_random(graph: Graph, sigma: float) -> None:
    check_transition(graph, sigma)


@names
def test_transition_at_infinite_noise_is_the_limit(name: str) -> None:
    graph = GRAPHS[name]
    p = graph.transition(all_states(graph), torch.tensor([torch.inf], dtype=torch.float64))[0]
    assert not torch.isnan(p).any()
    pi = graph.limit_distribution()
    torch.testing.assert_close(p, pi.expand_as(p), atol=1e-9, rtol=0)
    generic = Graph.transition(
        graph, all_states(graph), torch.tensor([torch.inf], dtype=torch.float64)
    )
    torch.testing.assert_close(generic[0], pi.expand_as(p), atol=1e-9, rtol=0)


@names
def test_transition_at_zero_is_one_hot(name: str) -> None:
    graph = GRAPHS[name]
    p = graph.transition(all_states(graph), torch.zeros(1))[0]
    torch.testing.assert_close(p, torch.eye(graph.num_states))


@given(dst.graphs(), dst.noise_levels(1e-3, 5.0), dst.noise_levels(1e-3, 5.0))
def test_chapman_kolmogorov(graph: Graph, a: float, b: float) -> None:
    def kernel(s: float) -> torch.Tensor:
        return graph.transition(all_states(graph), torch.tensor([s], dtype=torch.float64))[0].T

    torch.testing.assert_close(kernel(a + b), kernel(a) @ kernel(b), atol=1e-9, rtol=1e-7)


@names
def test_kernel_batches_sigma(name: str) -> None:
    graph = GRAPHS[name]
    sig = torch.tensor([0.0, 0.3, 2.0], dtype=torch.float64)
    x = torch.randint(graph.num_states, (3, 4), generator=torch.Generator().manual_seed(0))
    out = graph.transition(x, sig)
    for b in range(3):
        ref = dense_kernel(graph, float(sig[b])).T[x[b]]
        torch.testing.assert_close(out[b], ref, atol=1e-9, rtol=1e-7)


# -- sampling -----------------------------------------------------------------------------------


@names
def test_sample_transition_matches_transition(name: str) -> None:
    """Chi-square goodness of fit of 20,000 draws per starting state, fixed seed."""
    graph = GRAPHS[name]
    gen = torch.Generator().manual_seed(1234)
    n, sigma = 20_000, 0.7
    for x0 in range(graph.num_tokens):
        x = torch.full((n, 1), x0)
        draws = graph.sample_transition(x, torch.full((n,), sigma), generator=gen)
        counts = np.bincount(draws.reshape(-1).numpy(), minlength=graph.num_states)
        expected = graph.transition(
            torch.tensor([[x0]]), torch.tensor([sigma], dtype=torch.float64)
        )
        expected = expected.reshape(-1).numpy() * n
        support = expected > 0
        assert counts[~support].sum() == 0, "a draw landed on a zero-probability state"
        _, pvalue = stats.chisquare(
            counts[support], expected[support] * counts.sum() / expected.sum()
        )
        assert pvalue > 1e-4, f"state {x0}: counts {counts} vs expected {expected.round(1)}"


@names
def test_limit_distribution(name: str) -> None:
    graph = GRAPHS[name]
    pi = graph.limit_distribution()
    q = graph.rate_matrix()
    assert abs(float(pi.sum()) - 1.0) < 1e-12
    assert (q @ pi).abs().max() < 1e-10
    draws = graph.sample_limit((30_000,), generator=torch.Generator().manual_seed(5))
    freq = torch.bincount(draws, minlength=graph.num_states).double() / draws.numel()
    assert (freq - pi).abs().max() < 0.015


# -- reverse rates and the staggered score ------------------------------------------------------


@names
def test_reverse_rates(name: str) -> None:
    graph = GRAPHS[name]
    gen = torch.Generator().manual_seed(3)
    x = torch.randint(graph.num_states, (2, 5), generator=gen)
    score = torch.rand(2, 5, graph.num_states, generator=gen, dtype=torch.float64) * 3
    out = graph.reverse_rates(x, score)
    q = graph.rate_matrix()
    expected = score * q[x]  # score_y * Q[x, y]
    off = torch.ones_like(out, dtype=torch.bool).scatter(-1, x.unsqueeze(-1), False)
    torch.testing.assert_close(out[off], expected[off])
    torch.testing.assert_close(
        out.sum(-1), torch.zeros(2, 5, dtype=torch.float64), atol=1e-12, rtol=0
    )


@names
@pytest.mark.parametrize("dsigma", [1e-4, 0.05, 1.0])
def test_staggered_score(name: str, dsigma: float) -> None:
    graph = GRAPHS[name]
    gen = torch.Generator().manual_seed(4)
    score = torch.rand(3, 2, graph.num_states, generator=gen, dtype=torch.float64)
    inverse = torch.linalg.matrix_exp(-dsigma * graph.rate_matrix())
    expected = torch.einsum("jk,blk->blj", inverse, score)
    out = graph.staggered_score(score, torch.full((3,), dsigma, dtype=torch.float64))
    torch.testing.assert_close(out, expected, atol=1e-9, rtol=1e-7)


# -- fast paths equal the generic path ----------------------------------------------------------

FAST = {"uniform": UniformGraph(7), "absorbing": AbsorbingGraph(6)}


@pytest.mark.parametrize("name", list(FAST))
@given(sigma=dst.noise_levels(), seed=st.integers(0, 2**16))
def test_fast_paths_equal_generic(name: str, sigma: float, seed: int) -> None:
    graph = FAST[name]
    gen = torch.Generator().manual_seed(seed)
    x = torch.randint(graph.num_states, (3, 4), generator=gen)
    sig = torch.full((3,), sigma, dtype=torch.float64)
    score = torch.rand(3, 4, graph.num_states, generator=gen, dtype=torch.float64)
    for method, args in [
        ("rates_out", (x,)),
        ("rates_in", (x,)),
        ("transition", (x, sig)),
        ("transition_in", (x, sig)),
        ("reverse_rates", (x, score)),
        ("staggered_score", (score, sig)),
    ]:
        fast, generic = getattr(graph, method)(*args), getattr(Graph, method)(graph, *args)
        torch.testing.assert_close(fast, generic, atol=1e-9, rtol=1e-7, msg=method)
    torch.testing.assert_close(
        graph.limit_distribution(), Graph.limit_distribution(graph), atol=1e-9, rtol=0
    )


# -- argument errors ----------------------------------------------------------------------------


@names
def test_bad_arguments(name: str) -> None:
    graph = GRAPHS[name]
    x = torch.zeros(2, 3, dtype=torch.long)
    with pytest.raises(ValueError, match="outside"):
        graph.transition(x + graph.num_states, torch.ones(2))
    with pytest.raises(ValueError, match="outside"):
        graph.rates_in(x - 1)
    with pytest.raises(ValueError, match=r"shape \[batch\]"):
        graph.transition(x, torch.ones(3))
    with pytest.raises(ValueError, match=">= 0"):
        graph.transition(x, -torch.ones(2))
    with pytest.raises(ValueError, match="integer"):
        graph.rates_out(x.float())


@pytest.mark.parametrize(
    ("q", "match"),
    [
        ([[-1.0, 1.0, 0.0], [1.0, -1.0, 0.0]], "square"),
        ([[-1.0, -0.5], [1.0, 0.5]], r"Q\[0, 1\].*negative"),
        ([[-1.0, 1.0], [0.5, -1.0]], "column 0"),
        ([[0.0, float("nan")], [0.0, 0.0]], "not finite"),
    ],
)
def test_dense_graph_validates(q: list[list[float]], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        DenseGraph(torch.tensor(q))


def test_constructor_errors() -> None:
    with pytest.raises(ValueError, match="num_tokens"):
        UniformGraph(1)
    with pytest.raises(ValueError, match="num_tokens"):
        AbsorbingGraph(0)
    with pytest.raises(ValueError, match="num_tokens"):
        DenseGraph(UniformGraph(3).rate_matrix(), num_tokens=4)
