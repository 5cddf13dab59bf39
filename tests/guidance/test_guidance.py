"""The guidance combinators against the exact scores of tiny labelled problems, and their edges."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from ddiff import AbsorbingGraph, DenseGraph, Graph, UniformGraph
from ddiff.conditioning import Clamp
from ddiff.guidance import ClassifierFreeGuidance, ClassifierGuidance, select_label
from ddiff.testing import LabelledOracle
from ddiff.testing.contracts import tiny_graphs

F64 = torch.float64
GRAPHS: dict[str, Graph] = tiny_graphs()  # uniform, absorbing, dense (3 data tokens)
graphs = pytest.mark.parametrize("graph_name", list(GRAPHS))


def problem(graph_name: str, length: int = 3) -> LabelledOracle:
    return LabelledOracle.random(GRAPHS[graph_name], length, num_labels=3, seed=2)


def noisy_batch(oracle: LabelledOracle, batch: int = 64, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Sequences x_t drawn from p_t at random noise levels (so p_t(x_t) > 0)."""
    g = torch.Generator().manual_seed(seed)
    x0 = oracle.unconditional.sample_data(batch, g)
    sigma = torch.rand(batch, generator=g, dtype=F64) * 3.0 + 0.01
    return oracle.graph.sample_transition(x0, sigma, g), sigma


def assert_same_scores(a: Tensor, b: Tensor, atol: float = 1e-10) -> None:
    assert torch.equal(torch.isneginf(a), torch.isneginf(b))
    finite = torch.isfinite(b)
    torch.testing.assert_close(a[finite], b[finite], atol=atol, rtol=0.0)


@graphs
@pytest.mark.parametrize("label", [0, 2])
def test_classifier_guidance_at_weight_one_is_the_exact_conditional_score(
    graph_name: str, label: int
) -> None:
    """p_t(y | c) / p_t(x | c) = [p_t(y) / p_t(x)] p(c | y_t) / p(c | x_t), entry by entry."""
    oracle = problem(graph_name)
    x_t, sigma = noisy_batch(oracle)
    guided = ClassifierGuidance(oracle.unconditional, oracle.classifier(label), 1.0)
    assert_same_scores(guided(x_t, sigma), oracle.conditional(label)(x_t, sigma))


@graphs
@pytest.mark.parametrize("weight", [0.0, 0.5, 1.0, 2.0, 4.0])
def test_free_and_classifier_guidance_agree_with_exact_ingredients(
    graph_name: str, weight: float
) -> None:
    """With the exact conditional score, w log s_c + (1 - w) log s = log s + w log-ratio."""
    oracle = problem(graph_name)
    x_t, sigma = noisy_batch(oracle)
    free = ClassifierFreeGuidance(oracle.conditional(1), oracle.unconditional, weight)
    classifier = ClassifierGuidance(oracle.unconditional, oracle.classifier(1), weight)
    assert_same_scores(free(x_t, sigma), classifier(x_t, sigma), atol=1e-9)


def test_weights_zero_and_one_call_one_model_only() -> None:
    oracle = problem("uniform")
    x_t, sigma = noisy_batch(oracle)
    calls: list[str] = []

    def recording(name: str, fn):  # type: ignore[no-untyped-def]
        def wrapped(x: Tensor, s: Tensor) -> Tensor:
            calls.append(name)
            return fn(x, s)

        return wrapped

    cond, uncond = (
        recording("cond", oracle.conditional(0)),
        recording("uncond", oracle.unconditional),
    )
    assert torch.equal(
        ClassifierFreeGuidance(cond, uncond, 0.0)(x_t, sigma), oracle.unconditional(x_t, sigma)
    )
    assert calls == ["uncond"]
    calls.clear()
    assert torch.equal(
        ClassifierFreeGuidance(cond, uncond, 1.0)(x_t, sigma), oracle.conditional(0)(x_t, sigma)
    )
    assert calls == ["cond"]
    classifier = recording("classifier", oracle.classifier(0))
    calls.clear()
    out = ClassifierGuidance(uncond, classifier, 0.0)(x_t, sigma)
    assert torch.equal(out, oracle.unconditional(x_t, sigma)) and calls == ["uncond"]


def nonzero_at_current(x_t: Tensor, sigma: Tensor) -> Tensor:
    """A score function that (against the contract) is not 0 at the current token."""
    return torch.full((*x_t.shape, 4), 0.3, dtype=F64)


