"""The Graph contract (DESIGN.md section 3), checked for every graph against dense references.

The suite runs over the examples of every concrete Graph class in ddiff (`tests.testing.registry`:
a new class needs a line in EXAMPLES, or test_every_graph_class_has_examples fails); hypothesis
also draws random uniform/absorbing/dense graphs.
The checks themselves live in `ddiff.testing.contracts`, which users run on their own graphs.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from ddiff import AbsorbingGraph, DenseGraph, Graph, UniformGraph
from ddiff.graphs import gtr, hky85, jc69, k80, protein_graph
from ddiff.testing import ExactOracle, contracts
from ddiff.testing import strategies as dst
from tests.testing import registry


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


# Examples of every concrete Graph class in ddiff (a new class needs an entry: see
# test_every_graph_class_has_examples). The substitution models are DenseGraphs.
EXAMPLES: dict[type[Graph], dict[str, Graph]] = {
    UniformGraph: {"uniform-2": UniformGraph(2), "uniform-6": UniformGraph(6)},
    AbsorbingGraph: {"absorbing-1": AbsorbingGraph(1), "absorbing-5": AbsorbingGraph(5)},
    DenseGraph: {
        "dense-reversible": DenseGraph(_random_generator(5, 0, reversible=True)),
        "dense-nonreversible": DenseGraph(_random_generator(4, 1, reversible=False)),
        "dense-absorbing": DenseGraph(AbsorbingGraph(3).rate_matrix(), num_tokens=3),
        "jc69": jc69(),
        "k80": k80(3.0),
        "hky85": hky85(2.5, (0.1, 0.2, 0.3, 0.4)),
        "gtr": gtr((1.0, 2.0, 0.5, 0.7, 3.0, 1.0), (0.3, 0.2, 0.2, 0.3)),
        "protein": protein_graph(),
    },
}
GRAPHS = registry.implementations(Graph, EXAMPLES)

SIGMAS = [0.0, 1e-5, 1e-3, 0.1, 1.0, 10.0]
names = pytest.mark.parametrize("name", list(GRAPHS))


def test_every_graph_class_has_examples() -> None:
    assert not registry.missing(Graph, EXAMPLES), "add examples of these graphs to EXAMPLES"


# -- the rate matrix ----------------------------------------------------------------------------


@names
def test_rate_matrix(name: str) -> None:
    contracts.check_rate_matrix(GRAPHS[name], atol=1e-12)


@given(dst.graphs())
def test_rate_matrix_random(graph: Graph) -> None:
    contracts.check_rate_matrix(graph, atol=1e-12)


# -- kernels ------------------------------------------------------------------------------------


@names
@pytest.mark.parametrize("sigma", SIGMAS)
def test_transition_is_matrix_exp(name: str, sigma: float) -> None:
    contracts.check_transition(GRAPHS[name], sigma)


@given(dst.graphs(), dst.noise_levels())
def test_transition_random(graph: Graph, sigma: float) -> None:
    contracts.check_transition(graph, sigma)


@names
def test_transition_at_infinite_noise_is_the_limit(name: str) -> None:
    contracts.check_transition(GRAPHS[name], math.inf, rtol=0.0)


@names
def test_transition_at_zero_is_one_hot(name: str) -> None:
    contracts.check_transition(GRAPHS[name], 0.0)


@given(dst.graphs(), dst.noise_levels(1e-3, 5.0), dst.noise_levels(1e-3, 5.0))
def test_chapman_kolmogorov(graph: Graph, a: float, b: float) -> None:
    contracts.check_chapman_kolmogorov(graph, a, b)


@names
def test_kernel_batches_sigma(name: str) -> None:
    contracts.check_transition_batch(GRAPHS[name], [0.0, 0.3, 2.0])


# -- sampling -----------------------------------------------------------------------------------


@names
def test_sample_transition_matches_transition(name: str) -> None:
    """Chi-square goodness of fit of 20,000 draws per starting state, fixed seed."""
    contracts.check_sample_transition(GRAPHS[name], 0.7, num_draws=20_000, seed=1234)


@names
def test_limit_distribution(name: str) -> None:
    contracts.check_limit(GRAPHS[name], num_draws=30_000, seed=5, tolerance=0.015)


# -- reverse rates and the staggered score ------------------------------------------------------


@names
def test_reverse_rates(name: str) -> None:
    contracts.check_reverse_rates(GRAPHS[name])


@names
@pytest.mark.parametrize("sigma", [0.05, 1.0])
def test_reverse_rate_identity(name: str, sigma: float) -> None:
    """With exact scores the reverse chain of `reverse_rates` runs p_t backwards: on whole
    sequences, Qbar p_t = -Q p_t (both without the schedule's rate)."""
    graph = GRAPHS[name]
    oracle = ExactOracle.random(graph, length=2, seed=0)
    x = oracle.all_sequences()  # [n, L], sequence k has index k
    p = oracle.marginal(sigma)  # [n]
    rates = graph.reverse_rates(x, oracle.log_score(x, sigma).exp())  # [n, L, S]
    n, columns = x.shape[0], torch.arange(x.shape[0])
    qbar = torch.zeros(n, n, dtype=torch.float64)
    for i in range(oracle.length):
        for v in range(graph.num_states):
            y = x.clone()
            y[:, i] = v  # v = x_i puts the diagonal entry on qbar's diagonal
            qbar.index_put_((oracle.index(y), columns), rates[:, i, v], accumulate=True)
    torch.testing.assert_close(qbar @ p, -(oracle.generator_matrix() @ p), atol=1e-7, rtol=1e-6)


@names
def test_frozen_states(name: str) -> None:
    contracts.check_frozen_states(GRAPHS[name])


def test_frozen_states_of_the_shipped_graphs() -> None:
    assert not UniformGraph(5).frozen_states().any()
    assert AbsorbingGraph(3).frozen_states().tolist() == [True, True, True, False]
    dense_absorbing = DenseGraph(AbsorbingGraph(3).rate_matrix(), num_tokens=3)
    assert dense_absorbing.frozen_states().tolist() == [True, True, True, False]


@names
@pytest.mark.parametrize("delta_sigma", [1e-4, 0.05, 1.0])
def test_staggered_score(name: str, delta_sigma: float) -> None:
    contracts.check_staggered_score(GRAPHS[name], delta_sigma)


@pytest.mark.parametrize("name", ["uniform-6", "absorbing-5", "jc69"])
def test_dsigma_is_the_deprecated_name_of_delta_sigma(name: str) -> None:
    graph = GRAPHS[name]
    score = torch.rand(2, 3, graph.num_states, generator=torch.Generator().manual_seed(0))
    with pytest.warns(DeprecationWarning) as record:
        old = graph.staggered_score(score, dsigma=0.3)
    (warning,) = record
    assert "staggered_score(dsigma=...)" in str(warning.message)
    assert "delta_sigma=..." in str(warning.message)
    assert torch.equal(old, graph.staggered_score(score, delta_sigma=0.3))
    with pytest.warns(DeprecationWarning, match=r"check_staggered_score\(dsigma=\.\.\.\)"):
        contracts.check_staggered_score(graph, dsigma=0.3)


# -- fast paths equal the generic path ----------------------------------------------------------

_GENERIC = [m for m in vars(Graph) if not m.startswith("_") and m not in Graph.__abstractmethods__]


def _overrides(cls: type[Graph]) -> bool:
    return any(getattr(cls, m) is not getattr(Graph, m) for m in _GENERIC)


def _largest(examples: dict[str, Graph]) -> str:
    return max(examples, key=lambda name: examples[name].num_states)


# The largest example of every graph class that overrides a generic member with its own path.
FAST = {
    name: GRAPHS[name]
    for name in (
        _largest(EXAMPLES[cls]) for cls in registry.concrete_subclasses(Graph) if _overrides(cls)
    )
}


@pytest.mark.parametrize("name", list(FAST))
@given(sigma=dst.noise_levels(), seed=st.integers(0, 2**16))
def test_fast_paths_equal_generic(name: str, sigma: float, seed: int) -> None:
    contracts.check_generic_members(FAST[name], sigma, seed=seed)


# -- argument errors ----------------------------------------------------------------------------


@names
def test_bad_arguments(name: str) -> None:
    contracts.check_graph_arguments(GRAPHS[name])


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
