"""Parameterisations: exact shift against a float64 reference, zero at the current token."""

from __future__ import annotations

import math

import pytest
import torch

from ddiff import AbsorbingGraph, DenseGraph, UniformGraph
from ddiff.nets import LogScoreParameterization, Parameterization, ScaledAbsorbingParameterization
from ddiff.nets._sigma import log_expm1

SIGMAS = [1e-8, 1e-5, 1e-3, 0.5, 0.999, 1.0, 1.001, 5.0, 20.0, 88.0, 100.0, 1e4]


def _raw(batch: int, length: int, states: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.randn(batch, length, states, generator=torch.Generator().manual_seed(0)).to(dtype)


def _tokens(batch: int, length: int, states: int) -> torch.Tensor:
    return torch.randint(0, states, (batch, length), generator=torch.Generator().manual_seed(1))


def test_log_score_is_raw_except_at_current_token() -> None:
    raw, x_t = _raw(2, 5, 4), _tokens(2, 5, 4)
    out = LogScoreParameterization()(raw, x_t, torch.ones(2))
    assert torch.equal(out, raw.scatter(-1, x_t.unsqueeze(-1), 0.0))
    bf16 = LogScoreParameterization()(raw.bfloat16(), x_t, torch.ones(2))
    assert bf16.dtype == torch.bfloat16  # no upcast of a [B, L, S] tensor for nothing


@pytest.mark.parametrize("num_tokens", [1, 2, 5, 50_257])
def test_scaled_absorbing_subtracts_exact_shift(num_tokens: int) -> None:
    param = ScaledAbsorbingParameterization(AbsorbingGraph(num_tokens))
    states, batch = num_tokens + 1, len(SIGMAS)
    raw = _raw(batch, 2, states, torch.float64)
    x_t = _tokens(batch, 2, states)
    sigma = torch.tensor(SIGMAS, dtype=torch.float64)
    # Reference in Python float64: math.expm1 is exact to the last bit; e^sigma - 1 for large sigma.
    shift = torch.tensor(
        [math.log(math.expm1(s)) if s < 700 else s for s in SIGMAS], dtype=torch.float64
    ) + math.log(num_tokens)
    expected = (raw - shift[:, None, None]).scatter(-1, x_t.unsqueeze(-1), 0.0)

    out64 = param(raw, x_t, sigma)
    assert out64.dtype == torch.float64
    torch.testing.assert_close(out64, expected, rtol=1e-13, atol=1e-13)

    out32 = param(raw.float(), x_t, sigma.float())
    assert out32.dtype == torch.float32
    torch.testing.assert_close(out32, expected.float(), rtol=2e-6, atol=2e-6)
    assert (out32.gather(-1, x_t.unsqueeze(-1)) == 0).all()


def test_scaled_absorbing_upcasts_bf16() -> None:
    param = ScaledAbsorbingParameterization(AbsorbingGraph(3))
    raw, x_t = torch.zeros(1, 1, 4, dtype=torch.bfloat16), torch.tensor([[3]])
    out = param(raw, x_t, torch.tensor([1e-5], dtype=torch.bfloat16))
    assert out.dtype == torch.float32
    sigma = float(torch.tensor(1e-5, dtype=torch.bfloat16))  # the bf16 value actually passed
    expected = -(math.log(math.expm1(sigma)) + math.log(3))
    assert float(out[0, 0, 0]) == pytest.approx(expected, rel=1e-6)


def test_scaled_absorbing_extreme_sigma_finite() -> None:
    param = ScaledAbsorbingParameterization(AbsorbingGraph(1))  # N = 1: log N = 0, not log 0
    raw = _raw(3, 2, 2).requires_grad_(True)
    out = param(raw, _tokens(3, 2, 2), torch.tensor([0.0, 20.0, float("inf")]))
    assert torch.isfinite(out).all()
    out.sum().backward()
    assert raw.grad is not None and torch.isfinite(raw.grad).all()


@pytest.mark.parametrize("graph", [UniformGraph(4), DenseGraph(UniformGraph(3).rate_matrix())])
def test_scaled_absorbing_needs_absorbing_graph(graph: object) -> None:
    with pytest.raises(TypeError, match="needs an AbsorbingGraph"):
        ScaledAbsorbingParameterization(graph)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("raw_shape", "x_shape", "sigma_shape", "match"),
    [
        ((2, 3), (2, 3), (2,), "raw must have shape"),
        ((2, 3, 4), (2, 4), (2,), "x_t must have shape \\[batch, length\\] = \\[2, 3\\]"),
        ((2, 3, 4), (2, 3), (3,), "sigma must have shape \\[batch\\] = \\[2\\]"),
        ((2, 3, 5), (2, 3), (2,), "expects 4 states"),
    ],
)
def test_shape_errors(
    raw_shape: tuple[int, ...], x_shape: tuple[int, ...], sigma_shape: tuple[int, ...], match: str
) -> None:
    param = ScaledAbsorbingParameterization(AbsorbingGraph(3))
    with pytest.raises(ValueError, match=match):
        param(
            torch.zeros(raw_shape), torch.zeros(x_shape, dtype=torch.long), torch.ones(sigma_shape)
        )


def test_base_class_guarantees_zero_at_current_token() -> None:
    class Shifted(Parameterization):
        def transform(
            self, raw: torch.Tensor, x_t: torch.Tensor, sigma: torch.Tensor
        ) -> torch.Tensor:
            return raw + 1.0

    x_t = _tokens(2, 3, 4)
    out = Shifted()(torch.zeros(2, 3, 4), x_t, torch.ones(2))
    assert torch.equal(out, torch.ones(2, 3, 4).scatter(-1, x_t.unsqueeze(-1), 0.0))
    assert repr(Shifted()) == "Shifted()"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_log_expm1_accurate_everywhere(dtype: torch.dtype) -> None:
    x = torch.tensor(SIGMAS, dtype=dtype)
    expected = torch.tensor(
        [math.log(math.expm1(s)) if s < 700 else s for s in SIGMAS], dtype=torch.float64
    )
    tol = 1e-6 if dtype == torch.float32 else 1e-14
    torch.testing.assert_close(log_expm1(x).double(), expected, rtol=tol, atol=tol)