@pytest.mark.parametrize("weight", [0.0, 0.5, 1.0, 3.0])
def test_the_current_token_entry_is_exactly_zero(weight: float) -> None:
    graph = AbsorbingGraph(3)
    x_t = torch.tensor([[3, 0, 1], [3, 3, 2]])
    sigma = torch.tensor([0.4, 1.2], dtype=F64)

    def classifier(x: Tensor, s: Tensor) -> Tensor:  # any non-constant function
        return -0.1 * x.sum(dim=-1).to(F64) - s

    for guided in (
        ClassifierFreeGuidance(nonzero_at_current, lambda x, s: -nonzero_at_current(x, s), weight),
        ClassifierFreeGuidance(
            nonzero_at_current, lambda x, s: -nonzero_at_current(x, s), weight, graph=graph
        ),
        ClassifierGuidance(nonzero_at_current, classifier, weight),
        ClassifierGuidance(nonzero_at_current, classifier, weight, graph=graph),
    ):
        out = guided(x_t, sigma)
        assert torch.equal(out.gather(-1, x_t[..., None]), torch.zeros(2, 3, 1, dtype=F64))


def test_absorbing_graph_guides_masked_positions_only_and_never_targets_mask() -> None:
    """Unmasked positions (frozen states) keep the unguided scores and cost no classifier call;
    a masked position's targets are the N data tokens (MASK is its own state)."""
    graph = AbsorbingGraph(3)
    oracle = LabelledOracle.random(graph, 3, num_labels=2, seed=0)
    x_t = torch.tensor([[3, 0, 3], [1, 2, 0], [3, 3, 3]])
    sigma = torch.tensor([0.5, 0.5, 0.5], dtype=F64)
    seen: list[Tensor] = []

    def classifier(x: Tensor, s: Tensor) -> Tensor:
        seen.append(x.clone())
        return oracle.classifier(1)(x, s)

    out = ClassifierGuidance(oracle.unconditional, classifier, 1.0, graph=graph)(x_t, sigma)
    base, exact = oracle.unconditional(x_t, sigma), oracle.conditional(1)(x_t, sigma)
    masked = x_t == 3
    assert_same_scores(out[masked], exact[masked])
    assert_same_scores(out[~masked], base[~masked])
    neighbours = torch.cat(seen[1:])  # seen[0] is x_t itself
    assert neighbours.shape[0] == int(masked.sum()) * 3  # (masked positions) x N
    assert bool(
        (
            (neighbours != 3).sum(dim=-1)
            == (x_t != 3).sum(dim=-1).repeat_interleave((masked.sum(dim=-1) * 3)) + 1
        ).all()
    )  # one more data token: MASK never a target


@pytest.mark.parametrize("max_batch", [1, 7, 10_000])
def test_chunking_does_not_change_the_answer(max_batch: int) -> None:
    oracle = problem("dense")
    x_t, sigma = noisy_batch(oracle, batch=9)
    calls: list[int] = []

    def classifier(x: Tensor, s: Tensor) -> Tensor:
        calls.append(x.shape[0])
        return oracle.classifier(2)(x, s)

    out = ClassifierGuidance(oracle.unconditional, classifier, 1.5, max_batch=max_batch)(x_t, sigma)
    reference = ClassifierGuidance(oracle.unconditional, oracle.classifier(2), 1.5)(x_t, sigma)
    torch.testing.assert_close(out, reference, atol=1e-12, rtol=0.0)  # the oracle's own rounding
    assert max(calls[1:]) <= max_batch and sum(calls[1:]) == 9 * 3 * 2  # B x L x (S - 1)


def test_first_order_is_exact_for_a_classifier_linear_in_the_one_hot_input() -> None:
    g = torch.Generator().manual_seed(0)
    weights = torch.randn(3, 4, generator=g, dtype=F64)

    def linear(x: Tensor, s: Tensor) -> Tensor:
        one_hot = x if x.is_floating_point() else torch.nn.functional.one_hot(x, 4).to(F64)
        return (one_hot.to(F64) * weights).sum(dim=(1, 2)) - s

    x_t = torch.randint(0, 4, (5, 3), generator=g)
    sigma = torch.rand(5, generator=g, dtype=F64)
    zero = lambda x, s: torch.zeros(*x.shape, 4, dtype=F64)  # noqa: E731
    exact = ClassifierGuidance(zero, linear, 1.0)(x_t, sigma)
    first = ClassifierGuidance(zero, linear, 1.0, mode="first_order")(x_t, sigma)
    torch.testing.assert_close(first, exact)


