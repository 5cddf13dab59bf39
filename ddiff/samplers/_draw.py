"""Categorical draws for the samplers: inverse CDF in float64, reading the probabilities once.

Same law as `ddiff._categorical.sample_categorical` (one uniform per row, inverse cumulative
distribution, float64 by default), organised for large alphabets: a full float64 copy and
cumulative sum of a `[N, S]` tensor cost four passes over 8-byte memory per step, which at
S ~ 10^3 is most of a sampler's time outside the network. Here the probabilities are summed in
blocks of `_BLOCK` entries (one read, in their own dtype), the block is chosen by inverting the
float64 cumulative sum of the block sums, and the token inside it by inverting the float64
cumulative sum of that block only. The resolution of the uniforms and of every cumulative sum
is float64, so small probabilities are not under-sampled; the block sums carry the rounding of
the probabilities' own dtype (relative 1e-7 in float32, no bias towards any token).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ddiff._categorical import sample_categorical

_BLOCK = 64


def draw_categorical(
    probs: Tensor,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
) -> Tensor:
    """One index per row of `probs` (`[..., S]`, non-negative, unnormalised): `probs.shape[:-1]`.

    Never returns an index whose probability is 0.
    """
    s = probs.shape[-1]
    if s <= 4 * _BLOCK:
        return sample_categorical(probs, generator, dtype)
    lead = probs.shape[:-1]
    flat = probs.reshape(-1, s)
    full, rest = divmod(s, _BLOCK)
    sums = flat[:, : full * _BLOCK].unflatten(-1, (full, _BLOCK)).sum(dim=-1)
    if rest:
        sums = torch.cat([sums, flat[:, full * _BLOCK :].sum(dim=-1, keepdim=True)], dim=-1)
    cdf = sums.to(dtype).cumsum_(dim=-1)  # [n, blocks]
    total = cdf[:, -1:]
    if not bool((total > 0).all()) or not bool(torch.isfinite(total).all()):
        raise ValueError("every row of probs must have a positive, finite sum")
    u = torch.rand(total.shape, dtype=dtype, device=probs.device, generator=generator) * total
    u = torch.minimum(u, torch.nextafter(total, torch.zeros_like(total)))  # u < total
    # The first block whose cumulative sum exceeds u: it has positive mass.
    block = torch.searchsorted(cdf, u, right=True)
    before = torch.where(block > 0, cdf.gather(1, (block - 1).clamp_(min=0)), 0.0)
    mass = cdf.gather(1, block) - before
    # Within the block: the same fraction of its mass, recomputed from its entries in `dtype`.
    cols = block * _BLOCK + torch.arange(_BLOCK, device=probs.device)
    within = flat.gather(1, cols.clamp(max=s - 1)).to(dtype)
    if rest:
        within.masked_fill_(cols >= s, 0.0)  # the last block is partial
    within_cdf = within.cumsum(dim=-1)
    v = (u - before) / mass * within_cdf[:, -1:]
    k = torch.searchsorted(within_cdf, v, right=True).clamp_(max=_BLOCK - 1)
    # Only rounding at the block's end can leave k on an entry without mass: take the last
    # entry with mass instead.
    stray = within.gather(1, k) == 0
    if bool(stray.any()):
        last = _BLOCK - 1 - (within > 0).flip(-1).to(torch.int8).argmax(dim=-1, keepdim=True)
        k = torch.where(stray, last, k)
    return (block * _BLOCK + k).reshape(lead)
