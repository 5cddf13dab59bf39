"""Categorical draws (internal).

Draws are made by inverting the cumulative distribution in float64 by default: with float32
uniforms (or float32 Gumbel noise) the smallest probabilities are under-sampled, which lowers the
effective temperature and makes samples look better than they are.
"""

from __future__ import annotations

import torch
from torch import Tensor


def sample_categorical(
    probs: Tensor,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
) -> Tensor:
    """Draw one index per row of `probs` (`[..., S]`, non-negative, need not be normalised).

    Args:
        probs: unnormalised probabilities along the last axis.
        generator: source of randomness; `None` uses torch's global generator.
        dtype: floating type of the uniforms and of the cumulative sums (float64 by default).

    Returns:
        LongTensor of shape `probs.shape[:-1]`.
    """
    cdf = probs.to(dtype).cumsum(dim=-1)
    total = cdf[..., -1:]
    if not bool((total > 0).all()) or not bool(torch.isfinite(total).all()):
        raise ValueError("every row of probs must have a positive, finite sum")
    u = torch.rand(total.shape, dtype=dtype, device=probs.device, generator=generator) * total
    index = torch.searchsorted(cdf, u, right=True).squeeze(-1)
    return index.clamp_(max=probs.shape[-1] - 1)
