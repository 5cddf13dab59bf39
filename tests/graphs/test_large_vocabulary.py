"""Uniform and absorbing graphs at a GPT-2 vocabulary (S = 50,257) in float32, without S x S."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch

from ddiff import AbsorbingGraph, UniformGraph

VOCAB = 50_257

PROBE = textwrap.dedent(
    """
    import resource, sys, torch
    from ddiff import AbsorbingGraph, UniformGraph
    kind, b, length = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    graph = UniformGraph(50257) if kind == "uniform" else AbsorbingGraph(50257)
    g = torch.Generator().manual_seed(0)
    x_0 = torch.randint(graph.num_tokens, (b, length), generator=g)
    sigma = torch.rand(b, generator=g) * 3
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peaks = []
    x_t = graph.sample_transition(x_0, sigma, generator=g)
    for name, call in [
        ("transition", lambda: graph.transition(x_0, sigma)),
        ("transition_in", lambda: graph.transition_in(x_t, sigma)),
        ("rates_in", lambda: graph.rates_in(x_t)),
        ("rates_out", lambda: graph.rates_out(x_t)),
    ]:
        out = call()
        assert out.shape == (b, length, graph.num_states) and out.dtype == torch.float32, name
        del out
    frozen = graph.frozen_states()
    assert frozen.shape == (graph.num_states,) and frozen.dtype == torch.bool
    score = torch.rand(b, length, graph.num_states, generator=g)
    out = graph.reverse_rates(x_t, score)
    del out
    out = graph.staggered_score(score, sigma)
    del out, score
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print((peak - base) * 1024)
    """
)


def _peak_growth(kind: str, batch: int, length: int) -> int:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, kind, str(batch), str(length)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return int(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("kind", ["uniform", "absorbing"])
def test_gpt2_vocabulary_small_batch(kind: str) -> None:
    b, length = 2, 128
    growth = _peak_growth(kind, b, length)
    one = b * length * VOCAB * 4
    # S x S in float32 would be 10 GB; every member stays a few [B, L, S] tensors.
    assert growth < 8 * one, f"peak grew by {growth / one:.1f} x B*L*S floats"


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["uniform", "absorbing"])
def test_gpt2_vocabulary_batch_8_by_1024(kind: str) -> None:
    b, length = 8, 1024
    growth = _peak_growth(kind, b, length)
    assert growth < 8 * b * length * VOCAB * 4


@pytest.mark.parametrize(
    "graph", [UniformGraph(VOCAB), AbsorbingGraph(VOCAB)], ids=["uniform", "absorbing"]
)
def test_gpt2_vocabulary_values(graph: UniformGraph | AbsorbingGraph) -> None:
    x = torch.tensor([[0, 17, VOCAB - 1]])
    sigma = torch.tensor([1e-5], dtype=torch.float32)
    p = graph.transition(x, sigma)
    assert p.dtype == torch.float32
    torch.testing.assert_close(p.sum(-1), torch.ones(1, 3), atol=1e-5, rtol=0)
    stay = p.gather(-1, x.unsqueeze(-1)).squeeze(-1)
    # float32 keeps the small move probabilities accurate because they come from expm1
    move = p.scatter(-1, x.unsqueeze(-1), 0.0).sum(-1, dtype=torch.float64)
    expected = -torch.expm1(torch.tensor(-1e-5, dtype=torch.float64))
    if isinstance(graph, UniformGraph):
        expected = expected * (VOCAB - 1) / VOCAB
    torch.testing.assert_close(move, expected.expand(1, 3), rtol=1e-4, atol=0)
    assert float(stay.min()) < 1.0


def test_gpt2_vocabulary_frozen_states() -> None:
    """The closed forms, not the generic default (which does not inspect graphs this large)."""
    assert int(AbsorbingGraph(VOCAB).frozen_states().sum()) == VOCAB  # every data token
    assert not UniformGraph(VOCAB).frozen_states().any()
