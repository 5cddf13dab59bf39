"""Tests for the ready-made substitution models in `ddiff.graphs.substitution`."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import ddiff.graphs
from ddiff.graphs import (
    BLOSUM62,
    DNA_ALPHABET,
    PROTEIN_ALPHABET,
    DenseGraph,
    gtr,
    hky85,
    jc69,
    k80,
    protein_graph,
)

TRANSITIONS = {(0, 2), (2, 0), (1, 3), (3, 1)}  # A<->G, C<->T
UNIFORM = [0.25] * 4
SKEWED = [0.1, 0.4, 0.3, 0.2]
EXCHANGEABILITIES = [1.3, 4.0, 0.7, 1.1, 5.2, 0.9]  # AC, AG, AT, CG, CT, GT

# Background frequencies Henikoff & Henikoff (1992) counted for BLOSUM62, as shipped by Easel
# (HMMER) in `esl_composition_BL62`, keyed by residue.
HENIKOFF_BACKGROUND = {
    "A": 0.074, "C": 0.025, "D": 0.054, "E": 0.054, "F": 0.047,
    "G": 0.074, "H": 0.026, "I": 0.068, "K": 0.058, "L": 0.099,
    "M": 0.025, "N": 0.045, "P": 0.039, "Q": 0.034, "R": 0.052,
    "S": 0.057, "T": 0.051, "V": 0.073, "W": 0.013, "Y": 0.032,
}  # fmt: skip


def blosum62_oracle() -> tuple[np.ndarray, np.ndarray]:
    """The BLOSUM62 rate matrix and its implied background, built step by step in numpy."""
    odds = 2.0 ** (np.array(BLOSUM62, dtype=np.float64) / 2)  # M_ij = q_ij / (p_i p_j)
    p = np.linalg.solve(odds, np.ones(20))
    p /= p.sum()
    target = np.outer(p, p) * odds
    target /= target.sum()
    out_of = target / p[:, None]  # out_of[i, j]: probability that i is aligned to j
    q = out_of.T.copy()  # column convention: Q[j, i] is the rate from i to j
    np.fill_diagonal(q, 0.0)
    q /= q.sum(axis=0) @ p
    np.fill_diagonal(q, -q.sum(axis=0))
    return q, p


MODELS = {
    "jc69": (jc69, UNIFORM),
    "k80": (lambda: k80(3.0), UNIFORM),
    "hky85": (lambda: hky85(2.5, SKEWED), SKEWED),
    "gtr": (lambda: gtr(EXCHANGEABILITIES, SKEWED), SKEWED),
    "blosum62": (protein_graph, blosum62_oracle()[1].tolist()),
}


def kernel_columns(graph: DenseGraph, sigma: float) -> torch.Tensor:
    """`P[:, i]` for every start state i, stacked as rows: `[S, S]`, from `graph.transition`."""
    x_0 = torch.arange(graph.num_states)[None]
    return graph.transition(x_0, torch.tensor([sigma], dtype=torch.float64))[0]


def unit_rate(q: torch.Tensor) -> torch.Tensor:
    """Scale off-diagonal rates `q[j, i]` to unit expected rate under the uniform distribution."""
    q = q.clone()
    q.fill_diagonal_(0.0)
    return q / q.sum(0).mean()


# -- invariants shared by every model ------------------------------------------------------------


@pytest.fixture(params=list(MODELS), scope="module")
def model(request: pytest.FixtureRequest) -> tuple[DenseGraph, torch.Tensor]:
    factory, freqs = MODELS[request.param]
    return factory(), torch.tensor(freqs, dtype=torch.float64)


def test_rate_matrix_is_a_generator(model: tuple[DenseGraph, torch.Tensor]) -> None:
    graph, _ = model
    q = graph.rate_matrix()
    off = q - torch.diag(q.diagonal())
    assert bool((off >= 0).all())
    torch.testing.assert_close(
        q.sum(0), torch.zeros(graph.num_states, dtype=q.dtype), atol=1e-12, rtol=0
    )


def test_expected_rate_at_stationarity_is_one(model: tuple[DenseGraph, torch.Tensor]) -> None:
    graph, pi = model
    assert float((pi * -graph.rate_matrix().diagonal()).sum()) == pytest.approx(1.0, abs=1e-12)


def test_limit_distribution(model: tuple[DenseGraph, torch.Tensor]) -> None:
    graph, pi = model
    torch.testing.assert_close(graph.limit_distribution(), pi, atol=1e-10, rtol=0)
    torch.testing.assert_close(graph.rate_matrix() @ pi, torch.zeros_like(pi), atol=1e-12, rtol=0)


def test_detailed_balance(model: tuple[DenseGraph, torch.Tensor]) -> None:
    graph, pi = model
    flux = graph.rate_matrix() * pi[None, :]  # flux[j, i] = Q[j, i] pi_i, the flow i -> j
    torch.testing.assert_close(flux, flux.T, atol=1e-12, rtol=0)


def test_labels(model: tuple[DenseGraph, torch.Tensor]) -> None:
    graph, _ = model
    expected = PROTEIN_ALPHABET if graph.num_states == 20 else DNA_ALPHABET
    assert graph.labels == list(expected)
    assert graph.num_tokens == graph.num_states == len(expected)


@pytest.mark.parametrize("sigma", [0.0, 0.05, 1.0, 7.0])
def test_transition_is_matrix_exp(model: tuple[DenseGraph, torch.Tensor], sigma: float) -> None:
    graph, _ = model
    reference = torch.linalg.matrix_exp(sigma * graph.rate_matrix())
    torch.testing.assert_close(kernel_columns(graph, sigma), reference.T, atol=1e-10, rtol=0)


# -- closed forms and nesting --------------------------------------------------------------------


@pytest.mark.parametrize("sigma", [0.0, 0.01, 0.3, 1.0, 2.5, 10.0])
def test_jc69_closed_form(sigma: float) -> None:
    p = kernel_columns(jc69(), sigma)
    same = 0.25 + 0.75 * math.exp(-4 * sigma / 3)
    expected = torch.full((4, 4), (1 - same) / 3, dtype=torch.float64)
    expected.fill_diagonal_(same)
    torch.testing.assert_close(p, expected, atol=1e-12, rtol=0)


@pytest.mark.parametrize("kappa", [0.3, 1.0, 2.0, 12.0])
@pytest.mark.parametrize("sigma", [0.01, 0.4, 1.5, 6.0])
def test_k80_closed_form(kappa: float, sigma: float) -> None:
    # Normalised rates: alpha per transition, beta per transversion, alpha + 2 beta = 1.
    alpha, beta = kappa / (kappa + 2), 1 / (kappa + 2)
    e_tv, e_all = math.exp(-4 * beta * sigma), math.exp(-2 * (alpha + beta) * sigma)
    same = 0.25 + 0.25 * e_tv + 0.5 * e_all
    transition = 0.25 + 0.25 * e_tv - 0.5 * e_all
    transversion = 0.25 - 0.25 * e_tv  # to each of the two transversion partners
    p = kernel_columns(k80(kappa), sigma)  # p[i, j] = P(x_t = j | x_0 = i)
    for i in range(4):
        for j in range(4):
            expected = same if i == j else transition if (i, j) in TRANSITIONS else transversion
            assert float(p[i, j]) == pytest.approx(expected, abs=1e-12)


def test_gtr_with_unit_exchangeabilities_is_hky85_with_kappa_1() -> None:
    torch.testing.assert_close(
        gtr([1.0] * 6, SKEWED).rate_matrix(), hky85(1.0, SKEWED).rate_matrix(), atol=1e-14, rtol=0
    )


@pytest.mark.parametrize("kappa", [0.5, 2.0, 9.0])
def test_hky85_with_uniform_freqs_is_k80(kappa: float) -> None:
    torch.testing.assert_close(
        hky85(kappa, UNIFORM).rate_matrix(), k80(kappa).rate_matrix(), atol=1e-14, rtol=0
    )


def test_k80_with_kappa_1_is_jc69() -> None:
    q = jc69().rate_matrix()
    torch.testing.assert_close(k80(1.0).rate_matrix(), q, atol=1e-14, rtol=0)
    expected = torch.full((4, 4), 1 / 3, dtype=torch.float64)
    expected.fill_diagonal_(-1.0)
    torch.testing.assert_close(q, expected, atol=1e-14, rtol=0)


def test_defaults() -> None:
    torch.testing.assert_close(k80().rate_matrix(), k80(2.0).rate_matrix(), atol=0, rtol=0)
    torch.testing.assert_close(hky85().rate_matrix(), k80(2.0).rate_matrix(), atol=1e-14, rtol=0)


# -- property tests over random parameters ---------------------------------------------------------

kappas = st.floats(0.05, 20.0)
freq_lists = st.lists(st.floats(0.02, 1.0), min_size=4, max_size=4).map(
    lambda f: [v / sum(f) for v in f]
)
exchangeability_lists = st.lists(st.floats(0.05, 10.0), min_size=6, max_size=6)
sigmas = st.floats(0.0, 5.0)


def hky_oracle(kappa: float, freqs: list[float]) -> torch.Tensor:
    """HKY85 written out entry by entry: Q[j, i] = pi_j * (kappa if transition else 1), scaled."""
    q = torch.zeros(4, 4, dtype=torch.float64)
    for i in range(4):
        for j in range(4):
            if i != j:
                q[j, i] = freqs[j] * (kappa if (i, j) in TRANSITIONS else 1.0)
    return q


@given(kappa=kappas, freqs=freq_lists)
def test_hky85_entries(kappa: float, freqs: list[float]) -> None:
    q = hky85(kappa, freqs).rate_matrix()
    pi = torch.tensor(freqs, dtype=torch.float64)
    raw = hky_oracle(kappa, freqs)
    expected = raw / (raw.sum(0) @ pi)
    expected -= torch.diag(expected.sum(0))
    torch.testing.assert_close(q, expected, atol=1e-12, rtol=1e-12)


@given(exch=exchangeability_lists, freqs=freq_lists)
def test_gtr_entries(exch: list[float], freqs: list[float]) -> None:
    r = {}
    for (a, b), r_ab in zip(["AC", "AG", "AT", "CG", "CT", "GT"], exch, strict=True):
        r[a, b] = r[b, a] = r_ab
    graph = gtr(exch, freqs)
    q = graph.rate_matrix()
    ratio = [
        q[DNA_ALPHABET.index(j), DNA_ALPHABET.index(i)] / (freqs[DNA_ALPHABET.index(j)] * r[i, j])
        for i in DNA_ALPHABET
        for j in DNA_ALPHABET
        if i != j
    ]
    # Q[j, i] / (pi_j r_ij) is the same normalising constant for every pair.
    assert max(ratio) / min(ratio) == pytest.approx(1.0, abs=1e-12)
    pi = torch.tensor(freqs, dtype=torch.float64)
    assert float((pi * -q.diagonal()).sum()) == pytest.approx(1.0, abs=1e-12)
    torch.testing.assert_close(graph.limit_distribution(), pi, atol=1e-9, rtol=0)


@given(kappa=kappas, freqs=freq_lists, sigma=sigmas)
def test_hky85_transition_is_matrix_exp(kappa: float, freqs: list[float], sigma: float) -> None:
    graph = hky85(kappa, freqs)
    reference = torch.linalg.matrix_exp(sigma * graph.rate_matrix())
    torch.testing.assert_close(kernel_columns(graph, sigma), reference.T, atol=1e-9, rtol=0)


@given(exch=exchangeability_lists, freqs=freq_lists, sigma=sigmas)
def test_gtr_transition_is_matrix_exp(exch: list[float], freqs: list[float], sigma: float) -> None:
    graph = gtr(exch, freqs)
    reference = torch.linalg.matrix_exp(sigma * graph.rate_matrix())
    torch.testing.assert_close(kernel_columns(graph, sigma), reference.T, atol=1e-9, rtol=0)


def test_float32_sigma_gives_float32_kernels() -> None:
    graph = hky85(3.0, SKEWED)
    p = graph.transition(torch.arange(4)[None], torch.tensor([0.7]))[0]
    assert p.dtype == torch.float32
    reference = torch.linalg.matrix_exp(0.7 * graph.rate_matrix()).T.float()
    torch.testing.assert_close(p, reference, atol=1e-5, rtol=0)


# -- argument validation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: k80(0.0), r"kappa .* must be finite and > 0, got 0\.0"),
        (lambda: k80(-2.0), r"kappa .* must be finite and > 0"),
        (lambda: k80(float("nan")), r"kappa .* must be finite and > 0"),
        (lambda: hky85(float("inf")), r"kappa .* must be finite and > 0"),
        (
            lambda: hky85(2.0, [0.5, 0.5]),
            r"freqs must hold 4 .* A, C, G, T, got 2",
        ),
        (lambda: gtr([1.0] * 6, [0.2] * 5), r"freqs must hold 4 base frequencies"),
        (lambda: hky85(2.0, [0.5, 0.5, 0.0, 0.0]), r"freqs must be finite and > 0"),
        (lambda: hky85(2.0, [-0.1, 0.5, 0.3, 0.3]), r"freqs must be finite and > 0"),
        (lambda: hky85(2.0, [0.2, 0.2, 0.2, float("nan")]), r"freqs must be finite and > 0"),
        (lambda: hky85(2.0, [1.0, 1.0, 1.0, 1.0]), r"freqs must sum to 1 .*got a sum of 4\b"),
        (lambda: hky85(2.0, [0.25, 0.25, 0.25, 0.2501]), r"not renormalised for you"),
        (lambda: gtr([1.0] * 5, UNIFORM), r"exchangeabilities must hold 6 rates .*AC, AG, AT"),
        (lambda: gtr([1.0] * 7, UNIFORM), r"exchangeabilities must hold 6 rates"),
        (lambda: gtr([1, 1, -1, 1, 1, 1], UNIFORM), r"exchangeabilities must be finite and >= 0"),
        (lambda: gtr([1, 1, math.inf, 1, 1, 1], UNIFORM), r"must be finite and >= 0"),
        (lambda: gtr([0.0] * 6, UNIFORM), r"leave bases A disconnected"),
        (lambda: gtr([1, 0, 0, 0, 0, 1], UNIFORM), r"leave bases AC disconnected"),
        (lambda: protein_graph("PAM250"), r"unknown .* 'PAM250'; known matrices: BLOSUM62"),
    ],
)
def test_invalid_arguments(build: Callable[[], object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build()


def test_freqs_within_tolerance_are_accepted() -> None:
    freqs = [0.25, 0.25, 0.25, 0.25 + 5e-7]
    pi = hky85(2.0, freqs).limit_distribution()
    assert float(pi.sum()) == pytest.approx(1.0, abs=1e-12)
    torch.testing.assert_close(pi, torch.tensor(freqs, dtype=torch.float64), atol=1e-6, rtol=0)


def test_sparse_but_connected_gtr_is_valid() -> None:
    # A chain A - C - G - T: only AC, CG and GT are allowed.
    graph = gtr([1.0, 0.0, 0.0, 2.0, 0.0, 1.0], SKEWED)
    torch.testing.assert_close(
        graph.limit_distribution(), torch.tensor(SKEWED, dtype=torch.float64), atol=1e-10, rtol=0
    )
    assert float(graph.rate_matrix()[2, 0]) == 0.0  # no direct A -> G


# -- the protein model ---------------------------------------------------------------------------


def test_blosum62_table_is_symmetric() -> None:
    s = torch.tensor(BLOSUM62)
    assert s.shape == (20, 20)
    assert torch.equal(s, s.T)
    assert bool((s.diagonal() > 0).all())


def test_blosum62_table_matches_biopython() -> None:
    from Bio.Align import substitution_matrices  # biopython is in the `test` extra

    reference = substitution_matrices.load("BLOSUM62")
    for a, row in zip(PROTEIN_ALPHABET, BLOSUM62, strict=True):
        for b, score in zip(PROTEIN_ALPHABET, row, strict=True):
            assert score == reference[a, b], f"BLOSUM62[{a}, {b}]"


def test_protein_graph_matches_the_documented_construction() -> None:
    q, p = blosum62_oracle()
    graph = protein_graph()
    torch.testing.assert_close(graph.rate_matrix(), torch.from_numpy(q), atol=1e-12, rtol=0)
    torch.testing.assert_close(graph.limit_distribution(), torch.from_numpy(p), atol=1e-10, rtol=0)
    torch.testing.assert_close(
        protein_graph("blosum62").rate_matrix(), graph.rate_matrix(), atol=0, rtol=0
    )


def test_protein_background_roughly_reproduces_blosum62() -> None:
    pi = protein_graph().limit_distribution()
    assert bool((pi > 0).all())
    freqs = dict(zip(PROTEIN_ALPHABET, pi.tolist(), strict=True))
    # Values computed from the rounded BLOSUM62 scores (Henikoff & Henikoff counted 0.099, 0.013).
    assert max(freqs, key=freqs.__getitem__) == "L"
    assert freqs["L"] == pytest.approx(0.0897, abs=5e-4)
    assert min(freqs, key=freqs.__getitem__) == "W"
    assert freqs["W"] == pytest.approx(0.0118, abs=5e-4)
    # Close to the counted background overall: total variation 0.061, no residue off by > 0.016.
    diff = [abs(freqs[a] - HENIKOFF_BACKGROUND[a]) for a in PROTEIN_ALPHABET]
    assert 0.5 * sum(diff) < 0.07
    assert max(diff) < 0.02


# -- exports -------------------------------------------------------------------------------------


def test_public_names_are_exported() -> None:
    names = ["BLOSUM62", "DNA_ALPHABET", "PROTEIN_ALPHABET", "gtr", "hky85", "jc69", "k80"]
    for name in [*names, "protein_graph"]:
        assert name in ddiff.graphs.__all__
        assert getattr(ddiff.graphs, name) is not None
