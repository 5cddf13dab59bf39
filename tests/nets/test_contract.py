"""The `ScoreNet` contract, run over every backbone and parameterisation (one line per net)."""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest
import torch

from ddiff import AbsorbingGraph
from ddiff.nets import ScaledAbsorbingParameterization, ScoreNet, TransformerScoreNet

GRAPH = AbsorbingGraph(5)
S = GRAPH.num_states

FACTORIES: dict[str, Callable[[], ScoreNet]] = {
    "transformer-logscore": lambda: TransformerScoreNet.from_preset("tiny", S),
    "transformer-scaled-absorbing": lambda: TransformerScoreNet.from_preset(
        "tiny", S, parameterization=ScaledAbsorbingParameterization(GRAPH)
    ),
}


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
    gen = torch.Generator().manual_seed(seed)
    x_t = torch.randint(0, S, (batch, length), generator=gen)
    sigma = torch.rand(batch, generator=gen) * 3.0 + 1e-3
    return x_t, sigma


def _assert_zero_at_current(out: torch.Tensor, x_t: torch.Tensor) -> None:
    assert (out.gather(-1, x_t.unsqueeze(-1)) == 0).all()


@pytest.mark.parametrize(("batch", "length"), [(1, 1), (1, 2), (3, 7), (2, 16)])
def test_shape_and_zero_at_current_token(
    make_net: Callable[[], ScoreNet], batch: int, length: int
) -> None:
    net = make_net()
    x_t, sigma = _inputs(batch, length)
    out = net(x_t, sigma)
    assert out.shape == (batch, length, net.num_states)
    assert torch.isfinite(out).all()
    _assert_zero_at_current(out, x_t)
    off = torch.ones_like(out, dtype=torch.bool).scatter(-1, x_t.unsqueeze(-1), False)
    assert (out[off] != 0).all(), "a perturbed net should give non-zero log-scores elsewhere"


def test_batch_rows_are_independent(make_net: Callable[[], ScoreNet]) -> None:
    net = make_net()
    x_t, sigma = _inputs(3, 9)
    together = net(x_t, sigma)
    for b in range(3):
        alone = net(x_t[b : b + 1], sigma[b : b + 1])
        torch.testing.assert_close(together[b : b + 1], alone, rtol=1e-5, atol=1e-5)


def test_sigma_forms_accepted(make_net: Callable[[], ScoreNet]) -> None:
    net = make_net()
    x_t, _ = _inputs(2, 4)
    ref = net(x_t, torch.tensor([0.7, 0.7]))
    torch.testing.assert_close(net(x_t, torch.tensor(0.7)), ref)
    torch.testing.assert_close(net(x_t, torch.tensor([[0.7], [0.7]])), ref)


def test_extreme_sigma_is_finite(make_net: Callable[[], ScoreNet]) -> None:
    net = make_net()
    x_t, _ = _inputs(4, 6)
    sigma = torch.tensor([0.0, 1e-5, 20.0, float("inf")])
    out = net(x_t, sigma)
    assert torch.isfinite(out).all()
    _assert_zero_at_current(out, x_t)
    out.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)


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
        out = net(x_t, sigma)
    assert out.dtype in (torch.bfloat16, torch.float32)
    assert torch.isfinite(out).all()
    _assert_zero_at_current(out, x_t)
    torch.testing.assert_close(out.float(), ref, rtol=0.05, atol=0.1)


def test_float64_module(make_net: Callable[[], ScoreNet]) -> None:
    net = make_net()
    x_t, sigma = _inputs(2, 5)
    ref = net(x_t, sigma)
    out = net.double()(x_t, sigma.double())
    assert out.dtype == torch.float64
    _assert_zero_at_current(out, x_t)
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


BAD_INPUTS = [
    (lambda: torch.zeros(4, dtype=torch.long), torch.ones(1), "shape \\[batch, length\\]"),
    (lambda: torch.zeros(1, 2, 3, dtype=torch.long), torch.ones(1), "shape \\[batch, length\\]"),
    (lambda: torch.zeros(1, 0, dtype=torch.long), torch.ones(1), "length >= 1"),
    (lambda: torch.zeros(1, 3), torch.ones(1), "integer token ids"),
    (lambda: torch.tensor([[0, S]]), torch.ones(1), f"token {S} at \\[batch 0, position 1\\]"),
    (lambda: torch.tensor([[-1, 0]]), torch.ones(1), "token -1"),
    (lambda: torch.zeros(2, 3, dtype=torch.long), torch.ones(3), "shape \\[batch\\] = \\[2\\]"),
    (lambda: torch.zeros(2, 3, dtype=torch.long), torch.ones(2, 3), "shape \\[batch\\]"),
    (lambda: torch.zeros(1, 3, dtype=torch.long), torch.tensor([-1.0]), ">= 0"),
    (lambda: torch.zeros(1, 3, dtype=torch.long), torch.tensor([float("nan")]), ">= 0"),
]


@pytest.mark.parametrize(("make_x", "sigma", "match"), BAD_INPUTS)
def test_invalid_inputs_raise_value_error(
    make_net: Callable[[], ScoreNet],
    make_x: Callable[[], torch.Tensor],
    sigma: torch.Tensor,
    match: str,
) -> None:
    net = make_net()
    with pytest.raises(ValueError, match=match):
        net(make_x(), sigma)
