"""`MarkovClassifier` against enumeration: the forward algorithm is the exact noisy classifier.

When each label's sequences are a periodic Markov chain, `LabelledOracle` built from the same
joint law computes p(c | x_t) by summing over every clean sequence; the classifier must agree
to float64 precision on every graph, order, period and noise level, and classifier guidance
with it must sample p(x | c).
"""

from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ddiff import AbsorbingGraph, DenseGraph, Graph, UniformGraph
from ddiff.guidance import ClassifierGuidance, MarkovClassifier, select_label
from ddiff.samplers import FirstHittingSampler
from ddiff.schedules import LogLinearSchedule
from ddiff.testing import LabelledOracle

S = 3  # data tokens


# A user rate matrix (columns sum to 0), as for substitution models.
DENSE = torch.tensor(
    [[-1.0, 0.5, 0.25], [0.75, -1.0, 0.25], [0.25, 0.5, -0.5]], dtype=torch.float64
)
GRAPHS: dict[str, Graph] = {
    "absorbing": AbsorbingGraph(S),
    "uniform": UniformGraph(S),
    "dense": DenseGraph(DENSE),
}


def random_chains(seed: int, order: int, period: int, labels: int = 2) -> MarkovClassifier:
    """A classifier with random chains (Dirichlet(1) rows) on the absorbing graph."""
    g = torch.Generator().manual_seed(seed)

    def log_rows(*shape: int) -> torch.Tensor:
        return torch.log_softmax(torch.randn(*shape, generator=g, dtype=torch.float64) * 1.5, -1)

    return MarkovClassifier(
        AbsorbingGraph(S),
        log_rows(labels),
        log_rows(labels, S**order),
        log_rows(labels, period, S**order, S),
    )


