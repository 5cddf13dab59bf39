"""Tests of the k-mer judge (`ddiff.eval.judge.KmerJudge`)."""

from __future__ import annotations

import pytest
import torch

from ddiff.eval import KmerJudge


def markov(n: int, length: int, transition: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """`[n, length]` samples of a first-order chain with a uniform first token."""
    x = torch.empty(n, length, dtype=torch.long)
    x[:, 0] = torch.randint(0, transition.shape[0], (n,), generator=g)
    for i in range(1, length):
        x[:, i] = torch.multinomial(transition[x[:, i - 1]], 1, generator=g)[:, 0]
    return x


def log_likelihood(x: torch.Tensor, transition: torch.Tensor) -> torch.Tensor:
    return transition.log()[x[:, :-1], x[:, 1:]].sum(dim=1)  # the first token is uniform


# Two order-1 sources with the same stationary composition (both doubly stochastic, so uniform):
# only the 2-mer statistics tell them apart, so 1-mers alone are at chance.
P0 = torch.tensor(
    [[0.4, 0.2, 0.2, 0.2], [0.2, 0.4, 0.2, 0.2], [0.2, 0.2, 0.4, 0.2], [0.2, 0.2, 0.2, 0.4]]
)
P1 = torch.tensor(
    [[0.2, 0.4, 0.2, 0.2], [0.2, 0.2, 0.4, 0.2], [0.2, 0.2, 0.2, 0.4], [0.4, 0.2, 0.2, 0.2]]
)


def two_sources(n: int, seed: int, length: int = 24) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.cat([markov(n, length, P0, g), markov(n, length, P1, g)])
    return x, torch.arange(2).repeat_interleave(n)


def test_markov_sources_reach_the_bayes_rate() -> None:
    x, y = two_sources(1500, seed=0)
    xt, yt = two_sources(2000, seed=1)
    # The Bayes classifier compares the exact log-likelihoods (equal priors).
    bayes = float(((log_likelihood(xt, P1) > log_likelihood(xt, P0)).long() == yt).double().mean())
    judge = KmerJudge(ks=(1, 2), frames=1).fit(x, y, num_labels=2)
    acc = judge.accuracy(xt, yt)
    assert 0.8 < bayes < 0.95  # a problem that is neither trivial nor hopeless
    assert abs(acc - bayes) < 0.02
    assert judge.l2_ in judge.l2_grid and set(judge.validation_log_loss_) == set(judge.l2_grid)
    # per-label rates: the fraction of each source assigned to its own label
    rates = [judge.label_rates(xt[yt == c], c) for c in (0, 1)]
    assert sum(rates) / 2 == pytest.approx(acc)
    # composition alone carries no information about these sources
    chance = KmerJudge(ks=(1,), frames=1, l2=1.0).fit(x, y, num_labels=2).accuracy(xt, yt)
    assert abs(chance - 0.5) < 0.05


def test_log_proba_and_predict() -> None:
    x, y = two_sources(300, seed=2)
    judge = KmerJudge(ks=(1, 2, 3), frames=3, l2=0.1).fit(x, y, num_labels=2)
    logp = judge.log_proba(x[:10])
    assert logp.shape == (10, 2) and logp.dtype == torch.float64
    torch.testing.assert_close(logp.exp().sum(dim=1), torch.ones(10, dtype=torch.float64))
    assert torch.equal(judge.predict(x[:10]), logp.argmax(dim=1))
    assert judge.features(x).shape == (600, 3 * (4 + 16 + 64))
    # each (k, phase) block is a distribution over k-mers
    blocks = judge.features(x[:3]).split([4, 4, 4, 16, 16, 16, 64, 64, 64], dim=1)
    for b in blocks:
        torch.testing.assert_close(b.sum(dim=1), torch.ones(3, dtype=torch.float64))
    # other lengths are fine at prediction time
    assert judge.predict(x[:5, :12]).shape == (5,)


def test_three_labels() -> None:
    g = torch.Generator().manual_seed(3)
    p2 = P0.T.flip(0).contiguous()  # another doubly stochastic matrix
    xs = [markov(200, 24, p, g) for p in (P0, P1, p2)]
    x, y = torch.cat(xs), torch.arange(3).repeat_interleave(200)
    judge = KmerJudge(ks=(1, 2), frames=1, l2=0.01).fit(x, y, num_labels=3)
    assert judge.log_proba(x).shape == (600, 3) and judge.accuracy(x, y) > 0.7


def test_fit_is_deterministic() -> None:
    x, y = two_sources(300, seed=4)
    a = KmerJudge(ks=(1, 2, 3)).fit(x, y, num_labels=2)
    b = KmerJudge(ks=(1, 2, 3)).fit(x, y, num_labels=2)
    assert a.l2_ == b.l2_ and a.validation_log_loss_ == b.validation_log_loss_
    assert torch.equal(a.log_proba(x), b.log_proba(x))


def test_errors() -> None:
    x, y = two_sources(50, seed=5)
    judge = KmerJudge(ks=(1, 2), l2=0.1)
    with pytest.raises(RuntimeError, match="not fitted"):
        judge.predict(x)
    with pytest.raises(RuntimeError, match="not fitted"):
        judge.label_rates(x, 0)
    with pytest.raises(TypeError, match="integer tensor"):
        judge.fit(x.float(), y, num_labels=2)
    with pytest.raises(TypeError, match="integer tensor"):
        judge.fit(x.tolist(), y, num_labels=2)  # type: ignore[arg-type]
    bad = x.clone()
    bad[3, 7] = 4
    with pytest.raises(ValueError, match=r"sequence 3, position 8: token 4 is outside \[0, 4\)"):
        judge.fit(bad, y, num_labels=2)
    with pytest.raises(ValueError, match=r"labels\[0\] = 2 is outside \[0, 2\)"):
        judge.fit(x, y + 2, num_labels=2)
    with pytest.raises(TypeError, match="labels must be"):
        judge.fit(x, y.float(), num_labels=2)
    with pytest.raises(ValueError, match="shape"):
        judge.fit(x, y[:-1], num_labels=2)
    with pytest.raises(ValueError, match=r"labels \[2\] have no sequences"):
        judge.fit(x, y, num_labels=3)
    with pytest.raises(ValueError, match=r"\[N, length\]"):
        judge.fit(x[0], y, num_labels=2)
    with pytest.raises(ValueError, match="hold no 2-mer"):
        judge.fit(x[:, :1], y, num_labels=2)
    judge.fit(x, y, num_labels=2)
    with pytest.raises(ValueError, match=r"label must be in \[0, 2\)"):
        judge.label_rates(x, 2)
    with pytest.raises(ValueError, match=r"labels\[0\] = -1"):
        judge.accuracy(x, y - 1)
    for kwargs, match in [
        ({"ks": ()}, "ks must be"),
        ({"ks": (0, 1)}, "ks must be"),
        ({"ks": (11,)}, "too many"),
        ({"l2": 0.0}, "l2 must be > 0"),
        ({"l2_grid": (1.0, -1.0)}, "l2_grid"),
        ({"frames": 0}, "frames"),
        ({"validation_fraction": 1.0}, "validation_fraction"),
        ({"num_tokens": 1}, "num_tokens"),
    ]:
        with pytest.raises(ValueError, match=match):
            KmerJudge(**kwargs)  # type: ignore[arg-type]
