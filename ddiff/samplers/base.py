"""The `Sampler` abstraction: one reverse-diffusion loop; subclasses implement a step."""

from __future__ import annotations

import abc
import math
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import ClassVar, cast

import torch
from torch import Tensor

from ddiff._checks import renamed_keywords, warn_renamed
from ddiff.conditioning import Clamp, Condition, ConditionalScoreFn
from ddiff.graphs import AbsorbingGraph, Graph
from ddiff.losses import ScoreFn
from ddiff.samplers._draw import draw_categorical
from ddiff.samplers.correctors import Corrector
from ddiff.schedules import NoiseSchedule

TimeGrid = Callable[[int, float], Tensor]
"""`time_grid(steps, final_time) -> times [steps + 1]`, decreasing from (at most) 1 to `final_time`."""


@renamed_keywords(eps="final_time")
def uniform_time_grid(steps: int, final_time: float) -> Tensor:
    """`steps + 1` times spaced uniformly from 1 down to `final_time` (float64); the default grid.

    Example:
        >>> from ddiff.samplers import uniform_time_grid
        >>> uniform_time_grid(4, 0.5).tolist()
        [1.0, 0.875, 0.75, 0.625, 0.5]
    """
    return torch.linspace(1.0, final_time, steps + 1, dtype=torch.float64)


@dataclass(frozen=True, init=False)
class Interval:
    r"""One step of the reverse chain, from time `t` down to `s < t` (shared by the whole batch).

    Attributes:
        t: the current time.
        s: the time after the step.
        sigma_t: total noise $\bar\sigma(t)$.
        sigma_s: total noise $\bar\sigma(s)$.
        rate_t: noise rate $\sigma(t)$, the factor between the graph's reverse rates and the
            reverse chain's rates at time t.

    Example:
        >>> from ddiff.samplers import Interval
        >>> step = Interval(t=0.5, s=0.25, sigma_t=0.69, sigma_s=0.29, rate_t=2.0)
        >>> step.dt, round(step.delta_sigma, 2)
        (0.25, 0.4)
    """

    t: float
    s: float
    sigma_t: float
    sigma_s: float
    rate_t: float

    @renamed_keywords(total_t="sigma_t", total_s="sigma_s")
    def __init__(self, t: float, s: float, sigma_t: float, sigma_s: float, rate_t: float) -> None:
        values = (t, s, sigma_t, sigma_s, rate_t)
        for name, value in zip(("t", "s", "sigma_t", "sigma_s", "rate_t"), values, strict=True):
            object.__setattr__(self, name, value)  # frozen

    @property
    def dt(self) -> float:
        """The step's length in time, `t - s` (> 0)."""
        return self.t - self.s

    @property
    def delta_sigma(self) -> float:
        r"""The noise removed by the step, $\bar\sigma(t) - \bar\sigma(s) \ge 0$."""
        return self.sigma_t - self.sigma_s

    @property
    def total_t(self) -> float:
        """Deprecated name of `sigma_t` (removed in the next release)."""
        warn_renamed("Interval.total_t", "Interval.sigma_t")
        return self.sigma_t

    @property
    def total_s(self) -> float:
        """Deprecated name of `sigma_s` (removed in the next release)."""
        warn_renamed("Interval.total_s", "Interval.sigma_s")
        return self.sigma_s

    @property
    def dsigma(self) -> float:
        """Deprecated name of `delta_sigma` (removed in the next release)."""
        warn_renamed("Interval.dsigma", "Interval.delta_sigma")
        return self.delta_sigma


