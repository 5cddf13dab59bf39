"""The contract checks reject broken implementations, with a message that says what broke.

A check that cannot fail is worthless: each checker of `ddiff.testing.contracts` is run here on a
deliberately broken Graph, NoiseSchedule, ScoreNet or Sampler (and, where cheap, on a correct
one). The shipped implementations pass them in tests/graphs, tests/schedules, tests/nets and
tests/samplers.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from ddiff import AbsorbingGraph, DenseGraph, Graph, UniformGraph
from ddiff.conditioning import Condition
from ddiff.nets import ScoreNet
from ddiff.samplers import AnalyticSampler, EulerSampler, Interval, Sampler
from ddiff.schedules import LogLinearSchedule, NoiseSchedule
from ddiff.testing import (
    ExactOracle,
    check_graph,
    check_sampler,
    check_schedule,
    check_score_net,
    contracts,
)

# -- graphs ---------------------------------------------------------------------------------------


class MatrixGraph(Graph):
    """A graph that trusts whatever rate matrix it is given (DenseGraph would refuse a bad one)."""

    def __init__(self, q: list[list[float]]) -> None:
        self._q = torch.tensor(q, dtype=torch.float64)

    @property
    def num_tokens(self) -> int:
        return self._q.shape[0]

    @property
    def num_states(self) -> int:
        return self._q.shape[0]

    def rate_matrix(self, dtype: torch.dtype = torch.float64) -> Tensor:
        return self._q.to(dtype)


class SlowTransition(UniformGraph):
    def transition(self, x_0: Tensor, sigma: Tensor | float) -> Tensor:
        return super().transition(x_0, 0.9 * torch.as_tensor(sigma))


class TransposedTransitionIn(AbsorbingGraph):
    def transition_in(self, x: Tensor, sigma: Tensor | float) -> Tensor:
        return super().transition(x, sigma)  # P[:, x] instead of P[x, :]


class TransposedRatesIn(AbsorbingGraph):
    def rates_in(self, x: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
        return super().rates_out(x, dtype)


class NaiveKernel(DenseGraph):
    def kernel(self, sigma: Tensor) -> Tensor:  # expm(inf * Q) is NaN
        q = self.rate_matrix(torch.float64)
        return torch.linalg.matrix_exp(sigma.double().reshape(-1, 1, 1) * q).to(sigma.dtype)


class SquaredNoise(UniformGraph):
    """exp(sigma^2 Q) is a valid kernel for every sigma, but not a semigroup in sigma."""

    def transition(self, x_0: Tensor, sigma: Tensor | float) -> Tensor:
        return Graph.transition(self, x_0, torch.as_tensor(sigma) ** 2)


class HalfNoiseDraws(UniformGraph):
    def sample_transition(
        self, x_0: Tensor, sigma: Tensor | float, generator: torch.Generator | None = None
    ) -> Tensor:
        return super().sample_transition(x_0, 0.5 * torch.as_tensor(sigma), generator)


class UniformDraws(AbsorbingGraph):
    def sample_transition(
        self, x_0: Tensor, sigma: Tensor | float, generator: torch.Generator | None = None
    ) -> Tensor:
        return torch.randint(self.num_states, x_0.shape, generator=generator)


class OneHotLimit(UniformGraph):
    def limit_distribution(self, dtype: torch.dtype = torch.float64) -> Tensor:
        return torch.eye(self.num_states, dtype=dtype)[0]


class ConstantLimitDraws(UniformGraph):
    def sample_limit(self, shape, generator=None, device=None) -> Tensor:  # type: ignore[no-untyped-def]
        return torch.zeros(tuple(shape), dtype=torch.long)


class NoDiagonal(UniformGraph):
    def reverse_rates(
        self, x: Tensor, score: Tensor, *, scale: float = 1.0, out: Tensor | None = None
    ) -> Tensor:
        return torch.mul(score, self.rates_in(x, dtype=score.dtype), out=out).mul_(scale)


class CopiesOut(UniformGraph):
    def reverse_rates(
        self, x: Tensor, score: Tensor, *, scale: float = 1.0, out: Tensor | None = None
    ) -> Tensor:
        return super().reverse_rates(x, score.clone(), scale=scale)  # ignores out


class IgnoresScale(UniformGraph):
    def reverse_rates(
        self, x: Tensor, score: Tensor, *, scale: float = 1.0, out: Tensor | None = None
    ) -> Tensor:
        return super().reverse_rates(x, score, out=out)


class MaskFrozen(AbsorbingGraph):
    def frozen_states(self) -> Tensor:
        return torch.ones(self.num_states, dtype=torch.bool)  # MASK does receive jumps


class FrozenUniform(UniformGraph):
    def frozen_states(self) -> Tensor:
        return torch.arange(self.num_states) == 0


class UnstaggeredScore(AbsorbingGraph):
    def staggered_score(self, score: Tensor, delta_sigma: Tensor | float) -> Tensor:
        return score.clone()  # forgets exp(-delta_sigma Q)


class SlightlyOffFastPath(AbsorbingGraph):
    def staggered_score(self, score: Tensor, delta_sigma: Tensor | float) -> Tensor:
        return super().staggered_score(score, delta_sigma) * (1 + 1e-5)


class UncheckedRates(UniformGraph):
    def rates_in(self, x: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
        return self.rate_matrix(dtype)[x]  # x = -1 silently reads the last row


def _leaky() -> MatrixGraph:
    return MatrixGraph([[-1.0, 1.5], [1.0, -1.0]])


def test_passes_correct_graphs() -> None:
    check_graph(AbsorbingGraph(2))
    check_graph(DenseGraph([[-1.0, 2.0], [1.0, -2.0]]), sigmas=(0.0, 0.5), infinite_noise=False)


@pytest.mark.parametrize(
    ("check", "match"),
    [
        (
            lambda: contracts.check_rate_matrix(_leaky()),
            r"^rate matrix check failed for MatrixGraph\(num_tokens=2, num_states=2\): column 1 of "
            r"Q sums to 0\.5, not 0",
        ),
        (lambda: check_graph(_leaky()), "column 1 of Q sums to 0.5"),
        (
            lambda: contracts.check_rate_matrix(MatrixGraph([[0.5, -0.5], [-0.5, 0.5]])),
            r"rate matrix check failed .*: Q\[0, 1\] = -0\.5 is negative",
        ),
        (
            lambda: contracts.check_rate_matrix(TransposedRatesIn(3)),
            r"^rates_in check failed for TransposedRatesIn\(.*\): rates_in\(x\) differs from "
            r"Q\[x, :\] by 1 at \[x=0, y=3\]",
        ),
        (
            lambda: contracts.check_transition(SlowTransition(3), 0.1),
            r"^kernel check failed for SlowTransition\(num_tokens=3, num_states=3\): "
            r"transition\(x_0, sigma=0\.1\) differs from matrix_exp\(sigma Q\)\[:, x_0\] by "
            r"0\.00[0-9]+ at \[x_0=0, x_t=0\] \(got 0\.9[0-9]+, expected 0\.9[0-9]+;",
        ),
        (lambda: check_graph(SlowTransition(3)), r"kernel check failed.*sigma=0\.001"),
        (
            lambda: contracts.check_transition(TransposedTransitionIn(3), 0.1),
            r"kernel check failed .*: transition_in\(x, sigma=0\.1\) differs from "
            r"matrix_exp\(sigma Q\)\[x, :\] by 0\.095.* at \[x=0, x_0=3\]",
        ),
        (
            lambda: contracts.check_transition(NaiveKernel([[-1.0, 2.0], [1.0, -2.0]]), math.inf),
            r"kernel check failed .*: transition\(x_0, sigma=inf\) differs from the limit "
            r"distribution\[:, x_0\] by nan",
        ),
        (
            lambda: contracts.check_chapman_kolmogorov(SquaredNoise(3), 0.5, 1.0),
            r"^Chapman-Kolmogorov check failed .*: transition\(sigma=1\.5\) differs from "
            r"transition\(sigma=0\.5\) @ transition\(sigma=1\)",
        ),
        (
            lambda: contracts.check_sample_transition(HalfNoiseDraws(3), 1.0),
            r"^sampling check failed .*: sample_transition\(x_0, sigma=1\) from x_0 = 0: "
            r"chi-square p-value .* < 0\.0001",
        ),
        (
            lambda: contracts.check_sample_transition(UniformDraws(3), 0.1),
            r"sampling check failed .*: sample_transition\(x_0, sigma=0\.1\) drew x_t = 1 from "
            r"x_0 = 0 \d+ times, but matrix_exp\(sigma Q\)\[1, 0\] = 0",
        ),
        (
            lambda: contracts.check_limit(OneHotLimit(3)),
            r"^limit check failed .*: \(Q pi\)\[0\] = -0\.667: pi is not stationary",
        ),
        (
            lambda: contracts.check_limit(ConstantLimitDraws(3)),
            r"limit check failed .*: state 0 has frequency 1\.0000 .* but probability 0\.3333",
        ),
        (
            lambda: contracts.check_reverse_rates(NoDiagonal(3)),
            r"^reverse rates check failed .*: reverse_rates\(x, score\) differs from score\[y\] "
            r"\* Q\[x, y\] \(y != x\), minus their sum at y = x by",
        ),
        (
            lambda: contracts.check_reverse_rates(CopiesOut(3)),
            r"^reverse rates check failed .*: reverse_rates\(x, score, scale=0\.3, out=score\) "
            r"did not return score",
        ),
        (
            lambda: contracts.check_reverse_rates(IgnoresScale(3)),
            r"^reverse rates check failed .*: reverse_rates\(x, score, scale=0\.3, out=score\) "
            r"differs from 0\.3 \* \(score\[y\] \* Q\[x, y\] \(y != x\), minus their sum at "
            r"y = x\) by",
        ),
        (
            lambda: contracts.check_frozen_states(MaskFrozen(3)),
            r"^frozen states check failed .*: frozen_states\(\)\[3\] is True, but state 3 "
            r"receives jumps from other states",
        ),
        (
            lambda: contracts.check_generic_members(FrozenUniform(3), 0.3),
            r"^generic members check failed .*: frozen_states\(\) = \[True, False, False\] "
            r"differs from Graph\.frozen_states",
        ),
        (
            lambda: contracts.check_staggered_score(UnstaggeredScore(3), 0.5),
            r"^staggered score check failed .*: staggered_score\(score, delta_sigma=0\.5\) "
            r"differs from matrix_exp\(-delta_sigma Q\) @ score",
        ),
        (
            lambda: contracts.check_generic_members(SlightlyOffFastPath(3), 0.3),
            r"^generic members check failed .*: staggered_score\(score, delta_sigma=0\.3\) differs "
            r"from Graph\.staggered_score by [0-9.e-]+ at \[batch=\d, position=\d, y=\d\]",
        ),
        (
            lambda: contracts.check_graph_arguments(UncheckedRates(3)),
            r"^argument errors check failed .*: rates_in\(x = -1\) did not raise; expected a "
            r"ValueError matching 'outside'",
        ),
    ],
    ids=[
        "leaky-column",
        "leaky-column-whole-contract",
        "negative-rate",
        "transposed-rates-in",
        "slow-transition",
        "slow-transition-whole-contract",
        "transposed-transition-in",
        "nan-at-infinite-noise",
        "not-a-semigroup",
        "draws-at-half-noise",
        "draws-off-support",
        "limit-not-stationary",
        "limit-draws-constant",
        "reverse-rates-no-diagonal",
        "reverse-rates-out-ignored",
        "reverse-rates-scale-ignored",
        "mask-frozen",
        "frozen-state-off-generic",
        "unstaggered-score",
        "fast-path-off-generic",
        "unchecked-tokens",
    ],
)
def test_rejects_broken_graphs(check, match: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(AssertionError, match=match):
        check()


def test_graph_checks_refuse_bad_sigmas() -> None:
    with pytest.raises(ValueError, match="finite and >= 0"):
        check_graph(UniformGraph(2), sigmas=(math.inf,))


# -- schedules ------------------------------------------------------------------------------------


class FastRate(LogLinearSchedule):
    def _rate(self, t: Tensor) -> Tensor:
        return 1.01 * super()._rate(t)


class Decreasing(LogLinearSchedule):
    def _total(self, t: Tensor) -> Tensor:
        return super()._total(t) - 2.0 * t


class LateStart(LogLinearSchedule):
    @property
    def total_min(self) -> float:
        return 0.1


class SloppyInverse(LogLinearSchedule):
    def _inverse(self, total: Tensor) -> Tensor:
        return 0.99 * super()._inverse(total)


class AlwaysFloat64(LogLinearSchedule):
    def _total(self, t: Tensor) -> Tensor:
        return super()._total(t).double()


class Clamping(LogLinearSchedule):
    @staticmethod
    def _check_time(t: Tensor | float) -> Tensor:  # clamps instead of refusing
        return torch.as_tensor(t).clamp(0.0, 1.0)


class ReturnsFloats(LogLinearSchedule):
    def _total(self, t: Tensor) -> Tensor:
        out = super()._total(t)
        return float(out) if out.dim() == 0 else out  # type: ignore[return-value]


class NaiveFloat32(LogLinearSchedule):
    def _total(self, t: Tensor) -> Tensor:
        return -torch.log(1 - (1 - self.survival) * t)  # cancels next to the data


class NumpyLogLinear(NoiseSchedule):
    """Total noise by numpy: no autograd, so the rate is checked by finite differences."""

    def __init__(self, slope: float = 1.0) -> None:
        self.slope = slope

    def _total(self, t: Tensor) -> Tensor:
        return torch.from_numpy(-np.log1p(-0.999 * t.double().numpy())).to(t.dtype)

    def _rate(self, t: Tensor) -> Tensor:
        return self.slope * 0.999 / (1 - 0.999 * t)

    def _inverse(self, total: Tensor) -> Tensor:
        return -torch.expm1(-total) / 0.999

    def __repr__(self) -> str:
        return f"NumpyLogLinear(slope={self.slope})"


@pytest.mark.parametrize(
    ("check", "match"),
    [
        (
            lambda: contracts.check_schedule_rate(FastRate(), [0.5]),
            r"^rate = d total/dt check failed for FastRate\(survival=0\.001\): rate\(t\) differs from "
            r"d total/dt \(autograd\) by 0\.02 at \[t=0\.5\]",
        ),
        (lambda: check_schedule(FastRate()), r"rate\(t\) differs from d total/dt"),
        (
            lambda: contracts.check_schedule_rate(NumpyLogLinear(slope=1.001), [0.25, 0.5]),
            r"rate\(t\) differs from d total/dt \(central finite differences\) by 0\.002 at "
            r"\[t=0\.5\]",
        ),
        (
            lambda: contracts.check_schedule_total(Decreasing(), [0.1, 0.2]),
            r"^monotone check failed for Decreasing\(survival=0\.001\): total\(t\) decreases from "
            r".* at t = 0\.1[0-9]* to .* at t = 0\.2",
        ),
        (
            lambda: contracts.check_schedule_ends(LateStart()),
            r"^ends check failed .*: total\(0\) = 0\.0, total\(1\) = 6\.90.*; total_min = 0\.1",
        ),
        (
            lambda: contracts.check_schedule_inverse(SloppyInverse(), [0.5]),
            r"^inverse check failed .*: inverse\(total\(t\)\) in torch\.float64 differs from t "
            r"by 0\.005 at \[t=0\.5\]",
        ),
        (
            lambda: contracts.check_schedule_dtypes(AlwaysFloat64()),
            r"^shape and dtype check failed .*: total\(t\) is \[\] torch\.float64 for t of shape "
            r"\[\] torch\.float16",
        ),
        (
            lambda: contracts.check_schedule_arguments(Clamping()),
            r"^argument errors check failed .*: total\(t\) with t\[2\] = -1e-09 did not raise; "
            r"expected a ValueError matching 't must lie",
        ),
        (
            lambda: contracts.check_schedule_python_numbers(ReturnsFloats()),
            r"Python numbers check failed .*: total\(0\.25\) is a float, not a 0-dim",
        ),
        (
            lambda: contracts.check_schedule_precision(NaiveFloat32()),
            r"^float32 precision check failed .*: total\(t\) in float32 differs from float64 by "
            r".* at \[t=1e-06\]",
        ),
    ],
    ids=[
        "rate-not-derivative",
        "rate-not-derivative-whole-contract",
        "rate-not-derivative-numpy",
        "decreasing-total",
        "total-min-wrong",
        "inverse-off",
        "dtype-not-kept",
        "times-clamped-not-refused",
        "python-float-returned",
        "float32-cancellation",
    ],
)
def test_rejects_broken_schedules(check, match: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(AssertionError, match=match):
        check()


def test_finite_differences_accept_a_correct_schedule() -> None:
    contracts.check_schedule_rate(NumpyLogLinear(), torch.linspace(0.01, 0.99, 99))


# -- score networks -------------------------------------------------------------------------------


class TableNet(ScoreNet):
    """The smallest correct ScoreNet: log-scores from a table indexed by the current token."""

    def __init__(self, num_states: int) -> None:
        super().__init__(num_states)
        gen = torch.Generator().manual_seed(0)
        self.table = nn.Parameter(torch.randn(num_states, num_states, generator=gen))

    def _forward(self, x_t: Tensor, sigma: Tensor) -> Tensor:
        return self.scores(x_t, sigma).scatter(-1, x_t.unsqueeze(-1), 0.0)

    def scores(self, x_t: Tensor, sigma: Tensor) -> Tensor:
        return self.table[x_t] - torch.log1p(sigma.clamp(max=1e4))[:, None, None]


class NotZeroAtCurrent(TableNet):
    def _forward(self, x_t: Tensor, sigma: Tensor) -> Tensor:
        return self.scores(x_t, sigma)


class MixesTheBatch(TableNet):
    def scores(self, x_t: Tensor, sigma: Tensor) -> Tensor:
        return super().scores(x_t, sigma) + sigma.mean()


class InfiniteAtInfinity(TableNet):
    def scores(self, x_t: Tensor, sigma: Tensor) -> Tensor:
        return self.table[x_t] * sigma[:, None, None]


class Unvalidated(TableNet):
    def check_inputs(self, x_t: Tensor, sigma: Tensor | float) -> tuple[Tensor, Tensor]:
        return x_t, torch.as_tensor(sigma).reshape(-1).expand(x_t.shape[0])  # no checks


def test_passes_a_correct_net() -> None:
    net = TableNet(4).train()
    check_score_net(net, UniformGraph(4))
    assert net.training and net.table.grad is None  # mode restored, no gradient left behind


@pytest.mark.parametrize(
    ("net", "match"),
    [
        (
            NotZeroAtCurrent(4),
            r"^zero at the current token check failed for NotZeroAtCurrent: net\(x_t, "
            r"sigma\)\[0, 0, \d\] = .* at the current token x_t\[0, 0\]",
        ),
        (
            MixesTheBatch(4),
            r"^batch independence check failed for MixesTheBatch: net\(x_t, sigma\)\[0\] "
            r"differs from net\(x_t\[0:1\], sigma\[0:1\]\) by",
        ),
        (
            InfiniteAtInfinity(4),
            r"^finite check failed for InfiniteAtInfinity: net\(x_t, sigma\)\[3, 0, \d\] = -?inf "
            r"for sigma \[0, 1e-05, 20, inf\]",
        ),
        (
            Unvalidated(4),
            r"^input validation check failed for Unvalidated: net\(x_t \[4\] torch\.int64, "
            r"sigma \[1\.0\]\) raised .*; expected a ValueError",
        ),
        (TableNet(5), r"^sizes check failed for TableNet: net\.num_states = 5 but"),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, nn.Module) else "",
)
def test_rejects_broken_nets(net: ScoreNet, match: str) -> None:
    with pytest.raises(AssertionError, match=match):
        check_score_net(net, UniformGraph(4))


# -- samplers -------------------------------------------------------------------------------------


class Lazy(Sampler):
    """Never moves: ignores the score (the final denoise step is all that uses it)."""

    def step(
        self, x: Tensor, score: Tensor, interval: Interval, generator: torch.Generator | None
    ) -> Tensor:
        return x


class GlobalRandomness(EulerSampler):
    def step(
        self, x: Tensor, score: Tensor, interval: Interval, generator: torch.Generator | None
    ) -> Tensor:
        return super().step(x, score, interval, None)


class CountsSteps(EulerSampler):
    def step(
        self, x: Tensor, score: Tensor, interval: Interval, generator: torch.Generator | None
    ) -> Tensor:
        self.steps_taken = getattr(self, "steps_taken", 0) + 1
        return super().step(x, score, interval, generator)


class DropsTheCondition(EulerSampler):
    def run(self, score_fn, batch, length, steps, *, condition=None, **kwargs):  # type: ignore[no-untyped-def]
        return super().run(score_fn, batch, length, steps, **kwargs)


def _on(cls: type[Sampler], graph: Graph | None = None) -> Sampler:
    return cls(graph or UniformGraph(3), LogLinearSchedule())


@pytest.mark.parametrize(
    ("check", "match"),
    [
        (
            lambda: check_sampler(Lazy, steps=16, num_samples=4000),
            r"^exactness check failed for Lazy\(UniformGraph\(num_tokens=3, num_states=3\), "
            r"LogLinearSchedule\(survival=0\.001\), final_time=1e-05, denoise=True\): with exact scores, "
            r"4000 samples of length 2 drawn in 16 steps are at total-variation distance "
            r"0\.[1-9]\d* from the data distribution, above 0\.04",
        ),
        (
            lambda: contracts.check_sampler_infill(
                _on(Lazy),
                ExactOracle.random(UniformGraph(3), 3, seed=1),
                Condition.at({1: 2}),
                steps=16,
                num_samples=4000,
            ),
            r"^infill check failed for Lazy\(.*\): with exact conditional scores, 4000 samples "
            r"drawn in 16 steps are at total-variation distance 0\.\d+ from the exact "
            r"conditional, above 0\.04",
        ),
        (
            lambda: contracts.check_sampler_determinism(_on(GlobalRandomness)),
            r"^determinism check failed .*: generators seeded alike gave different samples",
        ),
        (
            lambda: contracts.check_sampler_stateless(_on(CountsSteps)),
            r"^statelessness check failed .*: sample\(\.\.\.\) changed the attributes "
            r"\['steps_taken'\]",
        ),
        (
            lambda: contracts.check_sampler_clamping(_on(DropsTheCondition, UniformGraph(4))),
            r"^conditioning check failed .*: position 1 is fixed to 2 but holds \[.*\] in the x_t "
            r"of score call 0",
        ),
        (
            lambda: contracts.check_sampler_all_fixed(_on(DropsTheCondition)),
            r"conditioning check failed .*: with every position fixed to \[0, 1, 2, 0, 1, 2, 0\]",
        ),
    ],
    ids=[
        "ignores-score",
        "ignores-score-infill",
        "global-rng",
        "counts-steps",
        "drops-condition-clamping",
        "drops-condition-all-fixed",
    ],
)
def test_rejects_broken_samplers(check, match: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(AssertionError, match=match):
        check()


def test_exactness_requires_the_distance_to_fall() -> None:
    """The analytic sampler is exact in one dimension: its distance cannot fall with the steps."""
    graph = AbsorbingGraph(3)
    oracle = ExactOracle.random(graph, 1, seed=4, concentration=1.0)
    with pytest.raises(AssertionError, match=r"does not fall with the steps \(1: 0\.0\d+, 4: "):
        contracts.check_sampler_exactness(_on(AnalyticSampler, graph), oracle, steps=(1, 4))


def test_sampler_arguments() -> None:
    with pytest.raises(TypeError, match="Sampler or a factory"):
        check_sampler("euler")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="too many"):
        check_sampler(_on(EulerSampler, UniformGraph(64)))
