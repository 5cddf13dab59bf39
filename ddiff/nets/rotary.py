"""Rotary position embeddings (RoPE) for attention heads."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["apply_rotary", "rotary_cos_sin"]


def rotary_cos_sin(
    length: int,
    head_dim: int,
    *,
    base: float = 10000.0,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[Tensor, Tensor]:
    r"""Cosines and sines of the rotary angles, each `[length, head_dim]`.

    Position m rotates the pair of channels $(j, j + d/2)$ by the angle
    $m\,\theta_j$, $\theta_j = \text{base}^{-2j/d}$ (Su et al., *RoFormer: Enhanced Transformer
    with Rotary Position Embedding*, 2021; the "rotate half" channel pairing of GPT-NeoX). The
    angles are computed in float32 (or `dtype` if wider) and returned in `dtype`.

    Args:
        length: number of positions L.
        head_dim: channels per attention head d (even).
        base: the wavelength base.
        device: where to build the tables.
        dtype: dtype of the returned tables.

    Example:
        >>> from ddiff.nets.rotary import rotary_cos_sin
        >>> cos, sin = rotary_cos_sin(3, 4)
        >>> cos.shape, float(cos[0].min()), float(sin[0].abs().max())
        (torch.Size([3, 4]), 1.0, 0.0)
    """
    if head_dim < 2 or head_dim % 2:
        raise ValueError(f"rotary embeddings need an even head_dim >= 2, got {head_dim}")
    work = torch.promote_types(dtype, torch.float32)
    inv_freq = base ** (-torch.arange(0, head_dim, 2, device=device, dtype=work) / head_dim)
    angles = torch.arange(length, device=device, dtype=work)[:, None] * inv_freq[None, :]
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos().to(dtype), angles.sin().to(dtype)


def apply_rotary(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    r"""Rotate queries or keys `x` `[..., L, d]` by position: $x \cos + \mathrm{rot}(x) \sin$.

    $\mathrm{rot}(x) = (-x_{d/2:}, x_{:d/2})$. The dot product of a rotated query at position m
    and a rotated key at position n depends on the positions only through $m - n$. The result
    has `x`'s dtype (the tables are cast to it, as under autocast).

    Args:
        x: `[..., length, head_dim]`.
        cos: `[length, head_dim]` from `rotary_cos_sin`.
        sin: `[length, head_dim]` from `rotary_cos_sin`.
    """
    if cos.shape != x.shape[-2:] or sin.shape != x.shape[-2:]:
        raise ValueError(
            f"rotary tables must have shape [length, head_dim] = {list(x.shape[-2:])}, got "
            f"{list(cos.shape)} and {list(sin.shape)}"
        )
    x1, x2 = x.chunk(2, dim=-1)
    rotated = torch.cat([-x2, x1], dim=-1)
    return x * cos.to(x.dtype) + rotated * sin.to(x.dtype)
