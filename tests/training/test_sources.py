"""ddiff.testing.MarkovSource: exact entropy, faithful samples, clear errors."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from ddiff.testing import MarkovSource


def test_entropy_equals_the_enumerated_entropy() -> None:
    source = MarkovSource.random(3, 4, seed=2, concentration=0.7)
    every = torch.tensor(list(itertools.product(range(3), repeat=4)))
    log_p = -source.nll(every)
    assert math.isclose(float(log_p.exp().sum()), 1.0, rel_tol=1e-12)
    assert math.isclose(float(-(log_p.exp() * log_p).sum()), source.entropy(), rel_tol=1e-12)
    assert math.isclose(source.entropy_per_token("bits"), source.entropy() / 4 / math.log(2))


def test_samples_follow_the_chain() -> None:
    source = MarkovSource(
        torch.tensor([[0.9, 0.1], [0.3, 0.7]]), torch.tensor([0.2, 0.8]), length=3
    )
    x = source.sample(20_000, torch.Generator().manual_seed(0))
    assert x.shape == (20_000, 3) and x.dtype == torch.long
    assert abs(float((x[:, 0] == 0).double().mean()) - 0.2) < 0.01
    after_zero = x[:, 1][x[:, 0] == 0]
    assert abs(float((after_zero == 0).double().mean()) - 0.9) < 0.02
    # The mean negative log-likelihood of samples estimates the entropy.
    assert abs(float(source.nll(x).mean()) - source.entropy()) < 0.02


def test_invalid_chains_are_refused() -> None:
    with pytest.raises(ValueError, match=r"entry 1 sums to 0\.5"):
        MarkovSource(torch.tensor([[0.5, 0.5], [0.25, 0.25]]))
    with pytest.raises(ValueError, match=r"not a power N\*\*k"):
        MarkovSource(torch.ones(2, 3) / 3)
    with pytest.raises(ValueError, match="initial"):
        MarkovSource(torch.eye(2), torch.tensor([1.0]))
    with pytest.raises(ValueError, match="length"):
        MarkovSource(torch.eye(2), length=0)
    with pytest.raises(ValueError, match="unit"):
        MarkovSource(torch.eye(2)).entropy_per_token("nat")  # type: ignore[arg-type]