@graphs
def test_first_order_approximates_the_exact_classifier(graph_name: str) -> None:
    """The exact noisy classifier is not linear in the one-hot input: the first-order term is an
    approximation, 0 at the current token. Its sign is the exact term's: along the segment from
    one one-hot to another, p(c, x) and p(x) are linear, so p(c | x) is a ratio of linear
    functions, monotone, and its derivative at the start has the sign of the whole change."""
    oracle = problem(graph_name)
    x_t, sigma = noisy_batch(oracle)
    exact = ClassifierGuidance(oracle.unconditional, oracle.classifier(1), 1.0)
    first = ClassifierGuidance(oracle.unconditional, oracle.classifier(1), 1.0, mode="first_order")
    e = exact.log_ratio(x_t, sigma, oracle.graph.num_states)
    f = first.log_ratio_first_order(x_t, sigma, oracle.graph.num_states).to(e.dtype)
    assert torch.equal(f.gather(-1, x_t[..., None]), torch.zeros(*x_t.shape, 1, dtype=f.dtype))
    moves = ~oracle.graph.frozen_states()[x_t]
    ok = torch.isfinite(e) & (e.abs() > 0.05) & moves[..., None]
    assert int(ok.sum()) > 50
    assert bool((torch.sign(e[ok]) == torch.sign(f[ok])).all())
    assert float((e[ok] - f[ok]).abs().max()) > 1e-3  # not silently the exact mode


def test_renormalised_free_guidance_keeps_the_absorbing_unmasking_rate() -> None:
    """At a masked position the exact total sum_v s_v = 1 / (e^sigma - 1) for any data law;
    the plain geometric mix lowers it (Hoelder) at 0 < w < 1; with graph= it is kept."""
    graph = AbsorbingGraph(3)
    oracle = LabelledOracle.random(graph, 2, num_labels=2, seed=0)
    x_t = torch.tensor([[3, 3], [3, 0], [1, 3]])
    sigma = torch.tensor([0.3, 1.0, 2.0], dtype=F64)
    total = 1.0 / torch.expm1(sigma)
    masked = x_t == 3
    for weight in (0.5, 2.0):
        plain = ClassifierFreeGuidance(oracle.conditional(1), oracle.unconditional, weight)
        renorm = ClassifierFreeGuidance(
            oracle.conditional(1), oracle.unconditional, weight, graph=graph
        )
        plain_total = plain(x_t, sigma)[..., :3].exp().sum(-1)
        renorm_out = renorm(x_t, sigma)
        renorm_total = renorm_out[..., :3].exp().sum(-1)
        expected = total[:, None].expand_as(x_t)
        torch.testing.assert_close(renorm_total[masked], expected[masked])
        if weight < 1:
            assert bool((plain_total[masked] < expected[masked] - 1e-6).all())
        # The distribution over data tokens is the plain mix's.
        plain_probs = plain(x_t, sigma)[..., :3].softmax(-1)[masked]
        torch.testing.assert_close(renorm_out[..., :3].softmax(-1)[masked], plain_probs)


def test_renormalisation_changes_nothing_at_weights_zero_and_one() -> None:
    graph = AbsorbingGraph(3)
    oracle = LabelledOracle.random(graph, 2, num_labels=2, seed=0)
    x_t, sigma = noisy_batch(oracle)
    for weight, expected in ((0.0, oracle.unconditional), (1.0, oracle.conditional(1))):
        out = ClassifierFreeGuidance(
            oracle.conditional(1), oracle.unconditional, weight, graph=graph
        )(x_t, sigma)
        assert_same_scores(out, expected(x_t, sigma), atol=0.0)


def test_condition_is_passed_to_every_wrapped_function() -> None:
    received: list[str] = []
    clamp = Clamp(torch.tensor([[True, False]]), torch.tensor([[1, 0]]))

    def score(x: Tensor, s: Tensor, *, condition: Clamp) -> Tensor:
        received.append("score" if condition is clamp else "wrong")
        return torch.zeros(*x.shape, 3)

    def classifier(x: Tensor, s: Tensor, *, condition: Clamp) -> Tensor:
        received.append("classifier" if condition.mask.shape[-1] == 2 else "wrong")
        return torch.zeros(x.shape[0])

    x_t, sigma = torch.tensor([[1, 2]]), torch.tensor([0.5])
    ClassifierGuidance(score, classifier, 1.0)(x_t, sigma, condition=clamp)
    ClassifierFreeGuidance(score, score, 0.5)(x_t, sigma, condition=clamp)
    assert "wrong" not in received
    assert received.count("score") == 3 and received.count("classifier") >= 2