@dataclass(frozen=True, eq=False)
class SampleResult:
    """What `Sampler.run` returns.

    Attributes:
        tokens: the samples, LongTensor `[batch, length]` of data tokens (no MASK when the
            final denoise step ran).
        nfe: number of score-function evaluations (`steps + 1` with the denoise step; 0 when
            every position was fixed by the condition).
        times: the time grid that was used, float64 `[steps + 1]`, from the start time down to
            `final_time` (the denoise step then goes from `times[-1]` to zero noise). For
            `FirstHittingSampler`, which has no grid, the unmasking times of each sequence,
            `[batch, nfe]`, decreasing, NaN after a sequence's last event.
        sequence_nfe: the mean number of score evaluations per sequence, at most `nfe`: with
            `cache=True` and with `FirstHittingSampler` a call evaluates only the sequences
            that need it, so this (not `nfe`) measures the network's work. Equal to `nfe`
            when every call evaluates the whole batch.

    Example:
        >>> import torch
        >>> from ddiff import AbsorbingGraph
        >>> from ddiff.samplers import EulerSampler
        >>> from ddiff.schedules import LogLinearSchedule
        >>> from ddiff.testing import ExactOracle
        >>> graph = AbsorbingGraph(2)
        >>> oracle = ExactOracle.random(graph, length=3, seed=0)
        >>> result = EulerSampler(graph, LogLinearSchedule()).run(
        ...     oracle, batch=2, length=3, steps=4, generator=torch.Generator().manual_seed(0)
        ... )
        >>> result.tokens  # data tokens only: no MASK (2) left
        tensor([[0, 1, 1],
                [1, 1, 1]])
        >>> result.nfe  # 4 steps + the denoise step
        5
        >>> [round(t, 3) for t in result.times.tolist()]  # from t = 1 down to final_time = 1e-5
        [1.0, 0.75, 0.5, 0.25, 0.0]
    """

    tokens: Tensor
    nfe: int
    times: Tensor
    sequence_nfe: float


