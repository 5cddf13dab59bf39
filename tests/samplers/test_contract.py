"""The Sampler contract, checked for every sampler on every graph.

Every sampler class in ddiff is run (`cases.SAMPLERS`, from `tests.testing.registry`); a new
graph is one line in GRAPHS. The checks shared with users live in `ddiff.testing.contracts`.
"""

from __future__ import annotations

import pytest
import torch

from ddiff import AbsorbingGraph, DenseGraph, Graph, UniformGraph
from ddiff.conditioning import Clamp, Condition
from ddiff.samplers import Interval, Sampler, tweedie_probs, uniform_time_grid
from ddiff.schedules import GeometricSchedule, LogLinearSchedule
from ddiff.testing import contracts
from ddiff.testing.contracts import ToyScore
from tests.testing import registry

from .cases import EXAMPLES
from .cases import GRID_SAMPLERS as SAMPLERS


def _random_q(s: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q = torch.rand(s, s, generator=g, dtype=torch.float64) * 2
    q.fill_diagonal_(0.0)
    q.diagonal().sub_(q.sum(dim=0))
    return q


GRAPHS: dict[str, Graph] = {
    "uniform": UniformGraph(4),
    "absorbing": AbsorbingGraph(4),
    "dense": DenseGraph(_random_q(4, 0)),
    "dense-absorbing": DenseGraph(AbsorbingGraph(3).rate_matrix(), num_tokens=3),
}
every = pytest.mark.parametrize(
    ("sampler_name", "graph_name"), [(s, g) for s in SAMPLERS for g in GRAPHS]
)
samplers = pytest.mark.parametrize("sampler_name", list(SAMPLERS))


def make(sampler_name: str, graph_name: str, **kwargs: object) -> Sampler:
    return SAMPLERS[sampler_name](GRAPHS[graph_name], LogLinearSchedule(), **kwargs)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_every_sampler_class_has_a_name() -> None:
    assert not registry.missing(Sampler, EXAMPLES), "add these samplers to cases.EXAMPLES"


# -- outputs ---------------------------------------------------------------------------------------


@every
def test_samples_are_data_tokens_of_the_right_shape(sampler_name: str, graph_name: str) -> None:
    contracts.check_sampler_output(make(sampler_name, graph_name))  # [6, 9], no MASK left


@every
def test_run_reports_nfe_and_times(sampler_name: str, graph_name: str) -> None:
    result = contracts.check_sampler_run(make(sampler_name, graph_name, final_time=1e-3), steps=7)
    assert result.nfe == 8  # 7 steps + denoise
    torch.testing.assert_close(result.times, uniform_time_grid(7, 1e-3))
    no_denoise = contracts.check_sampler_run(make(sampler_name, graph_name, denoise=False), steps=7)
    assert no_denoise.nfe == 7


@every
def test_same_seed_same_samples(sampler_name: str, graph_name: str) -> None:
    contracts.check_sampler_determinism(make(sampler_name, graph_name))


@every
def test_sampler_keeps_no_state(sampler_name: str, graph_name: str) -> None:
    contracts.check_sampler_stateless(make(sampler_name, graph_name))


@every
def test_float32_categorical_draws(sampler_name: str, graph_name: str) -> None:
    graph = GRAPHS[graph_name]
    sampler = make(sampler_name, graph_name, categorical_dtype=torch.float32)
    x = sampler.sample(ToyScore(graph), 4, 5, 3, generator=gen())
    assert int(x.max()) < graph.num_tokens


@samplers
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
def test_any_floating_score_dtype(sampler_name: str, dtype: torch.dtype) -> None:
    graph = GRAPHS["uniform"]
    toy = ToyScore(graph)
    x = make(sampler_name, "uniform").sample(
        lambda x_t, sigma: toy(x_t, sigma).to(dtype), 3, 4, 3, generator=gen()
    )
    assert x.shape == (3, 4)


@samplers
def test_absorbing_positions_never_remask(sampler_name: str) -> None:
    """Reverse absorbing chains only unmask: the fast path skips unmasked positions."""
    graph = GRAPHS["absorbing"]
    score = ToyScore(graph)
    make(sampler_name, "absorbing").run(score, 16, 12, 12, generator=gen())
    seen = torch.stack(score.calls)  # [nfe, B, L]
    unmasked = seen != graph.mask_token
    assert bool(unmasked[0].logical_not().all())  # the chain starts from the limit: all MASK
    assert bool((unmasked[1:] >= unmasked[:-1]).all())  # and never goes back
    assert bool((seen[1:][unmasked[:-1]] == seen[:-1][unmasked[:-1]]).all())


# -- conditioning ----------------------------------------------------------------------------------


@every
def test_all_fixed_returns_the_condition(sampler_name: str, graph_name: str) -> None:
    contracts.check_sampler_all_fixed(make(sampler_name, graph_name))


@every
def test_nothing_fixed_equals_unconditional(sampler_name: str, graph_name: str) -> None:
    contracts.check_sampler_empty_condition(make(sampler_name, graph_name))


@every
def test_fixed_positions_are_clamped_at_every_step(sampler_name: str, graph_name: str) -> None:
    # Positions 1, 2 and 5 fixed to 2, 0 and 1, in what the score sees and in the result.
    contracts.check_sampler_clamping(make(sampler_name, graph_name))


@samplers
def test_batched_clamp_fixes_each_row(sampler_name: str) -> None:
    graph = GRAPHS["dense"]
    mask = torch.tensor([[True, False, False], [False, False, True], [False, False, False]])
    tokens = torch.tensor([[3, 0, 0], [0, 0, 2], [0, 0, 0]])
    clamp = Clamp.from_tensors(tokens, mask)
    x = make(sampler_name, "dense").sample(
        ToyScore(graph), 3, 3, 4, condition=clamp, generator=gen()
    )
    assert x[0, 0] == 3 and x[1, 2] == 2


@samplers
def test_score_fn_receives_the_condition_only_when_asked(sampler_name: str) -> None:
    graph = GRAPHS["uniform"]
    sampler = make(sampler_name, "uniform")
    condition = Condition.at({2: 3})

    def two_arguments(x_t: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return ToyScore(graph)(x_t, sigma)

    sampler.sample(two_arguments, 2, 4, 3, condition=condition)  # no keyword passed
    score = ToyScore(graph)
    sampler.sample(score, 2, 4, 3, condition=condition, pass_condition=True)
    assert len(score.conditions) == len(score.calls) == 4
    clamp = score.conditions[0]
    assert isinstance(clamp, Clamp) and clamp.mask.shape == (2, 4)
    assert clamp.mask[:, 2].all() and bool((clamp.tokens[:, 2] == 3).all())
    unconditional = ToyScore(graph)
    sampler.sample(unconditional, 2, 4, 3, pass_condition=True)  # an empty clamp
    assert unconditional.conditions[0].is_empty


@samplers
def test_condition_errors_reach_the_caller(sampler_name: str) -> None:
    sampler = make(sampler_name, "absorbing")
    score = ToyScore(GRAPHS["absorbing"])
    with pytest.raises(ValueError, match="'promoter' at position 2 has 5 tokens, longer"):
        sampler.sample(score, 2, 4, 3, condition=Condition.span(2, [0] * 5, name="promoter"))
    with pytest.raises(ValueError, match="not a data token"):  # MASK cannot be fixed
        sampler.sample(score, 2, 4, 3, condition=Condition.at({0: 4}))
    with pytest.raises(ValueError, match=r"clamp has shape \[3, 4\]"):
        clamp = Clamp.from_tensors(
            torch.zeros(3, 4, dtype=torch.long), torch.ones(3, 4, dtype=torch.bool)
        )
        sampler.sample(score, 2, 4, 3, condition=clamp)
    with pytest.raises(TypeError, match="Condition or Clamp"):
        sampler.sample(score, 2, 4, 3, condition={0: 1})  # type: ignore[arg-type]


# -- time grids and schedules ----------------------------------------------------------------------


@samplers
def test_custom_time_grid(sampler_name: str) -> None:
    def quadratic(steps: int, eps: float) -> torch.Tensor:
        u = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)
        return eps + (1 - eps) * u**2

    sampler = SAMPLERS[sampler_name](GRAPHS["uniform"], LogLinearSchedule(), time_grid=quadratic)
    result = sampler.run(ToyScore(GRAPHS["uniform"]), 2, 3, 5, generator=gen())
    torch.testing.assert_close(result.times, quadratic(5, sampler.final_time))


@samplers
@pytest.mark.parametrize(
    ("grid", "message"),
    [
        (lambda steps, eps: torch.linspace(1.0, eps, steps), "steps \\+ 1"),
        (lambda steps, eps: torch.linspace(eps, 1.0, steps + 1), "strictly decreasing"),
        (lambda steps, eps: torch.linspace(1.5, eps, steps + 1), "stay in \\(0, 1\\]"),
        (lambda steps, eps: torch.linspace(1.0, 0.0, steps + 1), "stay in \\(0, 1\\]"),
    ],
)
def test_bad_time_grids_are_rejected(sampler_name: str, grid, message: str) -> None:
    sampler = SAMPLERS[sampler_name](GRAPHS["uniform"], LogLinearSchedule(), time_grid=grid)
    with pytest.raises(ValueError, match=message):
        sampler.sample(ToyScore(GRAPHS["uniform"]), 2, 3, 4)


@every
def test_schedule_reaching_the_limit_starts_just_below_one(
    sampler_name: str, graph_name: str
) -> None:
    sampler = SAMPLERS[sampler_name](
        GRAPHS[graph_name], LogLinearSchedule(survival=0.0), final_time=1e-4
    )
    result = sampler.run(ToyScore(GRAPHS[graph_name]), 3, 4, 4, generator=gen())
    assert result.times[0] == 1 - 1e-4
    assert int(result.tokens.max()) < GRAPHS[graph_name].num_tokens


@samplers
def test_geometric_schedule(sampler_name: str) -> None:
    sampler = SAMPLERS[sampler_name](GRAPHS["uniform"], GeometricSchedule(1e-4, 20.0))
    assert sampler.sample(ToyScore(GRAPHS["uniform"]), 3, 4, 4, generator=gen()).shape == (3, 4)


# -- argument checks -------------------------------------------------------------------------------


@samplers
def test_arguments_are_checked(sampler_name: str) -> None:
    cls = SAMPLERS[sampler_name]
    graph, schedule = GRAPHS["uniform"], LogLinearSchedule()
    with pytest.raises(ValueError, match="final_time"):
        cls(graph, schedule, final_time=0.0)
    with pytest.raises(ValueError, match="categorical_dtype"):
        cls(graph, schedule, categorical_dtype=torch.float16)
    with pytest.raises(TypeError, match="Graph"):
        cls("uniform", schedule)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="NoiseSchedule"):
        cls(graph, "loglinear")  # type: ignore[arg-type]
    sampler = cls(graph, schedule)
    score = ToyScore(graph)
    for kwargs, name in [
        ({"batch": 0, "length": 3, "steps": 2}, "batch"),
        ({"batch": 2, "length": 0, "steps": 2}, "length"),
        ({"batch": 2, "length": 3, "steps": 0}, "steps"),
        ({"batch": 2, "length": 3, "steps": 2.5}, "steps"),
    ]:
        with pytest.raises(ValueError, match=f"{name} must be a positive int"):
            sampler.sample(score, **kwargs)  # type: ignore[arg-type]