def test_fixed_positions_cost_no_classifier_calls() -> None:
    calls: list[int] = []

    def classifier(x: Tensor, s: Tensor, *, condition: Clamp) -> Tensor:
        calls.append(x.shape[0])
        return torch.zeros(x.shape[0])

    def score(x: Tensor, s: Tensor, *, condition: Clamp) -> Tensor:
        return torch.zeros(*x.shape, 3)

    clamp = Clamp(torch.tensor([True, False, True]), torch.tensor([1, 0, 2]))
    x_t, sigma = torch.tensor([[1, 0, 2]]), torch.tensor([0.5])
    ClassifierGuidance(score, classifier, 1.0, graph=UniformGraph(3))(x_t, sigma, condition=clamp)
    assert calls == [1, 2]  # x_t, then the 2 neighbours of the one free position


@graphs
def test_positions_guide_those_positions_and_leave_the_others_unguided(graph_name: str) -> None:
    oracle = problem(graph_name)
    x_t, sigma = noisy_batch(oracle, batch=32)
    g = torch.Generator().manual_seed(1)
    positions = torch.rand(x_t.shape, generator=g) < 0.5
    guided = ClassifierGuidance(oracle.unconditional, oracle.classifier(2), 1.7, graph=oracle.graph)
    full = guided(x_t, sigma)
    part = guided(x_t, sigma, positions=positions)
    unguided = oracle.unconditional(x_t, sigma).scatter(-1, x_t.unsqueeze(-1), 0.0)
    assert_same_scores(part[positions], full[positions])
    assert_same_scores(part[~positions], unguided[~positions])
    with pytest.raises(ValueError, match="positions must be a bool tensor"):
        guided(x_t, sigma, positions=positions.long())


def test_first_hitting_classifies_only_the_neighbours_of_the_unmasked_position() -> None:
    """With `reads_positions`, the first-hitting sampler asks for one position per event, so the
    exact mode classifies x_t and the S - 1 = 3 neighbours of that position (MASK -> each data
    token), instead of 3 per masked position."""
    from ddiff.samplers import FirstHittingSampler
    from ddiff.schedules import LogLinearSchedule

    graph = AbsorbingGraph(3)
    oracle = LabelledOracle.random(graph, 4, num_labels=2, seed=0)
    rows: list[int] = []

    def classifier(x: Tensor, s: Tensor) -> Tensor:
        rows.append(x.shape[0])
        return oracle.classifier(1)(x, s)

    guided = ClassifierGuidance(oracle.unconditional, classifier, 1.0, graph=graph)
    sampler = FirstHittingSampler(graph, LogLinearSchedule())
    sampler.sample(guided, 8, 4, None, generator=torch.Generator().manual_seed(0))
    # 4 events (one per position); each: the 8 sequences, then 8 x 3 neighbours.
    assert len(rows) == 8 and rows[0::2] == [8] * 4
    assert all(n == 8 * graph.num_tokens for n in rows[1::2])