class Sampler(abc.ABC):
    r"""Reverse diffusion from the limit distribution to data; subclasses implement `step`.

    The base class owns the loop shared by every sampler: it draws $x_1$ from the graph's
    limit, walks a time grid from 1 down to a small `final_time`, calls the score function once per
    step, hands the scores (exponentiated into a buffer reused across steps) of the positions
    that can move to `step`, applies the condition after every step, and ends with
    the **denoise** step: one analytic (Tweedie) step from $\bar\sigma(t_{\min})$ to zero noise
    whose probabilities are restricted to data tokens, so no MASK (or other non-data state) is
    left. The reverse chain of the forward CTMC has rates

    $$\bar Q_t[y, x] = \sigma(t)\, \frac{p_t(y)}{p_t(x)}\, Q[x, y] \quad (y \ne x),$$

    the concrete scores times the forward rates into x (`Graph.reverse_rates` times
    $\sigma(t)$); the subclasses differ in how they integrate it over a step (Lou, Meng & Ermon,
    *Discrete Diffusion Modeling by Estimating the Ratios of the Data Distribution*, ICML 2024;
    Campbell et al., *A Continuous Time Framework for Discrete Denoising Models*, NeurIPS 2022).

    Samplers are stateless: the score function
    `score_fn(x_t [B, L], sigma [B] float64) -> log-scores [B, L, S]` (a network, or
    `ddiff.testing.ExactOracle`) is passed to `sample`, randomness comes from the optional
    `torch.Generator`, and nothing is stored on `self` during a call.

    **Conditioning.** `condition` (a `ddiff.conditioning.Condition` or `Clamp`) fixes tokens:
    they start at their values and are clamped after every step (a projection). The score
    function is called as `score_fn(x_t, sigma)` unless `pass_condition=True`, in which case
    it is called as `score_fn(x_t, sigma, condition=clamp)` with the `Clamp` expanded to
    `[B, L]` (an empty clamp when there is no condition): an explicit opt-in, so a plain network
    never receives an argument it does not expect.

    **Caching** (`cache=True`, absorbing graphs; MDLM's cached sampler, Sahoo et al., NeurIPS
    2024). A sequence whose tokens did not change since its last score evaluation (no position
    unmasked in the step) is not evaluated again: its log-scores are shifted from the noise
    level $\bar\sigma_0$ they were computed at to the new one, by
    $\log(e^{\bar\sigma_0} - 1) - \log(e^{\bar\sigma} - 1)$. This is **exact** when the
    score's only dependence on the noise is that factor, which holds for the exact score of an
    absorbing graph ($s_v = p_0(v \mid \text{unmasked}) / (e^{\bar\sigma} - 1)$ at a masked
    position) and for a time-agnostic network with the scaled-absorbing parameterisation
    (`TransformerScoreNet(time_conditioning=False, parameterization=
    ScaledAbsorbingParameterization(graph))`, RADD, Ou et al. 2024): the samples are then
    those of the uncached sampler with the same seed. With a network that reads the noise
    level it is an approximation (the network's own change between the two levels is
    dropped). Only the sequences that changed are passed to the score function, so a call
    evaluates a smaller batch, and a step where no sequence changed makes no call: `nfe`
    counts calls, `SampleResult.sequence_nfe` the evaluations per sequence. With many more
    steps than positions most steps change nothing, and the cost approaches one evaluation
    per position, as for `FirstHittingSampler`.

    **Predictor-corrector** (Campbell et al., *A Continuous Time Framework for Discrete
    Denoising Models*, NeurIPS 2022). With `corrector=`, after each predictor step from t to s
    (but the last, which the denoise step follows) the loop makes `corrector_steps` corrector
    steps at s, each one score call at $(x, \bar\sigma(s))$: a Markov kernel that leaves
    $p_s$ invariant with the exact score (see `Corrector`), pulling the state back towards
    $p_s$ after the predictor's discretisation error. `nfe` is
    `steps + corrector_steps * (steps - 1) + 1`. Corrector steps may move any free position
    (remasking moves unmasked tokens of an absorbing graph), so no position is skipped in them.

    **Work per step.** Everything outside the score function is O(B L S): no `S x S` matrix is
    built for uniform or absorbing graphs (a `DenseGraph` builds its `S x S` rate matrix or
    kernels once per step, which is what it is for: small alphabets).
    Positions that cannot move are not computed: fixed positions, and positions holding a data
    state that no other state jumps into (`Graph.frozen_states`: unmasked tokens of an absorbing
    graph), whose reverse rates are zero whatever the score.

    Args:
        graph: the forward process.
        schedule: the noise schedule the score function was trained with.
        final_time: the last time $t_{\min}$ of the grid ($0 < t_{\min} < 1$); the denoise step
            covers $[0, t_{\min}]$. (Formerly `eps`.)
        time_grid: `(steps, final_time) -> times [steps + 1]`, strictly decreasing from at most
            1 to `final_time`; default `uniform_time_grid`. When the schedule's total noise is
            infinite at the first time (e.g. `LogLinearSchedule(survival=0)` at t = 1, where the
            limit is exact), that time is replaced by `1 - final_time`; starting there from the
            limit costs at most the limit's distance to $p_{1 - t_{\min}}$ (for the absorbing
            graph and the log-linear schedule, $L\, t_{\min}$ in total variation).
        denoise: end with the denoise step (default True). Without it the result can hold
            non-data states such as MASK, and `nfe == steps`.
        categorical_dtype: floating type of the categorical draws, float64 by default: float32
            uniforms under-sample the smallest probabilities, which lowers the effective
            temperature and makes samples look better than they are. float32 is an option for
            speed.
        cache: reuse scores across steps (`AbsorbingGraph` only, else `TypeError`; see
            **Caching**).
        corrector: corrector steps after every predictor step but the last (a `Corrector`,
            e.g. `RateCorrector()` for any graph, `RemaskingCorrector()` for absorbing graphs;
            see **Predictor-corrector**).
        corrector_steps: number of corrector steps (one score call each) per predictor step.

    Subclassing: implement `step(x, score, interval, generator) -> new x` for positions laid
    out as one row `[1, N]` (see `step`). If the step can move a position out of a state that
    no other state jumps into (for instance a corrector that also uses forward rates), set the
    class attribute `frozen_states_stay = False`.

    Example:
        >>> import torch
        >>> from ddiff import AbsorbingGraph
        >>> from ddiff.conditioning import Condition
        >>> from ddiff.samplers import AnalyticSampler
        >>> from ddiff.schedules import LogLinearSchedule
        >>> from ddiff.testing import ExactOracle
        >>> graph = AbsorbingGraph(4)
        >>> oracle = ExactOracle.random(graph, length=3, seed=0)  # exact scores
        >>> sampler = AnalyticSampler(graph, LogLinearSchedule())
        >>> x = sampler.sample(oracle, batch=4, length=3, steps=8, condition=Condition.at({1: 2}),
        ...                    generator=torch.Generator().manual_seed(0))
        >>> x[:, 1].tolist(), bool((x < 4).all())  # the fixed token, and no MASK left
        ([2, 2, 2, 2], True)
    """

    frozen_states_stay: ClassVar[bool] = True
    """True if `step` never moves a position out of a data state with no incoming rates."""

    @renamed_keywords(eps="final_time")
    def __init__(
        self,
        graph: Graph,
        schedule: NoiseSchedule,
        *,
        final_time: float = 1e-5,
        time_grid: TimeGrid = uniform_time_grid,
        denoise: bool = True,
        categorical_dtype: torch.dtype = torch.float64,
        cache: bool = False,
        corrector: Corrector | None = None,
        corrector_steps: int = 1,
    ) -> None:
        if not isinstance(graph, Graph):
            raise TypeError(f"graph must be a ddiff Graph, got {type(graph).__name__}")
        if not isinstance(schedule, NoiseSchedule):
            raise TypeError(f"schedule must be a NoiseSchedule, got {type(schedule).__name__}")
        final_time = float(final_time)
        if not 0.0 < final_time < 1.0:
            raise ValueError(
                f"final_time (the last time of the grid) must be in (0, 1), got {final_time!r}"
            )
        if not callable(time_grid):
            raise TypeError("time_grid must be a callable (steps, final_time) -> times [steps + 1]")
        if categorical_dtype not in (torch.float32, torch.float64):
            raise ValueError(
                f"categorical_dtype must be torch.float64 (default) or torch.float32, got "
                f"{categorical_dtype}"
            )
        if cache and not isinstance(graph, AbsorbingGraph):
            raise TypeError(
                f"cache=True reuses scores across steps, which is exact only for an "
                f"AbsorbingGraph (its scores depend on the noise level through one known "
                f"factor); got {type(graph).__name__}: use cache=False"
            )
        if corrector is not None:
            if not isinstance(corrector, Corrector):
                raise TypeError(
                    f"corrector must be a ddiff.samplers.Corrector (e.g. RateCorrector()), got "
                    f"{type(corrector).__name__}"
                )
            corrector.check_graph(graph)
        self.graph = graph
        self.schedule = schedule
        self.final_time = final_time
        self.time_grid = time_grid
        self.denoise = bool(denoise)
        self.categorical_dtype = categorical_dtype
        self.cache = bool(cache)
        self.corrector = corrector
        self.corrector_steps = _positive_int(corrector_steps, "corrector_steps")

    def __repr__(self) -> str:
        extra = ", cache=True" if self.cache else ""
        if self.corrector is not None:
            extra += f", corrector={self.corrector!r}, corrector_steps={self.corrector_steps}"
        return (
            f"{type(self).__name__}({self.graph!r}, {self.schedule!r}, final_time={self.final_time!r}, "
            f"denoise={self.denoise}{extra})"
        )

    @property
    def eps(self) -> float:
        """Deprecated name of `final_time` (removed in the next release)."""
        warn_renamed(f"{type(self).__name__}.eps", f"{type(self).__name__}.final_time")
        return self.final_time

    # -- the step (subclasses) ---------------------------------------------------------------------

    @abc.abstractmethod
    def step(
        self,
        x: Tensor,
        score: Tensor,
        interval: Interval,
        generator: torch.Generator | None,
    ) -> Tensor:
        """One reverse step from `interval.t` to `interval.s` for the positions being updated.

        Args:
            x: current tokens, LongTensor `[1, N]`: every position to update, from every
                sequence of the batch, in one row (all share the step's noise level, so graph
                members see a single `sigma` and a dense graph builds its kernel once).
            score: `[1, N, S]` concrete scores (ratios $p_t(y)/p_t(x)$, the exponentiated
                log-scores) at `(x, interval.sigma_t)`; the entry at the current token is
                meaningless. It is a workspace the loop reuses at every step: the step may
                overwrite it (and should, rather than allocate `[N, S]` temporaries).
            interval: the step's times, total noises and noise rate.
            generator: source of randomness.

        Returns:
            The new tokens, LongTensor `[1, N]`.
        """

    # -- sampling ----------------------------------------------------------------------------------

    def sample(
        self,
        score_fn: ScoreFn | ConditionalScoreFn,
        batch: int,
        length: int,
        steps: int | None = None,
        *,
        condition: Condition | Clamp | None = None,
        pass_condition: bool = False,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        progress: bool = False,
    ) -> Tensor:
        """Draw `batch` sequences of `length` tokens with `steps` steps: LongTensor `[batch, length]`.

        See `run` for the arguments; this returns `run(...).tokens`.
        """
        return self.run(
            score_fn,
            batch,
            length,
            steps,
            condition=condition,
            pass_condition=pass_condition,
            generator=generator,
            device=device,
            progress=progress,
        ).tokens

    @torch.no_grad()
    def run(
        self,
        score_fn: ScoreFn | ConditionalScoreFn,
        batch: int,
        length: int,
        steps: int | None = None,
        *,
        condition: Condition | Clamp | None = None,
        pass_condition: bool = False,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        progress: bool = False,
    ) -> SampleResult:
        """Draw samples and report the number of score evaluations and the time grid.

        Args:
            score_fn: `(x_t [B, L], sigma [B]) -> log-scores [B, L, S]`; `sigma` (the total
                noise) is float64. Called as `score_fn(x_t, sigma, condition=clamp)` when
                `pass_condition` is True.
            batch: number of sequences B.
            length: sequence length L.
            steps: number of reverse steps (>= 1); the denoise step adds one evaluation.
            condition: fixed tokens (a `Condition`, or a `Clamp` of shape `[L]` or `[B, L]`).
            pass_condition: also give the score function the condition (see the class doc).
            generator: source of randomness (`None`: torch's global generator).
            device: device of the samples (default: the CPU).
            progress: show a progress bar (tqdm if installed, else a line on stderr).

        Returns:
            A `SampleResult` with `tokens` `[B, L]`, `nfe` and `times`.
        """
        batch = _positive_int(batch, "batch")
        length = _positive_int(length, "length")
        if steps is None:
            raise ValueError(
                f"{type(self).__name__} integrates over a time grid and needs steps, the number "
                "of grid steps (e.g. steps=128); FirstHittingSampler (absorbing graphs) needs none"
            )
        steps = _positive_int(steps, "steps")
        clamp = self._resolve(condition, batch, length, device)
        times = self.times(steps)
        if clamp is not None and clamp.is_full:
            return SampleResult(clamp.tokens.clone(), 0, times, 0.0)
        sigmas = self.schedule.total(times).tolist()
        rates = self.schedule.rate(times).tolist()
        grid = times.tolist()
        evaluate = _ScoreCalls(
            score_fn, self.graph, batch, length, clamp, pass_condition, device, self.cache
        )
        frozen = _frozen_data_states(self.graph) if self.frozen_states_stay else None
        if frozen is not None:
            frozen = frozen.to(device)
        x = self.graph.sample_limit((batch, length), generator, device)
        if clamp is not None:
            x = clamp(x)
        workspace = _Workspace()
        corrector, ladder = self.corrector, self.corrector_steps
        for i in _progress(range(steps), progress, type(self).__name__):
            interval = Interval(grid[i], grid[i + 1], sigmas[i], sigmas[i + 1], rates[i])
            log_score = evaluate(x, sigmas[i])
            x = self._update(x, log_score, clamp, frozen, workspace, self.step, interval, generator)
            if corrector is not None and i < steps - 1:
                # Corrector steps at the new time s (none after the last step: the denoise
                # step follows it at final_time).
                for _ in range(ladder):
                    log_score = evaluate(x, sigmas[i + 1])
                    x = self._correct(x, log_score, clamp, workspace, sigmas[i + 1], generator)
        if self.denoise:
            log_score = evaluate(x, sigmas[-1])
            last = Interval(grid[-1], 0.0, sigmas[-1], 0.0, rates[-1])
            x = self._update(x, log_score, clamp, frozen, workspace, self._denoise, last, generator)
        return SampleResult(x, evaluate.calls, times, evaluate.rows / batch)

    def times(self, steps: int) -> Tensor:
        """The time grid `[steps + 1]` (float64) that `run` uses for `steps` steps, validated."""
        steps = _positive_int(steps, "steps")
        grid = torch.as_tensor(self.time_grid(steps, self.final_time), dtype=torch.float64)
        grid = grid.flatten()
        if grid.numel() != steps + 1:
            raise ValueError(
                f"time_grid returned {grid.numel()} times for {steps} steps; it must return "
                f"steps + 1 = {steps + 1}"
            )
        if not bool((grid[1:] < grid[:-1]).all()):
            raise ValueError(f"time_grid must be strictly decreasing, got {grid.tolist()[:6]}...")
        if not (float(grid[0]) <= 1.0 and float(grid[-1]) > 0.0):
            raise ValueError(
                "time_grid must stay in (0, 1] (start at most 1, end at final_time > 0), got "
                f"[{float(grid[0])!r}, ..., {float(grid[-1])!r}]"
            )
        if not math.isfinite(float(self.schedule.total(grid[:1])[0])):
            # The limit is reached exactly at grid[0]: start just below it (see the class doc).
            start = 1.0 - self.final_time
            if steps > 1 and not start > float(grid[1]):
                raise ValueError(
                    f"the schedule's total noise is infinite at t = {float(grid[0])}, so the "
                    f"sampler starts at 1 - final_time = {start}, but the grid's second time "
                    f"{float(grid[1])} is not below it; use fewer steps or a smaller final_time"
                )
            grid = grid.clone()
            grid[0] = start
        return grid

    # -- shared machinery --------------------------------------------------------------------------

    def _denoise(
        self, x: Tensor, score: Tensor, interval: Interval, generator: torch.Generator | None
    ) -> Tensor:
        """The final analytic step from `interval.sigma_t` to zero noise, onto data tokens."""
        probs = tweedie_probs(self.graph, x, score, interval.sigma_t)
        probs[..., self.graph.num_tokens :] = 0.0
        return draw_categorical(probs, generator, self.categorical_dtype)

    def _correct(
        self,
        x: Tensor,
        log_score: Tensor,
        clamp: Clamp | None,
        workspace: _Workspace,
        sigma: float,
        generator: torch.Generator | None,
    ) -> Tensor:
        """One corrector step at total noise `sigma`: every free position, or one per sequence."""
        corrector = cast(Corrector, self.corrector)
        graph, dtype = self.graph, self.categorical_dtype

        def step(
            x: Tensor, score: Tensor, interval: Interval, generator: torch.Generator | None
        ) -> Tensor:
            return corrector.step(graph, x, score, sigma, generator, dtype)

        only = _one_free_position(x, clamp, generator) if corrector.one_position else None
        unused = Interval(0.0, 0.0, sigma, sigma, 0.0)
        return self._update(x, log_score, clamp, None, workspace, step, unused, generator, only)

    def _resolve(
        self,
        condition: Condition | Clamp | None,
        batch: int,
        length: int,
        device: torch.device | str | None,
    ) -> Clamp | None:
        if condition is None:
            return None
        if isinstance(condition, Condition):
            clamp = condition.resolve(length, self.graph.num_tokens, device)
        elif isinstance(condition, Clamp):
            if condition.length != length or (
                condition.mask.dim() == 2 and condition.mask.shape[0] != batch
            ):
                raise ValueError(
                    f"the clamp has shape {list(condition.mask.shape)} but the samples are "
                    f"[{batch}, {length}]; give a [length] or [batch, length] clamp"
                )
            clamp = Clamp.from_tensors(condition.tokens, condition.mask, self.graph.num_tokens).to(
                device
            )
        else:
            raise TypeError(
                "condition must be a ddiff.conditioning.Condition or Clamp, got "
                f"{type(condition).__name__}"
            )
        return None if clamp.is_empty else clamp.expand(batch)

    @staticmethod
    def _update(
        x: Tensor,
        log_score: Tensor,
        clamp: Clamp | None,
        frozen: Tensor | None,
        workspace: _Workspace,
        step: Callable[[Tensor, Tensor, Interval, torch.Generator | None], Tensor],
        interval: Interval,
        generator: torch.Generator | None,
        only: Tensor | None = None,
    ) -> Tensor:
        """Exponentiate the log-scores of the positions that can move, step them, clamp.

        `only` (bool `[B, L]`), if given, restricts the step to those positions.
        """
        s = log_score.shape[-1]
        flat = log_score.reshape(-1, s)
        active = None if frozen is None else ~frozen[x]
        if clamp is not None:
            active = ~clamp.mask if active is None else active & ~clamp.mask
        if only is not None:
            active = only if active is None else active & only
        if active is None or bool(active.all()):
            score = torch.exp(flat, out=workspace.rows(flat.shape[0], flat))
            new = step(x.reshape(1, -1), score.unsqueeze(0), interval, generator).reshape(x.shape)
        else:
            index = active.reshape(-1).nonzero().squeeze(-1)
            if index.numel() == 0:
                return x
            score = workspace.rows(index.numel(), flat)
            torch.index_select(flat, 0, index, out=score).exp_()
            moved = step(x.reshape(-1)[index].unsqueeze(0), score.unsqueeze(0), interval, generator)
            new = x.reshape(-1).index_copy(0, index, moved.reshape(-1)).reshape(x.shape)
        return new if clamp is None else clamp(new)


