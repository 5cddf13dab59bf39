"""`SeddScoreNet` computes what the reference SEDD network computes (vectors from the reference)."""

from __future__ import annotations

import pytest
import torch

from ddiff import AbsorbingGraph, UniformGraph
from ddiff.interop import SeddScoreNet
from ddiff.nets import ScaledAbsorbingParameterization
from ddiff.testing import check_score_net
from tests.interop import _fixtures as fx

TOLERANCE = 1e-5  # float32, max absolute difference


def net_for(name: str) -> SeddScoreNet:
    c = fx.case(name)["config_json"]
    tokens, model = c["tokens"], c["model"]
    graph = AbsorbingGraph(tokens) if c["graph"]["type"] == "absorb" else UniformGraph(tokens)
    param = ScaledAbsorbingParameterization(graph) if model["scale_by_sigma"] else None
    net = SeddScoreNet(
        graph.num_states,
        dim=model["hidden_size"],
        depth=model["n_blocks"],
        heads=model["n_heads"],
        cond_dim=model["cond_dim"],
        dropout=model["dropout"],
        parameterization=param,
    )
    net.load_state_dict(fx.weights(fx.case(name)["weights"]), strict=True)
    return net.eval()


@pytest.mark.parametrize("name", fx.HF_CASES)
def test_output_equals_the_reference(name: str) -> None:
    tokens, sigma = fx.inputs(name)
    expected = fx.output(name)
    with torch.no_grad():
        got = net_for(name)(tokens, sigma)
    assert got.dtype == torch.float32
    assert float((got - expected).abs().max()) < TOLERANCE
    # The vectors are not degenerate: outputs of a few units that vary over states and noise.
    assert float(expected.abs().max()) > 1.0 and float(expected.std()) > 0.3


def test_parameters_are_registered_in_the_reference_order() -> None:
    # The EMA's shadow_params are a list in this order: load_sedd matches them by position.
    net = net_for("absorb_loglinear_scaled")
    assert [n for n, p in net.named_parameters() if p.requires_grad] == fx.vectors()[
        "parameter_order"
    ]
    assert set(net.state_dict()) == set(fx.weights("weights_a.safetensors"))


def test_contract_and_infinite_sigma() -> None:
    graph = AbsorbingGraph(7)
    net = SeddScoreNet(
        graph.num_states,
        dim=32,
        depth=2,
        heads=4,
        cond_dim=16,
        parameterization=ScaledAbsorbingParameterization(graph),
    )
    net.load_state_dict(fx.weights("weights_a.safetensors"))
    net.eval()
    check_score_net(net, graph)  # finite at sigma 0 and inf, 0 at the current token, ...
    tokens, _ = fx.inputs("absorb_loglinear_scaled")
    huge = net(tokens, torch.full((3,), 1e4))
    assert torch.equal(net(tokens, torch.full((3,), torch.inf)), huge)


def test_dropout_in_training_mode_only() -> None:
    net = net_for("uniform_geometric")
    tokens, sigma = fx.inputs("uniform_geometric")
    torch.manual_seed(0)
    trained = net.train()(tokens, sigma).detach()
    assert float((trained - fx.output("uniform_geometric")).abs().max()) > 1e-2
    assert (
        float((net.eval()(tokens, sigma).detach() - fx.output("uniform_geometric")).abs().max())
        < 1e-5
    )


def test_bad_sizes() -> None:
    with pytest.raises(ValueError, match="dim / heads must be an even integer"):
        SeddScoreNet(5, dim=30, depth=1, heads=4, cond_dim=8)
    with pytest.raises(ValueError, match="depth must be a positive integer"):
        SeddScoreNet(5, dim=32, depth=0, heads=4, cond_dim=8)
    with pytest.raises(ValueError, match="is for 6 states but the network has 5"):
        SeddScoreNet(
            5,
            dim=32,
            depth=1,
            heads=4,
            cond_dim=8,
            parameterization=ScaledAbsorbingParameterization(AbsorbingGraph(5)),
        )
