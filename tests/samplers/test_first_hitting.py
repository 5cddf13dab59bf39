"""FirstHittingSampler: exact with the exact score, one call per unmasking event, no grid.

The grid contract (`test_contract.py`, `ddiff.testing.check_sampler`) passes `steps` and expects
`steps + 1` calls, which does not apply to a sampler without a grid; the same properties are
checked here in their first-hitting form (output, NFE, determinism, statelessness, conditioning,
exactness, infill).
"""

from __future__ import annotations

import math

import pytest
import torch

from ddiff import AbsorbingGraph, DenseGraph, UniformGraph
from ddiff.conditioning import Clamp, Condition
from ddiff.samplers import FirstHittingSampler
from ddiff.schedules import LogLinearSchedule
from ddiff.testing import ExactOracle
from ddiff.testing.contracts import ToyScore

NUM_SAMPLES = 20_000
GRAPH = AbsorbingGraph(3)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def sampler(**kwargs: object) -> FirstHittingSampler:
    return FirstHittingSampler(GRAPH, LogLinearSchedule(), **kwargs)  # type: ignore[arg-type]


class RecordingOracle:
    """The exact oracle, recording the tokens and noise levels of every call."""

    def __init__(self, oracle: ExactOracle) -> None:
        self.oracle = oracle
        self.calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    def __call__(self, x_t: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        self.calls.append((x_t.clone(), sigma.clone()))
        return self.oracle(x_t, sigma)


# -- exactness -------------------------------------------------------------------------------------


@pytest.mark.parametrize("length", [3, 4])
@pytest.mark.parametrize("survival", [1e-3, 0.0])
def test_exact_law_with_the_exact_score(length: int, survival: float) -> None:
    oracle = ExactOracle.random(GRAPH, length, seed=1)
    result = FirstHittingSampler(GRAPH, LogLinearSchedule(survival=survival)).run(
        oracle, NUM_SAMPLES, length, generator=gen(0)
    )
    # Monte Carlo floor of the distance at 20,000 samples: 0.011 (L = 3), 0.018 (L = 4).
    assert oracle.total_variation(result.tokens) <= 0.02
    assert result.nfe == length <= length + 1  # one call per position, no denoise call
    assert result.sequence_nfe == length


@pytest.mark.slow
def test_exact_law_at_many_samples() -> None:
    """At 200,000 samples the distance is at the Monte Carlo floor (0.0036), a 10x tighter check."""
    oracle = ExactOracle.random(GRAPH, 3, seed=1)
    x = sampler().sample(oracle, 200_000, 3, generator=gen(0))
    assert oracle.total_variation(x) < 0.005


def test_infill_samples_the_exact_conditional() -> None:
    oracle = ExactOracle.random(GRAPH, 3, seed=1)
    condition = Condition.at({1: 2})
    result = sampler().run(oracle, NUM_SAMPLES, 3, condition=condition, generator=gen(1))
    assert bool((result.tokens[:, 1] == 2).all())
    assert oracle.conditional(condition).total_variation(result.tokens) <= 0.02
    assert result.nfe == 2  # only the free positions unmask


def test_batched_clamp_each_sequence_unmasks_its_free_positions() -> None:
    oracle = ExactOracle.random(GRAPH, 4, seed=1)
    mask = torch.tensor([[True, True, False, False], [False, False, False, True]])
    tokens = torch.tensor([[2, 0, 0, 0], [0, 0, 0, 1]])
    score = RecordingOracle(oracle)
    batch = mask.shape[0]
    clamp = Clamp.from_tensors(tokens, mask)
    result = sampler().run(score, batch, 4, condition=clamp, generator=gen(0))
    assert result.nfe == 3 and result.sequence_nfe == (2 + 3) / 2
    assert [c[0].shape[0] for c in score.calls] == [2, 2, 1]  # a finished sequence is not evaluated
    assert result.tokens[0, :2].tolist() == [2, 0] and result.tokens[1, 3] == 1
    assert bool(torch.isnan(result.times[0, 2])) and not bool(result.times[1].isnan().any())


# -- one call per event, each sequence at its own noise level --------------------------------------


def test_one_position_unmasks_per_call_at_each_sequences_own_noise() -> None:
    oracle = ExactOracle.random(GRAPH, 5, seed=2)
    score = RecordingOracle(oracle)
    result = sampler().run(score, 64, 5, generator=gen(3))
    assert result.nfe == len(score.calls) == 5
    masked = torch.stack([x for x, _ in score.calls]) == GRAPH.mask_token  # [nfe, B, L]
    assert bool(masked[0].all())
    assert bool((masked[:-1].sum(-1) - masked[1:].sum(-1) == 1).all())  # one unmask per call
    sigmas = torch.stack([s for _, s in score.calls])  # [nfe, B]
    assert bool((sigmas[1:] < sigmas[:-1]).all())  # noise falls along each sequence
    assert sigmas[0].unique().numel() == 64  # every sequence at its own level
    # times: decreasing per sequence, in (0, 1), and the noise levels of the calls
    times = result.times
    assert times.shape == (64, 5) and bool((times[:, 1:] < times[:, :-1]).all())
    assert bool(((times > 0) & (times < 1)).all())
    torch.testing.assert_close(LogLinearSchedule().total(times).T, sigmas)


def test_event_times_have_the_forward_law() -> None:
    """The k-th unmasking time of a position is the masking time of the forward chain: with the
    log-linear schedule (survival 0) the masking time of a position is uniform on [0, 1], so
    the L event times of a sequence are the order statistics of L uniforms."""
    oracle = ExactOracle.random(GRAPH, 3, seed=1)
    result = FirstHittingSampler(GRAPH, LogLinearSchedule(survival=0.0)).run(
        oracle, 20_000, 3, generator=gen(4)
    )
    # E[k-th largest of 3 uniforms] = (4 - k) / 4
    means = result.times.mean(dim=0)
    torch.testing.assert_close(
        means, torch.tensor([0.75, 0.5, 0.25], dtype=torch.float64), atol=0.006, rtol=0
    )


# -- the Sampler contract in its first-hitting form ------------------------------------------------


@pytest.mark.parametrize(
    "graph", [UniformGraph(3), DenseGraph(AbsorbingGraph(3).rate_matrix(), num_tokens=3)]
)
def test_other_graphs_are_a_type_error(graph: object) -> None:
    with pytest.raises(TypeError, match="needs an AbsorbingGraph"):
        FirstHittingSampler(graph, LogLinearSchedule())  # type: ignore[arg-type]


def test_takes_no_steps() -> None:
    with pytest.raises(ValueError, match="takes no steps, got steps=16; pass steps=None"):
        sampler().sample(ToyScore(GRAPH), 2, 3, 16)


def test_samples_are_data_tokens_and_no_call_is_wasted() -> None:
    score = ToyScore(GRAPH)
    result = sampler().run(score, 6, 9, generator=gen())
    assert result.tokens.shape == (6, 9) and result.tokens.dtype == torch.long
    assert int(result.tokens.max()) < GRAPH.num_tokens and int(result.tokens.min()) >= 0
    assert result.nfe == len(score.calls) == 9


def test_same_seed_same_samples_and_no_state() -> None:
    s = sampler()
    before = dict(vars(s))
    a, b, c = (s.sample(ToyScore(GRAPH), 8, 6, generator=gen(k)) for k in (1, 1, 2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    s.sample(ToyScore(GRAPH), 2, 3, condition=Condition.at({0: 1}), generator=gen())
    assert vars(s) == before and all(vars(s)[k] is v for k, v in before.items())


def test_conditioning() -> None:
    s = sampler()
    # everything fixed: no call
    score = ToyScore(GRAPH)
    result = s.run(score, 5, 4, condition=Condition.prefix([0, 1, 2, 0]), generator=gen())
    assert result.nfe == 0 and not score.calls and result.tokens.tolist() == [[0, 1, 2, 0]] * 5
    # nothing fixed: unconditional
    plain = s.sample(ToyScore(GRAPH), 8, 6, generator=gen(3))
    free = Clamp.from_tensors(torch.zeros(6, dtype=torch.long), torch.zeros(6, dtype=torch.bool))
    for empty in (Condition(), free):
        assert torch.equal(
            s.sample(ToyScore(GRAPH), 8, 6, condition=empty, generator=gen(3)), plain
        )
    # fixed positions hold in every call and in the result
    score = ToyScore(GRAPH)
    condition = Condition.span(1, [2, 0]) | Condition.suffix([1])
    x = s.sample(score, 10, 6, condition=condition, generator=gen())
    for seen in [*score.calls, x]:
        assert seen[:, 1].eq(2).all() and seen[:, 2].eq(0).all() and seen[:, 5].eq(1).all()
    # the condition reaches the score function only when asked, row by row
    score = ToyScore(GRAPH)
    s.sample(score, 2, 4, condition=Condition.at({2: 1}), pass_condition=True, generator=gen())
    assert len(score.conditions) == 3 and score.conditions[0].mask.shape == (2, 4)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
def test_any_floating_score_dtype(dtype: torch.dtype) -> None:
    toy = ToyScore(GRAPH)
    x = sampler().sample(lambda x_t, sigma: toy(x_t, sigma).to(dtype), 3, 4, generator=gen())
    assert x.shape == (3, 4)


def test_arguments_are_checked() -> None:
    for kwargs, match in [
        ({"temperature": 0.0}, "temperature"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
        ({"order": "left-to-right"}, "order"),
        ({"tokens_per_call": 0}, "tokens_per_call"),
        ({"categorical_dtype": torch.float16}, "categorical_dtype"),
    ]:
        with pytest.raises(ValueError, match=match):
            sampler(**kwargs)
    assert repr(sampler()).startswith("FirstHittingSampler(AbsorbingGraph(num_tokens=3")
    assert repr(sampler()).endswith("LogLinearSchedule(survival=0.001))")
    assert "top_p=0.9" in repr(sampler(top_p=0.9))


# -- controls that change the law -------------------------------------------------------------------


def test_low_temperature_and_small_top_p_draw_the_most_probable_token() -> None:
    oracle = ExactOracle.random(GRAPH, 1, seed=0)
    best = int(oracle.data_probs.argmax())
    for s in (sampler(temperature=1e-3), sampler(top_p=1e-6)):
        x = s.sample(oracle, 500, 1, generator=gen())
        assert bool((x == best).all())


def test_temperature_and_top_p_change_the_law_as_stated() -> None:
    oracle = ExactOracle.random(GRAPH, 1, seed=0)
    p = oracle.data_probs
    x = sampler(temperature=2.0).sample(oracle, NUM_SAMPLES, 1, generator=gen())
    freq = torch.bincount(x[:, 0], minlength=3).double() / NUM_SAMPLES
    torch.testing.assert_close(freq, p.sqrt() / p.sqrt().sum(), atol=0.015, rtol=0)
    top = float(p.max())
    x = sampler(top_p=top + 1e-3).sample(oracle, NUM_SAMPLES, 1, generator=gen())
    kept = p.sort(descending=True).indices[:2]
    freq = torch.bincount(x[:, 0], minlength=3).double() / NUM_SAMPLES
    torch.testing.assert_close(freq[kept], p[kept] / p[kept].sum(), atol=0.015, rtol=0)


def test_confidence_order_unmasks_the_most_certain_position_first() -> None:
    # Position 0 is certain (always token 1), positions 1 and 2 are uniform.
    probs = torch.zeros(3, 3, 3, dtype=torch.float64)
    probs[1] = 1.0 / 9
    oracle = ExactOracle(GRAPH, probs)
    score = RecordingOracle(oracle)
    sampler(order="confidence").sample(score, 50, 3, generator=gen())
    after_first = score.calls[1][0]
    assert bool((after_first[:, 0] == 1).all()) and bool((after_first[:, 1:] == 3).all())


def test_tokens_per_call_cuts_the_calls() -> None:
    oracle = ExactOracle.random(GRAPH, 4, seed=1)
    result = sampler(tokens_per_call=2).run(oracle, 4000, 4, generator=gen())
    assert result.nfe == 2 and int(result.tokens.max()) < 3
    assert result.times.shape == (4000, 2)
    exact = sampler(tokens_per_call=4).run(oracle, NUM_SAMPLES, 4, generator=gen())
    # all four tokens drawn independently from the scores of the all-MASK state: the product
    # of the marginals, far from the joint law
    assert exact.nfe == 1 and oracle.total_variation(exact.tokens) > 0.1
    assert math.isclose(exact.sequence_nfe, 1.0)
