"""TransformerScoreNet(time_conditioning=False): a network that does not read the noise level."""

from __future__ import annotations

import torch

from ddiff import AbsorbingGraph
from ddiff.nets import ScaledAbsorbingParameterization, TransformerScoreNet
from ddiff.nets._sigma import log_expm1
from ddiff.testing import check_score_net
from tests.nets.test_contract import perturb

GRAPH = AbsorbingGraph(4)


def _net(**kwargs: object) -> TransformerScoreNet:
    torch.manual_seed(0)
    net = TransformerScoreNet.from_preset("tiny", GRAPH.num_states, **kwargs)
    perturb(net)
    return net.eval()


def test_raw_output_does_not_depend_on_sigma() -> None:
    net = _net(time_conditioning=False)
    x_t = torch.randint(0, GRAPH.num_states, (3, 9), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        a = net.raw_output(x_t, torch.tensor([1e-4, 0.5, 20.0]))
        b = net.raw_output(x_t, torch.tensor([3.0, 3.0, 3.0]))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert net.sigma_embedding is None and "time_conditioning=False" in repr(net)
    assert net.num_parameters() < _net().num_parameters()


def test_scaled_absorbing_log_scores_shift_exactly_with_the_noise() -> None:
    """RADD: log s(x, sigma) = h(x) - log(e^sigma - 1), the factor the samplers' cache applies."""
    param = ScaledAbsorbingParameterization(GRAPH)
    net = _net(time_conditioning=False, parameterization=param)
    x_t = torch.full((2, 6), GRAPH.mask_token)
    x_t[:, 2] = 1
    s0, s1 = torch.tensor([0.3, 2.0]), torch.tensor([1e-3, 5.0])
    with torch.no_grad():
        shift = (log_expm1(s0) - log_expm1(s1))[:, None, None]
        masked = (x_t == GRAPH.mask_token)[..., None] & (torch.arange(5) < 4)
        a, b = net(x_t, s0), net(x_t, s1)
    torch.testing.assert_close((a + shift)[masked.expand_as(a)], b[masked.expand_as(b)])


def test_time_agnostic_net_keeps_the_score_net_contract() -> None:
    check_score_net(_net(time_conditioning=False), GRAPH)


def test_default_is_time_conditioned_and_unchanged() -> None:
    net = _net()
    assert net.time_conditioning and net.sigma_embedding is not None
    x_t = torch.zeros(1, 4, dtype=torch.long)
    with torch.no_grad():
        assert not torch.equal(net(x_t, torch.tensor([0.1])), net(x_t, torch.tensor([3.0])))
