"""`ddiff.eval.bits_per_token`: the bound of exact scores and an exact likelihood, with errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from ddiff import AbsorbingGraph, LogLinearSchedule, UniformGraph
from ddiff.eval import bits_per_token
from ddiff.nets import CausalTransformer
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
    schedule = LogLinearSchedule(survival=0.0 if isinstance(graph, AbsorbingGraph) else 1e-3)
    source = MarkovSource.random(2, 3, seed=1, concentration=1.0)
    grid = torch.cartesian_prod(*[torch.arange(2)] * 3)
    p0 = source.nll(grid).neg().exp().reshape(2, 2, 2)
    x = source.sample(64, torch.Generator().manual_seed(1))
    estimate = bits_per_token((ExactOracle(graph, p0), graph, schedule), x, num_t=64, seed=2)
    exact = float((source.nll(x) / math.log(2)).sum() / x.numel())
    # The prior term of the uniform graph at eps = 1e-3 adds a little; 5 MC errors + 1e-3.
    assert abs(estimate.bits_per_token - exact) < 5 * estimate.mc_stderr + 1e-3
    assert not estimate.exact and estimate.num_t == 64


class RecordingScores(nn.Module):
    """Exact scores as a module that records its training mode and grad mode at each call."""

    def __init__(self, oracle: ExactOracle) -> None:
        super().__init__()
        self.oracle = oracle
        self.dropout = nn.Dropout(0.5)  # a submodule whose mode must come back as it was
        self.calls: list[tuple[bool, bool]] = []

    def forward(self, x_t: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        self.calls.append((self.training, torch.is_grad_enabled()))
        return self.oracle(x_t, sigma)


def perturbed_causal_transformer(dropout: float = 0.0) -> CausalTransformer:
    torch.manual_seed(0)
    net = CausalTransformer(4, dim=32, depth=1, heads=2, cond_dim=32, dropout=dropout)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=torch.Generator().manual_seed(1)))
    return net


def test_exact_statistics_of_an_autoregressive_network() -> None:
    net = perturbed_causal_transformer(dropout=0.5)
    net.train()
    net.trunk.blocks[0].eval()  # a mixed state: every submodule gets its own mode back
    modes = [m.training for m in net.modules()]
    tokens = torch.randint(4, (9, 6), generator=torch.Generator().manual_seed(3))
    lengths = torch.tensor([6, 2, 5, 6, 1, 3, 6, 4, 6])
    result = bits_per_token(net, tokens, lengths=lengths, batch_size=4)
    assert [m.training for m in net.modules()] == modes
    with torch.no_grad():
        nats = net.eval().nll(tokens).double()  # scored in eval mode: no dropout
    assert result.exact and result.num_t == 0 and result.mc_stderr == 0.0
    assert result.num_sequences == 9
    n, ell = nats.numpy() / math.log(2), lengths.double().numpy()
    ratio = n.sum() / ell.sum()
    assert result.bits_per_token == pytest.approx(ratio, rel=1e-12)
    # Delta method for a ratio of means: sd(n - ratio * l) / (sqrt(B) mean(l)).
    stderr = np.std(n - ratio * ell, ddof=1) / (math.sqrt(9) * ell.mean())
    assert result.stderr == pytest.approx(stderr, rel=1e-9)
    np.testing.assert_allclose(result.per_sequence, n / ell, rtol=1e-12)
    # The batches are only a matter of memory.
    for batch_size in (1, 9, 256):
        again = bits_per_token(net, tokens, lengths=lengths, batch_size=batch_size)
        assert again.bits_per_token == pytest.approx(ratio, rel=1e-6)
        assert again.stderr == pytest.approx(stderr, rel=1e-5)
    # With equal lengths it is the usual standard error of the mean, per token.
    full = bits_per_token(net, tokens)
    per_token = nats.numpy() / math.log(2) / 6
    assert full.stderr == pytest.approx(np.std(per_token, ddof=1) / 3, rel=1e-9)
    assert math.isnan(bits_per_token(net, tokens[:1]).stderr)


def test_the_bound_scores_in_eval_mode_without_gradients() -> None:
    graph, schedule = AbsorbingGraph(2), LogLinearSchedule(survival=0.0)
    p0 = torch.tensor([[0.7, 0.1], [0.1, 0.1]], dtype=torch.float64)
    oracle = ExactOracle(graph, p0)
    scores = RecordingScores(oracle).train()
    scores.dropout.eval()
    x = torch.tensor([[0, 0], [1, 1], [0, 0], [0, 1]])
    estimate = bits_per_token((scores, graph, schedule), x, num_t=8, seed=3)
    assert scores.calls and set(scores.calls) == {(False, False)}
    assert scores.training and not scores.dropout.training
    same = bits_per_token((oracle, graph, schedule), x, num_t=8, seed=3)
    assert estimate.bits_per_token == same.bits_per_token
    bad = x.clone()
    bad[2, 1] = 2
    with pytest.raises(ValueError, match=r"token 2 at \[batch 2, position 1\].*the graph"):
        bits_per_token((oracle, graph, schedule), bad)


def test_lengths_divide_per_sequence() -> None:
    source = MarkovSource.random(3, 4, seed=0)
    x = source.sample(10, torch.Generator().manual_seed(0))
    lengths = torch.tensor([4, 2] * 5)
    estimate = bits_per_token(MarkovModel(source), x, lengths=lengths)
    nats = source.nll(x)
    assert estimate.per_sequence == pytest.approx((nats / lengths / math.log(2)).numpy())
    assert estimate.bits_per_token == pytest.approx(float(nats.sum() / lengths.sum() / math.log(2)))


def test_errors() -> None:
    with pytest.raises(ValueError, match=r"tokens must be an integer tensor \[N, L\]"):
        bits_per_token(None, torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"tokens must be an integer tensor \[N, L\]"):
        bits_per_token(None, torch.zeros(3, 0, dtype=torch.long))
    with pytest.raises(ValueError, match="integer token ids"):
        bits_per_token(None, torch.zeros(3, 2))
    with pytest.raises(TypeError, match="model must be a Pretrained"):
        bits_per_token(object(), torch.zeros(2, 3, dtype=torch.long))

    net = perturbed_causal_transformer()
    tokens = torch.randint(4, (9, 6), generator=torch.Generator().manual_seed(3))
    lengths = torch.tensor([6, 2, 5, 6, 1, 3, 6, 4, 6])
    with pytest.raises(ValueError, match=r"lengths must be \[9\] integers"):
        bits_per_token(net, tokens, lengths=lengths[:5])
    with pytest.raises(ValueError, match=r"lengths must be \[9\] integers.*torch.float32"):
        bits_per_token(net, tokens, lengths=lengths.float())
    with pytest.raises(ValueError, match=r"lengths must be in \[1, 6\].*lengths\[0\] = 7"):
        bits_per_token(net, tokens, lengths=lengths + 1)
    with pytest.raises(ValueError, match=r"lengths must be in \[1, 6\].*lengths\[4\] = 0"):
        bits_per_token(net, tokens, lengths=lengths - 1)
    bad = tokens.clone()
    bad[7, 1] = 4
    with pytest.raises(ValueError, match=r"token 4 at \[batch 7, position 1\]"):
        bits_per_token(net, bad, batch_size=4)
    for batch_size in (0, 2.0, True):
        with pytest.raises(ValueError, match="batch_size must be a positive integer"):
            bits_per_token(net, tokens, batch_size=batch_size)  # type: ignore[arg-type]
