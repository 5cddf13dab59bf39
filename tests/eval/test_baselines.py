"""`ddiff.eval.MarkovChain` against the exact entropy and likelihood of `MarkovSource`."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from scipy import stats

from ddiff.data import MarkovSource
from ddiff.eval import MarkovChain, paired_difference

LOG2 = math.log(2.0)


def draw(source: MarkovSource, num: int, seed: int) -> np.ndarray:
    return source.sample(num, torch.Generator().manual_seed(seed)).numpy()


def start_conditionals(source: MarkovSource) -> list[np.ndarray]:
    """`[S^i, S]` p(x_i | x_<i) for positions i < k, from the source's joint of the first k."""
    s, k = source.num_tokens, source.order
    joint = source.initial.numpy().reshape((s,) * k)
    tables = []
    for i in range(k):
        prefix = joint.sum(axis=tuple(range(i + 1, k))).reshape(s**i, s)
        tables.append(prefix / prefix.sum(axis=1, keepdims=True))
    return tables


@pytest.mark.parametrize("order", [1, 2])
def test_heldout_nll_of_a_chain_of_the_source_order_approaches_the_exact_entropy(
    order: int,
) -> None:
    source = MarkovSource.random(3, length=12, seed=order, concentration=0.5, order=order)
    chain = MarkovChain(3, order).fit(draw(source, 20_000, seed=0))
    heldout = draw(source, 4_000, seed=1)
    nll = chain.nll_bits(heldout)
    exact_bits = source.entropy() / LOG2  # per sequence
    se = nll.std(ddof=1) / math.sqrt(nll.size)
    assert abs(nll.mean() - exact_bits) < 4 * se, (nll.mean(), exact_bits, se)
    # Paired with the source's exact NLL, the difference is a KL divergence estimate: >= 0 up to
    # its (much smaller) error, and small with 240k training tokens for <= 18 context rows.
    kl, kl_se = paired_difference(nll, source.nll(torch.from_numpy(heldout)).numpy() / LOG2)
    assert kl > -4 * kl_se and kl < 0.02 * source.length, (kl, kl_se)


def test_a_lower_order_chain_cannot_reach_the_entropy_of_an_order_2_source() -> None:
    source = MarkovSource.random(3, length=12, seed=0, concentration=0.3, order=2)
    train, heldout = draw(source, 5_000, seed=0), draw(source, 2_000, seed=1)
    exact = source.nll(torch.from_numpy(heldout)).numpy() / LOG2
    gap_1, se_1 = paired_difference(MarkovChain(3, 1).fit(train).nll_bits(heldout), exact)
    gap_2, _ = paired_difference(MarkovChain(3, 2).fit(train).nll_bits(heldout), exact)
    assert gap_1 > gap_2 + 10 * se_1


@pytest.mark.parametrize("order", [1, 2])
def test_with_a_tiny_prior_the_tables_approach_the_source_tables(order: int) -> None:
    source = MarkovSource.random(3, length=10, seed=4, concentration=1.0, order=order)
    chain = MarkovChain(3, order, alpha=1e-9).fit(draw(source, 20_000, seed=0))
    fitted = [np.exp(t) for t in chain.log_probs]
    # about 17,000 counts per context row and >= 6,000 per start row: sd <= 0.007
    np.testing.assert_allclose(fitted[order], source.transition.numpy(), atol=0.03)
    for got, want in zip(fitted[:order], start_conditionals(source), strict=True):
        np.testing.assert_allclose(got, want, atol=0.03)


def test_with_a_vanishing_prior_the_tables_are_the_count_ratios() -> None:
    seqs = [np.array([0, 1, 1, 0]), np.array([1, 1, 0]), np.array([0, 0])]
    chain = MarkovChain(2, 1, alpha=1e-12).fit(seqs)
    start, table = (np.exp(t) for t in chain.log_probs)
    np.testing.assert_allclose(start, [[2 / 3, 1 / 3]], rtol=1e-9)  # first tokens 0, 1, 0
    # transitions: 0->1, 1->1, 1->0, 1->1, 1->0, 0->0: from 0 {0: 1, 1: 1}, from 1 {0: 2, 1: 2}
    np.testing.assert_allclose(table, [[0.5, 0.5], [0.5, 0.5]], rtol=1e-9)


