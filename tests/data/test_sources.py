"""`ddiff.data` synthetic sources: exact entropies and likelihoods against enumeration of tiny
cases."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from scipy import stats

import ddiff.testing
from ddiff.data import MarkovSource, PlantedMotifSource


def all_sequences(n: int, length: int) -> torch.Tensor:
    return torch.tensor(list(itertools.product(range(n), repeat=length)))


def enumerated_entropy(nll: torch.Tensor) -> float:
    return float((nll.neg().exp() * nll).sum())


@pytest.mark.parametrize(
    ("n", "order", "length"), [(2, 1, 5), (3, 1, 4), (2, 2, 6), (3, 2, 5), (2, 3, 6)]
)
def test_markov_likelihood_normalises_and_entropy_is_exact(n: int, order: int, length: int) -> None:
    source = MarkovSource.random(n, length, seed=n + order, concentration=0.7, order=order)
    nll = source.nll(all_sequences(n, length))
    assert float(nll.neg().exp().sum()) == pytest.approx(1.0, abs=1e-12)
    assert source.entropy() == pytest.approx(enumerated_entropy(nll), abs=1e-10)
    assert source.entropy_per_token("bits") == pytest.approx(
        source.entropy() / length / math.log(2), rel=1e-12
    )


@pytest.mark.parametrize("order", [1, 2])
def test_markov_marginals_match_enumeration(order: int) -> None:
    n, length = 3, 5
    source = MarkovSource.random(n, length, seed=3, order=order)
    x = all_sequences(n, length)
    p = source.nll(x).neg().exp()
    expected = torch.stack(
        [torch.zeros(n, dtype=torch.float64).index_add(0, x[:, i], p) for i in range(length)]
    )
    assert torch.allclose(source.marginals(), expected, atol=1e-12)


@pytest.mark.parametrize("order", [1, 2])
def test_markov_samples_follow_the_likelihood(order: int) -> None:
    n, length, draws = 2, 4, 20_000
    source = MarkovSource.random(n, length, seed=5, concentration=1.0, order=order)
    x = source.sample(draws, torch.Generator().manual_seed(0))
    codes = (x * (n ** torch.arange(length - 1, -1, -1))).sum(dim=1)
    observed = torch.bincount(codes, minlength=n**length).numpy()
    expected = source.nll(all_sequences(n, length)).neg().exp().numpy() * draws
    assert stats.chisquare(observed, expected).pvalue > 1e-3


def test_markov_samples_follow_a_given_chain() -> None:
    # A chain written out by hand: transition[a, b] = P(next = b | current = a).
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


def test_order_one_random_source_is_unchanged() -> None:
    # The order-1 draws are the ones earlier versions made (configs rely on them).
    source = MarkovSource.random(3, 4, seed=1, concentration=0.5)
    assert source.order == 1 and source.transition.shape == (3, 3)
    assert source.entropy_per_token("bits") == pytest.approx(
        MarkovSource(source.transition, source.initial, 4).entropy_per_token("bits")
    )


def test_markov_errors() -> None:
    with pytest.raises(ValueError, match="not a power"):
        MarkovSource(torch.full((5, 2), 0.5))
    with pytest.raises(ValueError, match=r"not a power N\*\*k"):
        MarkovSource(torch.ones(2, 3) / 3)
    with pytest.raises(ValueError, match=r"entry 1 sums to 0\.5"):
        MarkovSource(torch.tensor([[0.5, 0.5], [0.25, 0.25]]))
    with pytest.raises(ValueError, match="initial"):
        MarkovSource(torch.eye(2), torch.tensor([1.0]))
    with pytest.raises(ValueError, match="length"):
        MarkovSource(torch.eye(2), length=0)
    with pytest.raises(ValueError, match="unit"):
        MarkovSource(torch.eye(2)).entropy_per_token("nat")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"initial must have shape \[4\]"):
        MarkovSource(torch.full((4, 2), 0.5), torch.tensor([0.5, 0.5]))
    with pytest.raises(ValueError, match="length must be an integer >= the order 2"):
        MarkovSource(torch.full((4, 2), 0.5), length=1)
    source = MarkovSource.random(3, 4)
    with pytest.raises(ValueError, match=r"token 3 at \[batch 1, position 2\]"):
        source.nll(torch.tensor([[0, 1, 2, 0], [0, 1, 3, 0]]))


def tiny_planted() -> PlantedMotifSource:
    background = MarkovSource.random(2, 4, seed=0, concentration=1.0)
    motifs = [torch.tensor([[0.9, 0.1]]), torch.tensor([[0.2, 0.8], [0.7, 0.3]])]
    return PlantedMotifSource(background, motifs, [(0, 1)])


def test_planted_likelihood_normalises_and_entropy_brackets() -> None:
    source = tiny_planted()
    assert source.length == 7
    nll = source.nll(all_sequences(2, source.length))
    assert float(nll.neg().exp().sum()) == pytest.approx(1.0, abs=1e-12)
    exact = enumerated_entropy(nll)
    joint = source.joint_entropy()
    assert joint - math.log(source.num_placements) - 1e-12 <= exact <= joint + 1e-12
    estimate, stderr = source.entropy_estimate(num_samples=20_000, seed=1)
    assert abs(estimate - exact) < 4 * stderr + 1e-9


def test_planted_samples_follow_the_likelihood() -> None:
    source, draws = tiny_planted(), 40_000
    x = source.sample(draws, torch.Generator().manual_seed(2))
    codes = (x * (2 ** torch.arange(source.length - 1, -1, -1))).sum(dim=1)
    observed = torch.bincount(codes, minlength=2**source.length).numpy()
    expected = source.nll(all_sequences(2, source.length)).neg().exp().numpy() * draws
    assert stats.chisquare(observed, expected).pvalue > 1e-3


def test_promoter_like_source() -> None:
    source = PlantedMotifSource.promoter_like(length=64, seed=0)
    x = source.sample(512, torch.Generator().manual_seed(0))
    assert x.shape == (512, 64) and int(x.max()) < 4
    estimate, stderr = source.entropy_estimate(num_samples=4000)
    h = estimate / 64 / math.log(2)
    # Below the background-only rate (the motifs are predictable), above 0.
    background = MarkovSource.random(4, 64, concentration=2.0, order=2)
    assert 0.5 < h < background.entropy_per_token("bits")
    assert stderr / 64 / math.log(2) < 1e-3
    # The mean NLL of fresh samples estimates the same entropy.
    nll = source.nll(source.sample(4000, torch.Generator().manual_seed(1)))
    assert abs(float(nll.mean()) - estimate) < 4 * float(nll.std()) / math.sqrt(4000)


def test_planted_errors() -> None:
    background = MarkovSource.random(2, 4)
    with pytest.raises(ValueError, match=r"motif 0 must be a PWM of shape \[width, 2\]"):
        PlantedMotifSource(background, [torch.ones(2, 3) / 3])
    with pytest.raises(ValueError, match="one spacer range per motif after the first"):
        PlantedMotifSource(background, [torch.ones(1, 2) / 2, torch.ones(1, 2) / 2])
    with pytest.raises(ValueError, match="no placement"):
        PlantedMotifSource(background, [torch.ones(1, 2) / 2] * 2, [(5, 6)])


def test_the_sources_are_also_shipped_with_the_test_helpers() -> None:
    assert ddiff.testing.MarkovSource is MarkovSource
    assert ddiff.testing.PlantedMotifSource is PlantedMotifSource