@samplers
def test_wrong_score_shape_is_reported(sampler_name: str) -> None:
    sampler = make(sampler_name, "uniform")
    with pytest.raises(ValueError, match=r"\[2, 3, 4\], got \[2, 3, 5\]"):
        sampler.sample(lambda x, s: torch.zeros(2, 3, 5), 2, 3, 2)
    with pytest.raises(ValueError, match="floating"):
        sampler.sample(lambda x, s: torch.zeros(2, 3, 4, dtype=torch.long), 2, 3, 2)


@samplers
def test_progress_bar(sampler_name: str, capsys: pytest.CaptureFixture[str]) -> None:
    make(sampler_name, "uniform").sample(ToyScore(GRAPHS["uniform"]), 2, 3, 3, progress=True)
    err = capsys.readouterr().err
    assert type(make(sampler_name, "uniform")).__name__ in err


def test_repr_names_the_parts() -> None:
    text = repr(make("analytic", "absorbing"))
    assert text.startswith("AnalyticSampler(AbsorbingGraph(num_tokens=4")
    assert "LogLinearSchedule" in text


# -- renamed arguments (kept for one release) -------------------------------------------------------


def _one_line_warning(record: pytest.WarningsRecorder, old: str, new: str) -> None:
    (warning,) = record
    message = str(warning.message)
    assert old in message and new in message and "\n" not in message, message