class _Workspace:
    """One `[B L, S]` buffer for the scores, allocated at the first step of a call and reused.

    Fresh multi-megabyte tensors cost page faults at every step (glibc returns them to the
    system); reusing one keeps the loop's own allocations to what the graph members make.
    """

    def __init__(self) -> None:
        self._buffer: Tensor | None = None

    def rows(self, n: int, like: Tensor) -> Tensor:
        """The first `n` rows of the buffer (shaped and typed like `like`, `[rows, S]`)."""
        buf = self._buffer
        if (
            buf is None
            or buf.dtype != like.dtype
            or buf.shape[0] < n
            or buf.shape[1:] != like.shape[1:]
        ):
            buf = self._buffer = torch.empty(like.shape, dtype=like.dtype, device=like.device)
        return buf[:n]


@renamed_keywords(dsigma="delta_sigma")
def tweedie_probs(graph: Graph, x: Tensor, score: Tensor, delta_sigma: float) -> Tensor:
    r"""Unnormalised analytic-step probabilities $p(x_s = y \mid x_t = x)$, `[..., S]`.

    $$p(x_s = y \mid x_t = x) \propto
      \bigl[\exp(-\Delta\bar\sigma\, Q)\, s\bigr]_y \; \exp(\Delta\bar\sigma\, Q)[x, y],$$

    with $s_y = p_t(y)/p_t(x)$ the concrete score and
    $\Delta\bar\sigma = \bar\sigma(t) - \bar\sigma(s)$: exact in one dimension when the score is
    (Tweedie tau-leaping; Lou, Meng & Ermon, ICML 2024). Negative entries (from inexact scores)
    are clamped to 0.

    Args:
        graph: the forward process.
        x: tokens `[B, ...]`.
        score: concrete scores (ratios, not logs) `[*x.shape, S]`; the entry at `x` is set to 1
            **in place** (the score of the current token is 1 by definition).
        delta_sigma: noise removed by the step, $\Delta\bar\sigma \ge 0$ (formerly `dsigma`).
    """
    score.scatter_(-1, x.unsqueeze(-1), 1.0)
    d = torch.tensor(delta_sigma, dtype=score.dtype, device=score.device)
    probs = graph.staggered_score(score, d).mul_(graph.transition_in(x, d))
    return probs.clamp_min_(0.0)