@pytest.mark.parametrize("tokens_per_call", [1, 3])
def test_first_hitting_unmasks_exactly_the_positions_it_announced(tokens_per_call: int) -> None:
    """The positions passed to a score function that reads them are the ones the event unmasks
    (one per call, or `tokens_per_call`), in every row, and nothing else moves."""
    from ddiff.samplers import FirstHittingSampler
    from ddiff.schedules import LogLinearSchedule

    graph = AbsorbingGraph(3)
    oracle = LabelledOracle.random(graph, 5, num_labels=2, seed=0)
    guided = ClassifierGuidance(oracle.unconditional, oracle.classifier(1), 1.0, graph=graph)
    seen: list[tuple[Tensor, Tensor]] = []

    class Recorder:
        reads_positions = True

        def __call__(self, x_t: Tensor, sigma: Tensor, *, positions: Tensor) -> Tensor:
            seen.append((x_t.clone(), positions.clone()))
            return guided(x_t, sigma, positions=positions)

    sampler = FirstHittingSampler(graph, LogLinearSchedule(), tokens_per_call=tokens_per_call)
    out = sampler.sample(Recorder(), 16, 5, None, generator=torch.Generator().manual_seed(3))
    states = [x for x, _ in seen] + [out]
    assert len(seen) == -(-5 // tokens_per_call)  # all rows are evaluated at every call
    for (before, positions), after in zip(seen, states[1:], strict=True):
        moved = before != after
        assert torch.equal(moved, positions)  # exactly the announced positions unmask
        assert bool((before[positions] == graph.mask_token).all())


@pytest.mark.parametrize("weight", [-1.0, float("nan"), float("inf")])
def test_bad_weights_are_refused(weight: float) -> None:
    fn = lambda x, s: torch.zeros(*x.shape, 3)  # noqa: E731
    with pytest.raises(ValueError, match="weight must be a finite number >= 0"):
        ClassifierFreeGuidance(fn, fn, weight)
    with pytest.raises(ValueError, match="weight must be a finite number >= 0"):
        ClassifierGuidance(fn, lambda x, s: torch.zeros(x.shape[0]), weight)


def test_errors_say_what_to_do() -> None:
    fn = lambda x, s: torch.zeros(*x.shape, 3)  # noqa: E731
    x_t, sigma = torch.tensor([[0, 1]]), torch.tensor([0.5])
    with pytest.raises(ValueError, match="mode must be 'exact' or 'first_order'"):
        ClassifierGuidance(fn, fn, 1.0, mode="second")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"bind it with ddiff\.guidance\.select_label"):
        ClassifierGuidance(fn, lambda x, s: torch.zeros(x.shape[0], 2), 1.0)(x_t, sigma)
    with pytest.raises(ValueError, match="must be positive and finite"):
        ClassifierGuidance(fn, lambda x, s: torch.full((x.shape[0],), -torch.inf), 1.0)(x_t, sigma)
    with pytest.raises(ValueError, match="log-scores \\[batch, length, states\\]"):
        ClassifierFreeGuidance(fn, lambda x, s: torch.zeros(2), 0.5)(x_t, sigma)
    with pytest.raises(TypeError, match="cond_fn must be callable"):
        ClassifierFreeGuidance(None, fn, 0.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="the graph has 4"):
        ClassifierFreeGuidance(fn, fn, 0.5, graph=AbsorbingGraph(3))(x_t, sigma)


def test_select_label() -> None:
    logits = torch.tensor([[0.0, 1.0, 2.0]])
    fn = select_label(lambda x, s: logits, 2)
    torch.testing.assert_close(
        fn(torch.zeros(1, 2, dtype=torch.long), torch.ones(1)), torch.log_softmax(logits, -1)[:, 2]
    )
    with pytest.raises(ValueError, match="out of range for a classifier of 3 labels"):
        select_label(lambda x, s: logits, 3)(torch.zeros(1, 2, dtype=torch.long), torch.ones(1))
    with pytest.raises(ValueError, match="label must be a class index"):
        select_label(lambda x, s: logits, -1)


def test_dense_graph_is_guided_everywhere() -> None:
    """A graph without frozen states: graph= changes nothing."""
    q = torch.tensor([[-1.0, 0.5, 0.2], [0.4, -0.9, 0.3], [0.6, 0.4, -0.5]], dtype=F64)
    graph = DenseGraph(q)
    oracle = LabelledOracle.random(graph, 2, num_labels=2, seed=1)
    x_t, sigma = noisy_batch(oracle)
    a = ClassifierGuidance(oracle.unconditional, oracle.classifier(0), 2.0)(x_t, sigma)
    b = ClassifierGuidance(oracle.unconditional, oracle.classifier(0), 2.0, graph=graph)(x_t, sigma)
    assert torch.equal(a, b)


def test_first_order_refuses_an_overflowing_term() -> None:
    """Near zero noise the exact classifier's gradient grows like 1 / sigma: the linearisation
    breaks down and the guidance says to use the exact mode instead of overflowing a sampler."""
    oracle = problem("absorbing")
    first = ClassifierGuidance(oracle.unconditional, oracle.classifier(1), 1.0, mode="first_order")
    x_t = oracle.unconditional.sample_data(16, torch.Generator().manual_seed(0))
    x_t[:, 1] = 3  # a masked position, which p_t makes very unlikely at this noise level
    with pytest.raises(ValueError, match="use mode='exact'"):
        first(x_t, torch.full((16,), 1e-6, dtype=F64))