@samplers
def test_eps_is_the_deprecated_name_of_final_time(sampler_name: str) -> None:
    cls, graph, schedule = SAMPLERS[sampler_name], GRAPHS["uniform"], LogLinearSchedule()
    with pytest.warns(DeprecationWarning) as record:
        sampler = cls(graph, schedule, eps=1e-3)
    _one_line_warning(record, f"{cls.__name__}(eps=...)", "final_time=...")
    assert sampler.final_time == 1e-3
    with pytest.warns(DeprecationWarning) as record:
        assert sampler.eps == 1e-3
    _one_line_warning(record, f"{cls.__name__}.eps", f"{cls.__name__}.final_time")
    with pytest.raises(TypeError, match=r"both eps= \(deprecated\) and final_time="):
        cls(graph, schedule, eps=1e-3, final_time=1e-3)


def test_old_names_of_the_step_quantities() -> None:
    with pytest.warns(DeprecationWarning) as record:
        step = Interval(t=0.5, s=0.25, total_t=0.7, total_s=0.3, rate_t=2.0)
    assert len(record) == 2 and step == Interval(0.5, 0.25, 0.7, 0.3, 2.0)
    for old, new in (("total_t", "sigma_t"), ("total_s", "sigma_s"), ("dsigma", "delta_sigma")):
        with pytest.warns(DeprecationWarning) as record:
            assert getattr(step, old) == getattr(step, new)
        _one_line_warning(record, f"Interval.{old}", f"Interval.{new}")
    with pytest.warns(DeprecationWarning) as record:
        grid = uniform_time_grid(4, eps=0.5)
    _one_line_warning(record, "uniform_time_grid(eps=...)", "final_time=...")
    torch.testing.assert_close(grid, uniform_time_grid(4, final_time=0.5))
    graph, x = GRAPHS["dense"], torch.tensor([[0, 3, 1]])
    score = torch.rand(1, 3, graph.num_states, generator=gen(1))
    with pytest.warns(DeprecationWarning) as record:
        old = tweedie_probs(graph, x, score.clone(), dsigma=0.3)
    _one_line_warning(record, "tweedie_probs(dsigma=...)", "delta_sigma=...")
    torch.testing.assert_close(old, tweedie_probs(graph, x, score.clone(), delta_sigma=0.3))