def joint_law(clf: MarkovClassifier, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """p(x_0) `[S] * L` and p(c | x_0) `[S] * L + [C]`, by enumeration of the chains."""
    k = clf.order
    log_joint = torch.empty([S] * length + [clf.num_labels], dtype=torch.float64)
    for x in itertools.product(range(S), repeat=length):
        first = sum(v * S ** (k - 1 - j) for j, v in enumerate(x[:k]))
        lp = clf.log_prior + clf.log_init[:, first]
        for i in range(k, length):
            context = sum(v * S ** (k - 1 - j) for j, v in enumerate(x[i - k : i]))
            lp = lp + clf.log_trans[:, i % clf.period, context, x[i]]
        log_joint[x] = lp
    p_x = torch.logsumexp(log_joint, -1).exp()
    return p_x, torch.softmax(log_joint, -1)


@settings(max_examples=30, deadline=None)
@given(
    graph_name=st.sampled_from(sorted(GRAPHS)),
    order=st.integers(1, 2),
    period=st.integers(1, 3),
    length=st.integers(3, 5),
    seed=st.integers(0, 2**16),
)
def test_forward_algorithm_equals_enumeration(
    graph_name: str, order: int, period: int, length: int, seed: int
) -> None:
    chains = random_chains(seed, order, period)
    graph = GRAPHS[graph_name]
    clf = MarkovClassifier(graph, chains.log_prior, chains.log_init, chains.log_trans)
    oracle = LabelledOracle(graph, *joint_law(chains, length))
    g = torch.Generator().manual_seed(seed)
    x_t = torch.randint(0, graph.num_states, (16, length), generator=g)
    sigma = torch.rand(16, generator=g, dtype=torch.float64) * 3.0
    sigma[0] = 0.0  # no noise: p(c | x_0)
    ours = clf(x_t, sigma)
    exact = oracle.log_classifier(x_t, sigma)
    finite = torch.isfinite(exact)  # no noise on an absorbing graph: x_t = MASK-free x_0
    assert torch.equal(finite, torch.isfinite(ours))
    torch.testing.assert_close(ours[finite], exact[finite], rtol=0, atol=1e-9)


def test_all_masked_is_the_prior_and_clean_is_the_posterior() -> None:
    chains = random_chains(1, 2, 3)
    x_mask = torch.full((1, 6), S)
    torch.testing.assert_close(chains(x_mask, torch.tensor([0.7]))[0], chains.log_prior)
    x_0 = torch.tensor([[0, 2, 1, 1, 0, 2]])
    by_hand = chains.log_prior + chains.log_init[:, 0 * S + 2]
    for i in range(2, 6):
        by_hand = by_hand + chains.log_trans[:, i % 3, x_0[0, i - 2] * S + x_0[0, i - 1], x_0[0, i]]
    torch.testing.assert_close(chains(x_0, torch.tensor([0.0]))[0], by_hand.log_softmax(-1))


def test_fit_counts_with_pseudocounts() -> None:
    tokens = torch.tensor([[0, 1, 1, 2], [0, 1, 2, 2], [2, 2, 2, 2]])
    labels = torch.tensor([0, 0, 1])
    clf = MarkovClassifier.fit(
        AbsorbingGraph(S), tokens, labels, order=1, period=2, pseudocount=1.0
    )
    torch.testing.assert_close(
        clf.log_prior.exp(), torch.tensor([2 / 3, 1 / 3], dtype=torch.float64)
    )
    # label 0, first token: 0 twice -> (2 + 1) / (2 + 3)
    assert clf.log_init[0, 0].exp().item() == pytest.approx(3 / 5)
    # label 0, phase 0 (positions 2): contexts 1 -> 1 and 1 -> 2, once each
    assert clf.log_trans[0, 0, 1].exp().tolist() == pytest.approx([1 / 5, 2 / 5, 2 / 5])
    # label 0, phase 1 (positions 1 and 3): 0 -> 1 twice, 1 -> 2 and 2 -> 2 once
    assert clf.log_trans[0, 1, 0].exp().tolist() == pytest.approx([1 / 5, 3 / 5, 1 / 5])
    assert clf.log_trans[1, 1, 2].exp().tolist() == pytest.approx([1 / 5, 1 / 5, 3 / 5])


def test_fit_recovers_the_chains_of_a_large_sample() -> None:
    truth = random_chains(3, 1, 2)
    p_x, p_c = joint_law(truth, 5)
    g = torch.Generator().manual_seed(0)
    flat = torch.multinomial(p_x.reshape(-1), 200_000, replacement=True, generator=g)
    tokens = torch.stack(torch.unravel_index(flat, p_x.shape), -1)
    labels = torch.multinomial(p_c.reshape(-1, 2)[flat], 1, generator=g)[:, 0]
    fitted = MarkovClassifier.fit(AbsorbingGraph(S), tokens, labels, order=1, period=2)
    x_t = torch.randint(0, S + 1, (64, 5), generator=g)
    sigma = torch.full((64,), 0.8, dtype=torch.float64)
    err = (fitted(x_t, sigma).exp() - truth(x_t, sigma).exp()).abs().max().item()
    assert err < 0.02


def test_guidance_with_it_samples_the_conditional() -> None:
    chains = random_chains(5, 1, 2)
    oracle = LabelledOracle(chains.graph, *joint_law(chains, 3))
    guided = ClassifierGuidance(
        oracle.unconditional, select_label(chains, 1), 1.0, graph=chains.graph
    )
    sampler = FirstHittingSampler(chains.graph, LogLinearSchedule())
    x = sampler.sample(guided, 20_000, 3, generator=torch.Generator().manual_seed(0))
    target = oracle.conditional(1)
    assert 0.5 * float((target.data_probs - oracle.unconditional.data_probs).abs().sum()) > 0.1
    assert target.total_variation(x) < 0.03


@pytest.mark.parametrize(
    ("tokens", "labels", "kw", "match"),
    [
        (torch.tensor([[0, 1, 3], [0, 1, 2]]), torch.tensor([0, 1]), {}, "position 2 holds 3"),
        (torch.tensor([[0, 1, 2], [0, 1, 2]]), torch.tensor([0, 0]), {"num_labels": 2}, "label 1"),
        (torch.tensor([[0, 1], [0, 1]]), torch.tensor([0, 1]), {"order": 2}, "too short"),
        (torch.tensor([[0, 1, 2], [0, 1, 2]]), torch.tensor([0, 1]), {"period": 0}, "period"),
        (torch.tensor([[0, 1, 2], [0, 1, 2]]), torch.tensor([0, 2]), {"num_labels": 2}, "labels"),
    ],
)
def test_fit_rejects_bad_data(
    tokens: torch.Tensor, labels: torch.Tensor, kw: dict[str, int], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        MarkovClassifier.fit(AbsorbingGraph(S), tokens, labels, **kw)


def test_rejects_one_hot_inputs_and_bad_tables() -> None:
    chains = random_chains(0, 1, 1)
    with pytest.raises(TypeError, match="token indices"):
        chains(torch.zeros(1, 4, S + 1), torch.tensor([0.5]))
    with pytest.raises(ValueError, match="summing to 1"):
        MarkovClassifier(AbsorbingGraph(S), chains.log_prior + 1, chains.log_init, chains.log_trans)
    with pytest.raises(ValueError, match="log_init"):
        MarkovClassifier(
            AbsorbingGraph(S), chains.log_prior, chains.log_init[:, :2], chains.log_trans
        )
