"""Score entropy and DSE: minima, fast paths against the generic path, float32 stability."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from ddiff import AbsorbingGraph, DenseGraph, Graph, UniformGraph
from ddiff.losses import denoising_score_entropy, score_entropy
from ddiff.testing import ExactOracle
from ddiff.testing import strategies as dst

generic_dse = denoising_score_entropy.dispatch(Graph)
finite = st.floats(-30.0, 30.0, allow_nan=False)


@given(log_s=finite, log_r=finite)
def test_score_entropy_nonnegative_and_matches_formula(log_s: float, log_r: float) -> None:
    s, r = math.exp(log_s), math.exp(log_r)
    reference = s - r * log_s + r * (log_r - 1.0)  # s - r log s + K(r)
    value = float(
        score_entropy(
            torch.tensor(log_s, dtype=torch.float64), torch.tensor(log_r, dtype=torch.float64)
        )
    )
    assert value >= 0.0
    assert value == pytest.approx(reference, rel=1e-9, abs=1e-9 * (s + r + r * abs(log_s)))


@given(log_r=finite)
def test_score_entropy_zero_exactly_at_ratio(log_r: float) -> None:
    x = torch.tensor([log_r], dtype=torch.float32)
    assert float(score_entropy(x, x)) == 0.0
    grad_at = x.clone().requires_grad_(True)
    score_entropy(grad_at, x).sum().backward()
    assert float(grad_at.grad) == pytest.approx(0.0, abs=1e-6 * math.exp(log_r))


def test_score_entropy_zero_ratio_and_dtype() -> None:
    log_s = torch.tensor([0.0, 2.0], dtype=torch.bfloat16)
    out = score_entropy(log_s, torch.tensor(-math.inf))
    assert out.dtype == torch.float32  # never below float32 whatever the model dtype
    torch.testing.assert_close(out, torch.tensor([1.0, math.exp(2.0)]), rtol=1e-2, atol=0)


def test_score_entropy_convex_minimum() -> None:
    log_r = torch.tensor(0.3, dtype=torch.float64)
    grid = torch.linspace(-3, 3, 601, dtype=torch.float64)
    values = score_entropy(grid, log_r)
    assert abs(float(grid[values.argmin()]) - 0.3) < 0.011
    assert (values[1:-1] * 2 <= values[:-2] + values[2:] + 1e-12).all()  # convex in log s too


# -- fast paths equal the generic path --------------------------------------------------------


@pytest.mark.parametrize(
    "graph", [UniformGraph(6), AbsorbingGraph(5)], ids=["uniform", "absorbing"]
)
@given(sigma=dst.noise_levels(1e-5, 20.0), seed=st.integers(0, 2**16))
def test_fast_dse_equals_generic(graph: Graph, sigma: float, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    x_0 = torch.randint(graph.num_tokens, (4, 6), generator=gen)
    sig = torch.full((4,), sigma, dtype=torch.float64)
    x_t = graph.sample_transition(x_0, sig, generator=gen)
    log_score = torch.randn(4, 6, graph.num_states, generator=gen, dtype=torch.float64) * 2
    fast = denoising_score_entropy(graph, log_score, x_t, x_0, sig)
    torch.testing.assert_close(
        fast, generic_dse(graph, log_score, x_t, x_0, sig), rtol=1e-7, atol=1e-10
    )
    # The dense graph with the same Q goes through the generic path and agrees too.
    dense = DenseGraph(graph.rate_matrix(), num_tokens=graph.num_tokens)
    torch.testing.assert_close(
        fast, denoising_score_entropy(dense, log_score, x_t, x_0, sig), rtol=1e-6, atol=1e-9
    )


@given(dst.graphs(), dst.noise_levels(1e-3, 10.0), st.integers(0, 2**16))
def test_dse_zero_at_denoising_optimum(graph: Graph, sigma: float, seed: int) -> None:
    """Per (x_t, x_0), the DSE is >= 0 and vanishes when s_y = P[y, x_0] / P[x_t, x_0]."""
    gen = torch.Generator().manual_seed(seed)
    x_0 = torch.randint(graph.num_tokens, (3, 4), generator=gen)
    sig = torch.full((3,), sigma, dtype=torch.float64)
    x_t = graph.sample_transition(x_0, sig, generator=gen)
    log_p = torch.log(graph.transition(x_0, sig))
    optimum = log_p - log_p.gather(-1, x_t.unsqueeze(-1))
    at_opt = denoising_score_entropy(graph, optimum, x_t, x_0, sig)
    assert (at_opt >= 0).all() and at_opt.max() < 1e-9
    elsewhere = denoising_score_entropy(graph, optimum.nan_to_num(neginf=-5.0) + 0.5, x_t, x_0, sig)
    assert (elsewhere >= 0).all()


# -- the expected DSE is minimised by the exact concrete score --------------------------------


@pytest.mark.parametrize(
    "graph",
    [
        UniformGraph(3),
        AbsorbingGraph(3),
        DenseGraph(UniformGraph(3).rate_matrix() * torch.tensor([1.0, 2.0, 0.5])),
    ],
    ids=["uniform", "absorbing", "dense"],
)
@pytest.mark.parametrize("sigma", [0.05, 0.8, 3.0])
def test_expected_dse_gradient_vanishes_at_exact_score(graph: Graph, sigma: float) -> None:
    oracle = ExactOracle.random(graph, length=2, seed=7)
    x_0_all = oracle.all_sequences(data_only=True)  # [N^2, 2]
    p_0 = oracle.data_probs.reshape(-1)
    x_t_all = oracle.all_sequences()  # [S^2, 2]
    m = x_t_all.shape[0]
    sig = torch.full((m,), sigma, dtype=torch.float64)
    exact = oracle(x_t_all, sig)  # [S^2, 2, S]
    reachable = torch.isfinite(exact).all(-1).all(-1)
    init = torch.where(torch.isfinite(exact), exact, torch.zeros_like(exact))

    def expected_loss(log_score: torch.Tensor) -> torch.Tensor:
        total = torch.zeros((), dtype=torch.float64)
        for k in range(x_0_all.shape[0]):
            x_0 = x_0_all[k].expand(m, 2)
            # p(x_t | x_0) for every sequence x_t: product over positions
            p_t = graph.transition(x_0, sig).gather(-1, x_t_all.unsqueeze(-1)).squeeze(-1).prod(-1)
            keep = (p_t > 0) & reachable
            loss = denoising_score_entropy(
                graph, log_score[keep], x_t_all[keep], x_0[keep], sig[keep]
            )
            total = total + p_0[k] * (p_t[keep] * loss.sum(-1)).sum()
        return total

    log_score = init.clone().requires_grad_(True)
    expected_loss(log_score).backward()
    assert log_score.grad.abs().max() < 1e-9
    # Sanity: the test can fail; away from the exact score the gradient is not zero.
    moved = (init + 0.1).requires_grad_(True)
    expected_loss(moved).backward()
    assert moved.grad.abs().max() > 1e-3


# -- float32 stability at a GPT-2 sized vocabulary --------------------------------------------


def _optimal_log_scores(
    graph: Graph, x_t: torch.Tensor, x_0: torch.Tensor, sigma: torch.Tensor
) -> torch.Tensor:
    """log P[y, x_0] - log P[x_t, x_0] in float64 (closed forms), returned as float32."""
    s = graph.num_states
    sig = sigma.double()[:, None, None]
    if isinstance(graph, UniformGraph):
        move = torch.log(-torch.expm1(-sig)) - math.log(s)
        stay = torch.log(torch.exp(-sig) - torch.expm1(-sig) / s)
        log_p = move.expand(*x_0.shape, s).clone()
        log_p.scatter_(-1, x_0.unsqueeze(-1), stay.expand(*x_0.shape, 1))
    else:
        log_p = torch.full((*x_0.shape, s), -math.inf, dtype=torch.float64)
        log_p.scatter_(-1, x_0.unsqueeze(-1), (-sig).expand(*x_0.shape, 1))
        log_p[..., -1] = torch.log(-torch.expm1(-sig))[..., 0]
    return (log_p - log_p.gather(-1, x_t.unsqueeze(-1))).float()


@pytest.mark.parametrize("kind", ["uniform", "absorbing"])
@pytest.mark.parametrize("sigma", [1e-5, 1e-3, 0.1, 1.0, 10.0])
def test_float32_optimum_is_zero_at_gpt2_vocabulary(kind: str, sigma: float) -> None:
    vocab = 50_257
    graph = UniformGraph(vocab) if kind == "uniform" else AbsorbingGraph(vocab)
    gen = torch.Generator().manual_seed(0)
    x_0 = torch.randint(vocab, (2, 16), generator=gen)
    sig = torch.full((2,), sigma, dtype=torch.float32)
    x_t = graph.sample_transition(x_0, sig, generator=gen)
    # make sure both cases (x_t = x_0 and x_t != x_0) occur at every noise level
    x_t[0, 0] = x_0[0, 0]
    x_t[0, 1] = (x_0[0, 1] + 1) % vocab if kind == "uniform" else graph.mask_token
    optimum = _optimal_log_scores(graph, x_t, x_0, sig)
    loss = denoising_score_entropy(graph, optimum, x_t, x_0, sig)
    assert loss.dtype == torch.float32
    assert (loss >= 0).all(), loss.min()
    assert loss.max() < 1e-5, loss.max()
    # the same loss at a slightly wrong score is clearly positive where a jump was possible
    worse = denoising_score_entropy(graph, optimum.nan_to_num(neginf=-30.0) + 0.1, x_t, x_0, sig)
    assert float(worse[0, 1]) > 100 * float(loss.max())


MEMORY_PROBE = textwrap.dedent(
    """
    import resource, sys, torch
    from ddiff import AbsorbingGraph, UniformGraph
    from ddiff.losses import denoising_score_entropy
    kind, b, length, vocab = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), 50257
    graph = UniformGraph(vocab) if kind == "uniform" else AbsorbingGraph(vocab)
    g = torch.Generator().manual_seed(0)
    x_0 = torch.randint(vocab, (b, length), generator=g)
    sig = torch.rand(b, generator=g) * 5
    x_t = graph.sample_transition(x_0, sig, generator=g)
    log_score = torch.randn(b, length, graph.num_states, generator=g)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    loss = denoising_score_entropy(graph, log_score, x_t, x_0, sig)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print((after - before) * 1024)
    """
)


@pytest.mark.parametrize("kind", ["uniform", "absorbing"])
def test_dse_memory_is_linear_in_vocabulary(kind: str) -> None:
    """Peak memory of one loss call stays a small multiple of B*L*S floats (S*S would be 10 GB)."""
    b, length = 2, 256
    out = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, kind, str(b), str(length)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    peak = int(out.stdout.strip().splitlines()[-1])
    one_tensor = b * length * 50_257 * 4
    assert peak < 12 * one_tensor, (
        f"loss call grew the peak by {peak / one_tensor:.1f} x B*L*S floats"
    )


def test_dse_argument_errors() -> None:
    graph = AbsorbingGraph(4)
    x = torch.zeros(2, 3, dtype=torch.long)
    with pytest.raises(ValueError, match="log_score must have shape"):
        denoising_score_entropy(graph, torch.zeros(2, 3, 4), x, x, torch.ones(2))
    with pytest.raises(ValueError, match="x_0 holds token 4"):
        denoising_score_entropy(graph, torch.zeros(2, 3, 5), x, x + 4, torch.ones(2))
    with pytest.raises(ValueError, match="same shape"):
        denoising_score_entropy(graph, torch.zeros(2, 3, 5), x, x[:, :2], torch.ones(2))
    with pytest.raises(ValueError, match="sigma"):
        denoising_score_entropy(graph, torch.zeros(2, 3, 5), x, x, torch.ones(3))
