"""Rotary position embeddings: rotations, relative positions, argument checks."""

from __future__ import annotations

import pytest
import torch

from ddiff.nets.rotary import apply_rotary, rotary_cos_sin


def _rotate(x: torch.Tensor) -> torch.Tensor:
    cos, sin = rotary_cos_sin(x.shape[-2], x.shape[-1], dtype=x.dtype)
    return apply_rotary(x, cos, sin)


def test_rotation_preserves_norm_and_fixes_position_zero() -> None:
    x = torch.randn(2, 3, 10, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    y = _rotate(x)
    torch.testing.assert_close(y.norm(dim=-1), x.norm(dim=-1))
    torch.testing.assert_close(y[..., 0, :], x[..., 0, :])
    assert not torch.allclose(y[..., 1:, :], x[..., 1:, :])


def test_scores_depend_only_on_relative_position() -> None:
    gen = torch.Generator().manual_seed(1)
    q, k = (
        torch.randn(16, dtype=torch.float64, generator=gen),
        torch.randn(16, generator=gen).double(),
    )
    length = 12
    rq = _rotate(q.expand(length, 16).clone())  # the same query at every position
    rk = _rotate(k.expand(length, 16).clone())
    scores = rq @ rk.T  # scores[m, n] = <R_m q, R_n k>
    for offset in range(-length + 1, length):
        diagonal = torch.diagonal(scores, offset=offset)
        torch.testing.assert_close(diagonal, diagonal[:1].expand_as(diagonal))


def test_dtype_follows_input() -> None:
    x = torch.randn(1, 4, 6).bfloat16()
    cos, sin = rotary_cos_sin(4, 6)
    assert apply_rotary(x, cos, sin).dtype == torch.bfloat16


def test_argument_checks() -> None:
    with pytest.raises(ValueError, match="even head_dim"):
        rotary_cos_sin(4, 5)
    cos, sin = rotary_cos_sin(4, 6)
    with pytest.raises(ValueError, match="rotary tables must have shape"):
        apply_rotary(torch.zeros(1, 5, 6), cos, sin)