def test_smoothing_centres_an_unseen_context_on_the_lower_order() -> None:
    chain = MarkovChain(3, 1, alpha=0.5).fit([np.array([0, 0, 0, 1])])
    table = np.exp(chain.log_probs[1])
    # Context 2 never occurs: its row is the order-0 table (add-alpha over 4 tokens).
    order0 = (np.array([3, 1, 0]) + 0.5) / (4 + 1.5)
    np.testing.assert_allclose(table[2], order0, rtol=1e-12)


def brute_force_nll_bits(chain: MarkovChain, seq: np.ndarray) -> float:
    """-log2 p(seq), one position at a time from the tables (p(x_i | the min(i, k) before))."""
    s, k = chain.num_tokens, chain.order
    total = 0.0
    for i, token in enumerate(seq.tolist()):
        j = min(i, k)
        context = 0
        for previous in seq[i - j : i].tolist():
            context = context * s + previous
        total += chain.log_probs[j][context, token]
    return -total / LOG2


@pytest.mark.parametrize(("num_tokens", "order"), [(2, 0), (2, 1), (3, 2), (2, 3)])
def test_nll_bits_is_the_brute_force_sum_and_a_distribution(num_tokens: int, order: int) -> None:
    rng = np.random.default_rng(order)
    train = [rng.integers(num_tokens, size=rng.integers(1, 7)) for _ in range(30)]
    chain = MarkovChain(num_tokens, order, alpha=0.3).fit(train)
    for table in chain.log_probs:
        np.testing.assert_allclose(np.exp(table).sum(axis=1), 1.0, rtol=1e-12)
    for length in (1, 2, 4):  # shorter than, equal to and longer than the order
        seqs = [np.array(x) for x in itertools.product(range(num_tokens), repeat=length)]
        nll = chain.nll_bits(seqs)
        want = [brute_force_nll_bits(chain, x) for x in seqs]
        np.testing.assert_allclose(nll, want, rtol=1e-12, atol=1e-12)
        assert math.isclose(float(np.exp2(-nll).sum()), 1.0, rel_tol=1e-12)  # sums to 1 over S^L


def test_samples_have_the_chain_probabilities() -> None:
    source = MarkovSource.random(2, length=6, seed=2, concentration=1.0, order=2)
    chain = MarkovChain(2, 2).fit(draw(source, 200, seed=0))
    samples = chain.sample(40_000, 3, np.random.default_rng(0))
    assert samples.shape == (40_000, 3) and samples.dtype == np.int64
    # Whole sequences of length 3 (start tables of positions 0, 1 and the order-2 table).
    codes = samples @ np.array([4, 2, 1])
    observed = np.bincount(codes, minlength=8)
    everything = [np.array(x) for x in itertools.product(range(2), repeat=3)]
    expected = np.exp2(-chain.nll_bits(everything)) * samples.shape[0]
    assert stats.chisquare(observed, expected).pvalue > 1e-3


def test_sampled_k_grams_follow_the_transition_table() -> None:
    chain = MarkovChain(3, 1).fit(draw(MarkovSource.random(3, 8, seed=5), 500, seed=0))
    samples = chain.sample(20_000, 8, np.random.default_rng(1))
    table = np.exp(chain.log_probs[1])
    pairs = np.stack([samples[:, :-1].ravel(), samples[:, 1:].ravel()], axis=1)
    for context in range(3):
        following = pairs[pairs[:, 0] == context, 1]
        counts = np.bincount(following, minlength=3)
        tv = 0.5 * np.abs(counts / counts.sum() - table[context]).sum()
        assert tv < 4 * math.sqrt(3 / counts.sum()), (context, tv)  # a few sd of the TV


def test_sampling_is_seeded() -> None:
    chain = MarkovChain(4, 1).fit([np.arange(4)])
    a = chain.sample(5, 7, np.random.default_rng(3))
    b = chain.sample(5, 7, np.random.default_rng(3))
    assert np.array_equal(a, b) and a.min() >= 0 and a.max() < 4


@pytest.mark.parametrize(
    ("num_tokens", "order", "alpha"), [(0, 1, 0.5), (3, -1, 0.5), (3, 1, 0.0), (3, 1, -1.0)]
)
def test_bad_arguments_are_errors(num_tokens: int, order: int, alpha: float) -> None:
    with pytest.raises(ValueError, match="num_tokens >= 1, order >= 0 and alpha > 0"):
        MarkovChain(num_tokens, order, alpha)
