"""CausalTransformer: causality, normalisation, sampling, precision, size and arguments."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from scipy import stats

from ddiff.nets import CausalTransformer, TransformerScoreNet
from tests.nets.test_contract import perturb


def _net(num_tokens: int = 5, scale: float = 0.1, **kwargs: object) -> CausalTransformer:
    """A tiny net with every weight perturbed (a zero-initialised head is the uniform model)."""
    torch.manual_seed(0)
    net = CausalTransformer.from_preset("tiny", num_tokens, **kwargs)
    perturb(net, scale=scale)
    return net.eval()


def _every_sequence(num_tokens: int, length: int) -> torch.Tensor:
    return torch.tensor(list(itertools.product(range(num_tokens), repeat=length)))


def test_untrained_net_is_the_uniform_model() -> None:
    torch.manual_seed(0)
    net = CausalTransformer.from_preset("tiny", 6)
    tokens = torch.randint(6, (3, 7))
    torch.testing.assert_close(net.log_prob(tokens), torch.full((3, 7), -math.log(6)))
    torch.testing.assert_close(net.nll(tokens), torch.full((3,), 7 * math.log(6)))


def test_causal_a_token_changes_only_later_predictions() -> None:
    net = _net()
    tokens = torch.randint(5, (1, 6), generator=torch.Generator().manual_seed(1))
    logits, log_p = net(tokens), net.log_prob(tokens)
    for j in range(6):
        changed = tokens.clone()
        changed[0, j] = (tokens[0, j] + 1) % 5
        new_logits, new_log_p = net(changed), net.log_prob(changed)
        # Predictions for positions <= j read only x^{<j}: unchanged. The log-probability at j
        # scores the new token, so only positions < j keep theirs.
        torch.testing.assert_close(new_logits[0, : j + 1], logits[0, : j + 1], rtol=0, atol=1e-6)
        torch.testing.assert_close(new_log_p[0, :j], log_p[0, :j], rtol=0, atol=1e-6)
        for i in range(j + 1, 6):
            assert (new_logits[0, i] - logits[0, i]).abs().max() > 1e-4, (j, i)


def test_probabilities_of_every_sequence_sum_to_one() -> None:
    net = _net(num_tokens=3, scale=0.3).double()
    every = _every_sequence(3, 3)
    with torch.no_grad():
        nll = net.nll(every)
    assert nll.dtype == torch.float64
    assert abs(float(torch.exp(-nll).sum()) - 1.0) < 1e-5
    assert float(nll.std()) > 0.1  # and the model is far from uniform: the check is not vacuous


@pytest.mark.parametrize("num_tokens", [2, 3])
def test_samples_follow_the_model(num_tokens: int) -> None:
    net = _net(num_tokens=num_tokens)  # sequence probabilities from 0.001 to 0.7
    num = 20_000
    x = net.sample(num, 3, generator=torch.Generator().manual_seed(2))
    assert x.shape == (num, 3) and x.dtype == torch.long
    every = _every_sequence(num_tokens, 3)
    with torch.no_grad():
        probs = torch.exp(-net.double().nll(every))
    index = (x * torch.tensor([num_tokens**2, num_tokens, 1])).sum(dim=-1)
    counts = torch.bincount(index, minlength=num_tokens**3).double()
    expected = probs / probs.sum() * num
    assert stats.chisquare(counts.numpy(), expected.numpy()).pvalue > 1e-4


def test_log_prob_is_float32_under_bf16_autocast() -> None:
    net = _net()
    tokens = torch.randint(5, (4, 8), generator=torch.Generator().manual_seed(3))
    reference = net.log_prob(tokens)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert net(tokens).dtype == torch.bfloat16
        log_p = net.log_prob(tokens)
        nll = net.nll(tokens)
    assert log_p.dtype == torch.float32 and nll.dtype == torch.float32
    assert (log_p - reference).abs().max() < 0.1  # bf16 matmuls, float32 log-softmax
    nll.sum().backward()
    assert all(p.grad is None or p.grad.dtype == torch.float32 for p in net.parameters())


def test_same_blocks_as_the_diffusion_network_of_the_same_preset() -> None:
    ar = CausalTransformer.from_preset("tiny", 4)
    diffusion = TransformerScoreNet.from_preset("tiny", 4)
    shapes = {k: v.shape for k, v in ar.state_dict().items() if k.startswith("trunk.blocks.")}
    assert shapes == {
        k: v.shape for k, v in diffusion.state_dict().items() if k.startswith("trunk.blocks.")
    }
    # The diffusion net also has the noise embedding and uses its modulation weights; the
    # AR net's modulation weights multiply a zero conditioning and are not counted.
    sigma_embedding = sum(p.numel() for p in diffusion.sigma_embedding.parameters())
    modulation = sum(
        p.numel() for k, p in diffusion.named_parameters() if k.endswith("modulation.weight")
    )
    assert ar.num_parameters() == diffusion.num_parameters() - sigma_embedding - modulation


def test_small_preset_is_gpt2_small_sized() -> None:
    with torch.device("meta"):
        net = CausalTransformer.from_preset("small", 50_257)
    assert 84e6 <= net.num_parameters() <= 86e6  # GPT-2 small: 85M non-embedding
    embedding_and_head = 50_258 * 768 + 768 * 50_257 + 50_257
    assert net.num_parameters(non_embedding=False) == net.num_parameters() + embedding_and_head


def test_invalid_inputs_are_refused_with_the_position() -> None:
    net = _net()
    with pytest.raises(ValueError, match="integer token ids"):
        net(torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"shape \[batch, length\]"):
        net(torch.zeros(3, dtype=torch.long))
    bad = torch.zeros(2, 4, dtype=torch.long)
    bad[1, 2] = 5  # BOS is an input id, never a token
    with pytest.raises(ValueError, match=r"token 5 at \[batch 1, position 2\].*num_tokens = 5"):
        net.log_prob(bad)
    with pytest.raises(ValueError, match="num_tokens"):
        CausalTransformer(1)
    with pytest.raises(ValueError, match="dim / heads"):
        CausalTransformer(4, dim=30, heads=4)
    with pytest.raises(ValueError, match="unknown preset"):
        CausalTransformer.from_preset("huge", 4)
    with pytest.raises(ValueError, match="num must be a positive integer"):
        net.sample(0, 3)
    with pytest.raises(ValueError, match="length must be a positive integer"):
        net.sample(2, 0)
