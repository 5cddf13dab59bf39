"""The `ScoreNet` contract, run over every backbone and parameterisation in ddiff.

The backbones come from `tests.testing.registry` (every concrete `ScoreNet` class needs a factory
in `EXAMPLES`), and every concrete `Parameterization` must be used by one of the factories.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest
import torch

from ddiff import AbsorbingGraph
from ddiff.interop import SeddScoreNet
from ddiff.nets import (
    ConvScoreNet,
    Parameterization,
    ScaledAbsorbingParameterization,
    ScoreNet,
    TransformerScoreNet,
)
from ddiff.testing import contracts
from tests.testing import registry

GRAPH = AbsorbingGraph(5)
S = GRAPH.num_states

# Factories of every concrete ScoreNet class in ddiff, with each parameterisation it supports (a
# new class needs an entry: see test_every_net_class_has_factories).
EXAMPLES: dict[type[ScoreNet], dict[str, Callable[[], ScoreNet]]] = {
    TransformerScoreNet: {
        "transformer-logscore": lambda: TransformerScoreNet.from_preset("tiny", S),
        "transformer-scaled-absorbing": lambda: TransformerScoreNet.from_preset(
            "tiny", S, parameterization=ScaledAbsorbingParameterization(GRAPH)
        ),
        "transformer-positions": lambda: TransformerScoreNet.from_preset("tiny", S, max_length=64),
    },
    ConvScoreNet: {
        "conv-logscore": lambda: ConvScoreNet(S, max_length=64, dim=16, depth=3, cond_dim=16),
        "conv-scaled-absorbing": lambda: ConvScoreNet(
            S,
            max_length=64,
            dim=16,
            depth=3,
            cond_dim=16,
            parameterization=ScaledAbsorbingParameterization(GRAPH),
        ),
    },
    SeddScoreNet: {
        "sedd-logscore": lambda: SeddScoreNet(S, dim=32, depth=1, heads=4, cond_dim=16),
        "sedd-scaled-absorbing": lambda: SeddScoreNet(
            S,
            dim=32,
            depth=1,
            heads=4,
            cond_dim=16,
            parameterization=ScaledAbsorbingParameterization(GRAPH),
        ),
    },
}
FACTORIES = registry.implementations(ScoreNet, EXAMPLES)


def test_every_net_class_has_factories() -> None:
    assert not registry.missing(ScoreNet, EXAMPLES), "add factories of these nets to EXAMPLES"


def test_every_parameterization_is_used() -> None:
    used = {type(getattr(make(), "parameterization", None)) for make in FACTORIES.values()}
    unused = [c.__name__ for c in registry.concrete_subclasses(Parameterization) if c not in used]
    assert not unused, f"no factory in EXAMPLES uses {unused}"


def perturb(net: torch.nn.Module, scale: float = 0.1, seed: int = 1) -> None:
    """Add noise to every parameter: zero-initialised heads and gates make most checks vacuous."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen, dtype=p.dtype))


@pytest.fixture(params=sorted(FACTORIES))
def make_net(request: pytest.FixtureRequest) -> Callable[[], ScoreNet]:
    def make() -> ScoreNet:
        torch.manual_seed(0)
        net = FACTORIES[request.param]()
        perturb(net)
        return net.eval()

    return make


