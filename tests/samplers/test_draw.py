"""The samplers' blocked categorical draw: the law of the inverse CDF, read in one pass."""

from __future__ import annotations

import pytest
import torch
from scipy import stats

from ddiff.samplers._draw import _BLOCK, draw_categorical


def counts_of(probs: torch.Tensor, num: int, seed: int = 0, **kwargs) -> torch.Tensor:
    rows = probs.expand(num, -1)
    draws = draw_categorical(rows, torch.Generator().manual_seed(seed), **kwargs)
    return torch.bincount(draws, minlength=probs.numel()).double()


@pytest.mark.parametrize("s", [4 * _BLOCK + 1, 1000])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_law_matches_the_probabilities(s: int, dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(s)
    probs = torch.rand(s, generator=g) + 0.05  # every kept entry is drawn ~100 times
    probs[torch.randperm(s, generator=g)[: s // 3]] = 0.0  # and zeros, incl. whole blocks
    probs[-5:] = 0.0
    probs[_BLOCK : 3 * _BLOCK] = 0.0
    counts = counts_of(probs, 200_000, dtype=dtype)
    keep = probs > 0
    assert counts[~keep].sum() == 0
    expected = probs.double()[keep] / probs.double()[keep].sum() * counts.sum()
    assert stats.chisquare(counts[keep].numpy(), expected.numpy()).pvalue > 1e-4


def test_never_draws_a_zero_probability_token() -> None:
    s = 5 * _BLOCK + 7
    for pos in [0, _BLOCK - 1, _BLOCK, 2 * _BLOCK + 3, s - 8, s - 1]:
        probs = torch.zeros(1000, s, dtype=torch.float64)
        probs[:, pos] = 1e-300  # tiny but positive: the only candidate
        assert bool((draw_categorical(probs) == pos).all())


def test_tail_mass_is_not_under_sampled() -> None:
    s = 20_000
    probs = torch.full((s,), 0.01 / (s - 1), dtype=torch.float64)
    probs[0] = 0.99
    counts = counts_of(probs, 400_000)
    tail = 1 - counts[0] / counts.sum()
    assert abs(float(tail) - 0.01) < 5 * (0.01 * 0.99 / 400_000) ** 0.5


def test_shapes_and_errors() -> None:
    probs = torch.rand(2, 3, 700)
    assert draw_categorical(probs).shape == (2, 3)
    with pytest.raises(ValueError, match="positive, finite sum"):
        draw_categorical(torch.zeros(2, 700))
    bad = torch.rand(2, 700)
    bad[1, 5] = float("nan")
    with pytest.raises(ValueError, match="positive, finite sum"):
        draw_categorical(bad)