# -- internals -------------------------------------------------------------------------------------


class _ScoreCalls:
    r"""The score function as the loops call it: validated outputs, a call count, and the cache.

    `calls` counts evaluations of the score function (the NFE). With `cache` (absorbing graphs
    only), a sequence whose tokens did not change since its last evaluation is not evaluated
    again: its stored log-scores are shifted from the noise level they were computed at,
    $\bar\sigma_0$, to the new one, $\bar\sigma$, by
    $\log(e^{\bar\sigma_0} - 1) - \log(e^{\bar\sigma} - 1)$ (see `Sampler`). Only the
    sequences that changed are passed to the score function (a smaller batch); when none
    changed there is no call.
    """

    def __init__(
        self,
        score_fn: ScoreFn | ConditionalScoreFn,
        graph: Graph,
        batch: int,
        length: int,
        clamp: Clamp | None,
        pass_condition: bool,
        device: torch.device | str | None,
        cache: bool,
    ) -> None:
        self.score_fn = score_fn
        self.shape = [batch, length, graph.num_states]
        self.passed = None
        if pass_condition:
            self.passed = clamp if clamp is not None else _empty_clamp(batch, length, device)
        self.cache = cache
        self.calls = 0  # score-function calls (the NFE)
        self.rows = 0  # sequences evaluated, summed over the calls
        self._x: Tensor | None = None  # the tokens of the stored scores, [B, L]
        self._log_score: Tensor | None = None  # [B, L, S] at the noise levels self._sigma
        self._sigma: Tensor | None = None  # [B] float64

    def __call__(self, x: Tensor, sigma: float | Tensor) -> Tensor:
        """Log-scores `[B, L, S]` of `x` `[B, L]` at total noise `sigma` (a float or `[B]`)."""
        batch = self.shape[0]
        sigma_b = torch.as_tensor(sigma, dtype=torch.float64, device=x.device).expand(batch)
        if not self.cache or self._x is None:
            out = self._evaluate(x, sigma_b, None)
            if self.cache:
                self._x, self._log_score, self._sigma = x, out, sigma_b.clone()
            return out
        stored, log_score, stored_sigma = self._x, self._log_score, self._sigma
        assert log_score is not None and stored_sigma is not None  # set together with _x
        changed = (x != stored).any(dim=-1)
        rows = changed.nonzero().squeeze(-1)
        if rows.numel() == batch:
            log_score = self._evaluate(x, sigma_b, None)
            stored_sigma = sigma_b.clone()
        elif rows.numel() > 0:
            log_score = log_score.clone()
            log_score[rows] = self._evaluate(x[rows], sigma_b[rows], rows).to(log_score.dtype)
            stored_sigma = stored_sigma.clone()
            stored_sigma[rows] = sigma_b[rows]
        self._x, self._log_score, self._sigma = x, log_score, stored_sigma
        # exp(log_score) at sigma_0 times (e^sigma_0 - 1) / (e^sigma - 1): the exact score of an
        # absorbing graph at sigma for the same tokens (an identity where they were just computed).
        shift = _log_expm1(stored_sigma) - _log_expm1(sigma_b)
        return log_score + shift.to(log_score.dtype)[:, None, None]

    def at(self, x: Tensor, sigma: Tensor, rows: Tensor, positions: Tensor | None = None) -> Tensor:
        """Log-scores of the sequences `rows` only (tokens `x` `[R, L]`, noise `sigma` `[R]`).

        `positions` (bool `[R, L]`), for a score function that `reads_positions`: the only
        positions whose scores the caller reads (see `reads_positions`).
        """
        rows_or_none = None if rows.numel() == self.shape[0] else rows
        return self._evaluate(x, sigma, rows_or_none, positions)

    def _evaluate(
        self, x: Tensor, sigma: Tensor, rows: Tensor | None, positions: Tensor | None = None
    ) -> Tensor:
        n = x.shape[0]
        extra: dict[str, Tensor] = {} if positions is None else {"positions": positions}
        if self.passed is None:
            out = cast(ScoreFn, self.score_fn)(x, sigma, **extra)
        else:
            passed = self.passed
            if rows is not None:
                passed = Clamp(mask=passed.mask[rows], tokens=passed.tokens[rows])
            out = cast(ConditionalScoreFn, self.score_fn)(x, sigma, condition=passed, **extra)
        self.calls += 1
        self.rows += n
        expected = [n, *self.shape[1:]]
        if not isinstance(out, Tensor) or list(out.shape) != expected:
            shape = list(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise ValueError(
                f"score_fn must return log-scores of shape [batch, length, states] = "
                f"{expected}, got {shape}"
            )
        if not out.is_floating_point():
            raise ValueError(f"score_fn must return floating log-scores, got {out.dtype}")
        return out if out.dtype in (torch.float32, torch.float64) else out.float()


def reads_positions(score_fn: object) -> bool:
    """Whether `score_fn` takes a `positions=` keyword (bool `[B, L]`) and may then compute only
    those positions' scores, as `ddiff.guidance.ClassifierGuidance` does (its exact mode is then
    cheaper). A sampler that knows before the call which positions it will read (the
    first-hitting sampler in random order) passes them; the entries elsewhere are not used.
    Score functions say so with a true attribute `reads_positions`.
    """
    return getattr(score_fn, "reads_positions", False) is True


def _log_expm1(sigma: Tensor) -> Tensor:
    """log(e^sigma - 1) in float64, finite for sigma in (0, inf)."""
    small = sigma < 1.0
    low = torch.log(torch.expm1(sigma.clamp(max=1.0)))
    high = sigma + torch.log1p(-torch.exp(-sigma.clamp(min=1.0)))
    return torch.where(small, low, high)


def _one_free_position(x: Tensor, clamp: Clamp | None, generator: torch.Generator | None) -> Tensor:
    """Bool `[B, L]`: one position per sequence, uniform over its free (unfixed) positions."""
    u = torch.rand(x.shape, dtype=torch.float64, device=x.device, generator=generator)
    if clamp is not None:
        u = u.masked_fill(clamp.mask, -1.0)
    pick = torch.zeros(x.shape, dtype=torch.bool, device=x.device)
    pick.scatter_(-1, u.argmax(dim=-1, keepdim=True), True)
    return pick if clamp is None else pick & ~clamp.mask


def _frozen_data_states(graph: Graph) -> Tensor | None:
    """Bool `[S]`: the graph's frozen states (`Graph.frozen_states`) that are data states.

    A position in one never moves in any step, so the loop skips it. A non-data state is never
    skipped: the denoise step must move it to a data token (or fail loudly if it cannot).
    `None`: no such state.
    """
    frozen = graph.frozen_states() & (torch.arange(graph.num_states) < graph.num_tokens)
    return frozen if bool(frozen.any()) else None


def _positive_int(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def _empty_clamp(batch: int, length: int, device: torch.device | str | None) -> Clamp:
    mask = torch.zeros(batch, length, dtype=torch.bool, device=device)
    return Clamp(mask=mask, tokens=torch.zeros(batch, length, dtype=torch.long, device=device))


def _progress(steps: range, enabled: bool, name: str) -> Iterator[int]:
    if not enabled:
        yield from steps
        return
    try:
        from tqdm.auto import tqdm
    except ImportError:
        total = len(steps)
        for k, i in enumerate(steps):
            print(f"\r{name}: step {k + 1}/{total}", end="", file=sys.stderr, flush=True)
            yield i
        print(file=sys.stderr)
        return
    yield from tqdm(steps, desc=name, leave=False)
