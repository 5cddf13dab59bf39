"""`ddiff.eval.bits_per_token`: the bound of exact scores and an exact likelihood, with errors."""

from __future__ import annotations

import math

import pytest
import torch

from ddiff import AbsorbingGraph, LogLinearSchedule, UniformGraph
from ddiff.eval import bits_per_token
from ddiff.testing import ExactOracle, MarkovSource


class MarkovModel:
    """An exact autoregressive model: `nll` from the source itself."""

    def __init__(self, source: MarkovSource) -> None:
        self.source = source

    def nll(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.source.nll(tokens)


def test_exact_likelihood_and_its_standard_error() -> None:
    source = MarkovSource.random(3, 6, seed=0)
    x = source.sample(4000, torch.Generator().manual_seed(0))
    estimate = bits_per_token(MarkovModel(source), x)
    assert estimate.exact and estimate.num_t == 0 and estimate.mc_stderr == 0.0
    nll_bits = source.nll(x) / math.log(2) / 6
    assert estimate.bits_per_token == pytest.approx(float(nll_bits.mean()), rel=1e-12)
    assert estimate.stderr == pytest.approx(float(nll_bits.std() / math.sqrt(4000)), rel=1e-3)
    # The estimate covers the exact entropy.
    h = source.entropy_per_token("bits")
    assert abs(estimate.bits_per_token - h) < 4 * estimate.stderr
    assert "exact NLL, 4000 sequences" in str(estimate)


@pytest.mark.parametrize(
    "graph", [AbsorbingGraph(2), UniformGraph(2)], ids=["absorbing", "uniform"]
)
def test_bound_of_exact_scores_is_the_exact_likelihood(graph) -> None:
    # With exact scores and a schedule that reaches the limit, the bound equals -log p0(x).
    schedule = LogLinearSchedule(eps=0.0 if isinstance(graph, AbsorbingGraph) else 1e-3)
    source = MarkovSource.random(2, 3, seed=1, concentration=1.0)
    grid = torch.cartesian_prod(*[torch.arange(2)] * 3)
    p0 = source.nll(grid).neg().exp().reshape(2, 2, 2)
    x = source.sample(64, torch.Generator().manual_seed(1))
    estimate = bits_per_token((ExactOracle(graph, p0), graph, schedule), x, num_t=64, seed=2)
    exact = float((source.nll(x) / math.log(2)).sum() / x.numel())
    # The prior term of the uniform graph at eps = 1e-3 adds a little; 5 MC errors + 1e-3.
    assert abs(estimate.bits_per_token - exact) < 5 * estimate.mc_stderr + 1e-3
    assert not estimate.exact and estimate.num_t == 64


def test_lengths_divide_per_sequence() -> None:
    source = MarkovSource.random(3, 4, seed=0)
    x = source.sample(10, torch.Generator().manual_seed(0))
    lengths = torch.tensor([4, 2] * 5)
    estimate = bits_per_token(MarkovModel(source), x, lengths=lengths)
    nats = source.nll(x)
    assert estimate.per_sequence == pytest.approx((nats / lengths / math.log(2)).numpy())
    assert estimate.bits_per_token == pytest.approx(float(nats.sum() / lengths.sum() / math.log(2)))


def test_errors() -> None:
    with pytest.raises(ValueError, match=r"tokens must be a LongTensor \[N, L\]"):
        bits_per_token(None, torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="integer token ids"):
        bits_per_token(None, torch.zeros(3, 2))
    with pytest.raises(ValueError, match=r"lengths must be \[2\] positive"):
        bits_per_token(None, torch.zeros(2, 3, dtype=torch.long), lengths=torch.tensor([1, 0]))
    with pytest.raises(TypeError, match="model must be a Pretrained"):
        bits_per_token(object(), torch.zeros(2, 3, dtype=torch.long))