def _inputs(batch: int, length: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    return contracts.score_net_inputs(S, batch, length, seed)


@pytest.mark.parametrize(("batch", "length"), [(1, 1), (1, 2), (3, 7), (2, 16)])
def test_shape_and_zero_at_current_token(
    make_net: Callable[[], ScoreNet], batch: int, length: int
) -> None:
    x_t, sigma = _inputs(batch, length)
    out = contracts.check_score_net_output(make_net(), x_t, sigma)
    off = torch.ones_like(out, dtype=torch.bool).scatter(-1, x_t.unsqueeze(-1), False)
    assert (out[off] != 0).all(), "a perturbed net should give non-zero log-scores elsewhere"


def test_batch_rows_are_independent(make_net: Callable[[], ScoreNet]) -> None:
    contracts.check_score_net_batch(make_net(), *_inputs(3, 9), atol=1e-5, rtol=1e-5)


def test_sigma_forms_accepted(make_net: Callable[[], ScoreNet]) -> None:
    contracts.check_score_net_sigma(make_net(), _inputs(2, 4)[0], sigma=0.7)


def test_extreme_sigma_is_finite(make_net: Callable[[], ScoreNet]) -> None:
    contracts.check_score_net_extreme_sigma(make_net(), _inputs(4, 6)[0])


def test_whole_contract(make_net: Callable[[], ScoreNet]) -> None:
    contracts.check_score_net(make_net(), GRAPH)


def test_gradients_reach_every_parameter(make_net: Callable[[], ScoreNet]) -> None:
    net = make_net().train()
    x_t, sigma = _inputs(2, 5)
    weights = torch.randn(2, 5, S, generator=torch.Generator().manual_seed(3))
    (net(x_t, sigma) * weights).sum().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name} has a non-finite gradient"
        assert p.grad.abs().sum() > 0, f"{name} has an all-zero gradient"


def test_bf16_autocast(make_net: Callable[[], ScoreNet]) -> None:
    net = make_net()
    x_t, sigma = _inputs(2, 8)
    ref = net(x_t, sigma)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = contracts.check_score_net_output(net, x_t, sigma)  # finite, 0 at x_t
    assert out.dtype in (torch.bfloat16, torch.float32)
    torch.testing.assert_close(out.float(), ref, rtol=0.05, atol=0.1)


def test_float64_module(make_net: Callable[[], ScoreNet]) -> None:
    net = make_net()
    x_t, sigma = _inputs(2, 5)
    ref = net(x_t, sigma)
    out = contracts.check_score_net_output(net.double(), x_t, sigma.double())
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, ref.double(), rtol=1e-4, atol=1e-4)


def test_state_dict_round_trip(make_net: Callable[[], ScoreNet]) -> None:
    net = make_net()
    buffer = io.BytesIO()
    torch.save(net.state_dict(), buffer)
    buffer.seek(0)
    other = make_net()
    perturb(other, seed=7)  # different weights until loaded
    x_t, sigma = _inputs(2, 6)
    assert not torch.equal(other(x_t, sigma), net(x_t, sigma))
    other.load_state_dict(torch.load(buffer, weights_only=True))
    assert torch.equal(other(x_t, sigma), net(x_t, sigma))


BAD_INPUTS = contracts.invalid_score_net_inputs(S)


@pytest.mark.parametrize("case", range(len(BAD_INPUTS)), ids=[m for _, _, m in BAD_INPUTS])
def test_invalid_inputs_raise_value_error(make_net: Callable[[], ScoreNet], case: int) -> None:
    contracts.check_score_net_arguments(make_net(), [BAD_INPUTS[case]])


def test_forward_validates_before_the_hook() -> None:
    """`ScoreNet.forward` checks the inputs, then calls `_forward`: no backbone can skip it."""
    calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    class Recording(ScoreNet):
        def _forward(self, x_t: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
            calls.append((x_t, sigma))
            return torch.zeros(*x_t.shape, self.num_states)

    net = Recording(S)
    net(torch.tensor([[0, 1]], dtype=torch.int32), 0.5)
    x_t, sigma = calls[-1]
    assert x_t.dtype == torch.int64 and sigma.shape == (1,)
    with pytest.raises(ValueError, match="outside"):
        net(torch.tensor([[0, S]]), 0.5)
    assert len(calls) == 1

    def unchecked(self: ScoreNet, x_t: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return torch.zeros(*x_t.shape, self.num_states)

    with pytest.raises(TypeError, match=r"overrides forward: implement _forward"):
        type("Unchecked", (TransformerScoreNet,), {"forward": unchecked})
