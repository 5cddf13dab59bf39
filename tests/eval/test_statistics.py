"""`ddiff.eval.statistics`: ratio estimates, paired differences and subsamples."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ddiff.eval import paired_difference, ratio_estimate, ratio_sums, subsample


def test_ratio_estimate_is_the_ratio_of_sums_with_the_delta_method_error() -> None:
    rng = np.random.default_rng(0)
    nats, lengths = rng.gamma(3.0, 2.0, size=50), rng.integers(1, 9, size=50)
    ratio, se = ratio_estimate(ratio_sums(torch.tensor(nats), torch.tensor(lengths)).tolist())
    want = nats.sum() / lengths.sum()
    residual = nats - want * lengths
    want_se = math.sqrt(50 / 49 * (residual**2).sum()) / lengths.sum()
    assert math.isclose(ratio, want, rel_tol=1e-12) and math.isclose(se, want_se, rel_tol=1e-9)


def test_ratio_sums_add_over_batches() -> None:
    nats, lengths = torch.arange(1.0, 7.0), torch.tensor([1, 2, 3, 1, 2, 3])
    whole = ratio_sums(nats, lengths)
    parts = ratio_sums(nats[:2], lengths[:2]) + ratio_sums(nats[2:], lengths[2:])
    assert whole.dtype == torch.float64 and torch.equal(whole, parts)


def test_ratio_estimate_of_one_sequence_has_no_error() -> None:
    ratio, se = ratio_estimate(ratio_sums(torch.tensor([3.0]), torch.tensor([2])).tolist())
    assert ratio == 1.5 and math.isnan(se)


def test_paired_difference() -> None:
    a, b = np.array([1.0, 2.0, 4.0]), np.array([0.0, 1.0, 1.0])
    mean, se = paired_difference(a, b)
    assert mean == pytest.approx(5 / 3) and se == pytest.approx(np.std([1, 1, 3], ddof=1) / 3**0.5)
    assert math.isnan(paired_difference(np.array([1.0]), np.array([0.5]))[1])


def test_subsample_is_seeded_sorted_and_distinct() -> None:
    a = subsample(100, 10, seed=3)
    assert np.array_equal(a, subsample(100, 10, seed=3))
    assert a.size == 10 and np.all(np.diff(a) > 0) and a.min() >= 0 and a.max() < 100
    assert not np.array_equal(a, subsample(100, 10, seed=4))
    assert np.array_equal(subsample(5, 10, seed=0), np.arange(5))  # min(k, n)
