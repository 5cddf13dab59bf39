"""The first-hitting sampler: the exact reverse chain of an absorbing graph, one call per event."""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor

from ddiff.conditioning import Clamp, Condition, ConditionalScoreFn
from ddiff.graphs import AbsorbingGraph
from ddiff.losses import ScoreFn
from ddiff.samplers._draw import draw_categorical
from ddiff.samplers.base import (
    Interval,
    Sampler,
    SampleResult,
    _positive_int,
    _progress,
    _ScoreCalls,
    reads_positions,
)
from ddiff.schedules import NoiseSchedule

_NO_INTERVAL = Interval(math.nan, math.nan, math.nan, math.nan, math.nan)


class FirstHittingSampler(Sampler):
    r"""Exact sampling for absorbing graphs: one score call per unmasking event, no time grid.

    In the forward process of an absorbing graph each position is masked at its own time,
    independently of the data and of the other positions, with
    $P(\text{masked at } t) = m(t) = 1 - e^{-\bar\sigma(t)}$. Run backwards from a state at
    time $t$ with $n$ masked positions, their masking times are i.i.d. on $[0, t]$ with
    distribution function $m(s) / m(t)$, so the next unmasking event (the latest of them) is at
    the time $s$ with

    $$m(s) = m(t)\, u^{1/n}, \qquad u \sim \mathcal U(0, 1),$$

    the position that unmasks is uniform among the masked ones, and its token has the law
    $p_0(x^i = v \mid \text{unmasked tokens})$, which the concrete score at $(x, \bar\sigma(s))$
    gives up to a factor, $s_v = p_0(v \mid \cdot) / (e^{\bar\sigma(s)} - 1)$
    (Zheng et al., *Masked Diffusion Models are Secretly Time-Agnostic Masked Models and Exploit
    Inaccurate Categorical Sampling*, 2024, the first-hitting sampler; Ou et al., *Your Absorbing
    Discrete Diffusion Secretly Models the Conditional Distributions of Clean Data*, 2024). This
    is the reverse chain itself, not a discretisation of it: with the exact score the samples
    have the exact law for any length, and each sequence needs exactly one score call per
    masked position, L calls for an unconditional batch (no final denoise call: no MASK is
    left). The sequences of a batch are evaluated together, each at the noise level of its own
    next event; a sequence with nothing left to unmask is not evaluated.

    In random order the positions of an event do not depend on the scores, so they are drawn
    before the call; a score function with a true attribute `reads_positions` (exact classifier
    guidance, `ddiff.guidance.ClassifierGuidance`) is then called with `positions=` (bool
    `[B, L]`, the positions the event unmasks) and may compute only those positions' scores.

    Fixed tokens of a `condition` are never masked, so they are respected and, as for every
    sampler on an absorbing graph, the unconditional scores sample the exact conditional.
    The start is the all-MASK limit at $t = 1$; with a schedule that does not reach the limit
    (`survival > 0`) this costs at most $L \cdot$ `survival` in total variation, as for the grid
    samplers.

    **Why `run` is its own.** The base loop walks one time grid shared by the batch and updates
    every position independently given $x_t$; here each sequence has its own random event
    times and exactly one position moves per event. `step` is the token draw of an event.

    **Controls that change the law** (the defaults keep it exact):

    - `temperature` $T$: tokens drawn from $p_0(v \mid \cdot)^{1/T}$, renormalised ($T < 1$
      sharpens).
    - `top_p`: nucleus sampling (Holtzman et al., ICLR 2020): only the most probable tokens whose
      probabilities add up to `top_p` (at least one) are kept, renormalised.
    - `order="confidence"`: instead of a uniformly chosen masked position, unmask the one whose
      most probable token is the most probable (confidence-ordered decoding, as in MaskGIT, Chang
      et al., CVPR 2022). Deterministic given the scores.
    - `tokens_per_call` $k > 1$: unmask $k$ positions per call (the next $k$ events, their tokens
      drawn independently from the same scores), about $L / k$ calls; it neglects the dependence
      between the $k$ tokens, like a grid step that unmasks several.

    Args:
        graph: an `AbsorbingGraph` (any other graph: `TypeError`).
        schedule: the noise schedule the score function was trained with.
        categorical_dtype: floating type of the categorical draws (float64 by default).
        temperature: $T > 0$; 1 keeps the law.
        top_p: in (0, 1]; 1 keeps the law.
        order: "random" (exact) or "confidence".
        tokens_per_call: $k \ge 1$; 1 keeps the law.

    Example:
        >>> import torch
        >>> from ddiff import AbsorbingGraph
        >>> from ddiff.samplers import FirstHittingSampler
        >>> from ddiff.schedules import LogLinearSchedule
        >>> from ddiff.testing import ExactOracle
        >>> graph = AbsorbingGraph(3)
        >>> oracle = ExactOracle.random(graph, length=4, seed=0)
        >>> sampler = FirstHittingSampler(graph, LogLinearSchedule())
        >>> result = sampler.run(oracle, 20_000, 4, generator=torch.Generator().manual_seed(0))
        >>> result.nfe  # one call per position: no grid, no denoise call
        4
        >>> oracle.total_variation(result.tokens) < 0.02  # exact up to Monte Carlo error
        True
        >>> result.times.shape  # each sequence's unmasking times, decreasing
        torch.Size([20000, 4])
    """

    def __init__(
        self,
        graph: AbsorbingGraph,
        schedule: NoiseSchedule,
        *,
        categorical_dtype: torch.dtype = torch.float64,
        temperature: float = 1.0,
        top_p: float = 1.0,
        order: Literal["random", "confidence"] = "random",
        tokens_per_call: int = 1,
    ) -> None:
        if not isinstance(graph, AbsorbingGraph):
            raise TypeError(
                f"FirstHittingSampler needs an AbsorbingGraph (its reverse chain is a sequence "
                f"of unmasking events), got {type(graph).__name__}; use AnalyticSampler or "
                "EulerSampler with steps for other graphs"
            )
        super().__init__(graph, schedule, categorical_dtype=categorical_dtype)
        temperature, top_p = float(temperature), float(top_p)
        if not (temperature > 0 and math.isfinite(temperature)):
            raise ValueError(
                f"temperature must be a positive number (1 = exact), got {temperature!r}"
            )
        if not 0.0 < top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1] (1 = exact), got {top_p!r}")
        if order not in ("random", "confidence"):
            raise ValueError(f"order must be 'random' (exact) or 'confidence', got {order!r}")
        self.temperature = temperature
        self.top_p = top_p
        self.order = order
        self.tokens_per_call = _positive_int(tokens_per_call, "tokens_per_call")

    def __repr__(self) -> str:
        controls = [
            f"{name}={value!r}"
            for name, value, exact in (
                ("temperature", self.temperature, 1.0),
                ("top_p", self.top_p, 1.0),
                ("order", self.order, "random"),
                ("tokens_per_call", self.tokens_per_call, 1),
            )
            if value != exact
        ]
        return (
            f"FirstHittingSampler({', '.join([repr(self.graph), repr(self.schedule), *controls])})"
        )

    def step(
        self,
        x: Tensor,
        score: Tensor,
        interval: Interval,
        generator: torch.Generator | None,
    ) -> Tensor:
        """Draw the tokens of unmasking positions: `[1, N]` data tokens.

        Args:
            x: the positions that unmask, `[1, N]` (all MASK).
            score: `[1, N, S]` concrete scores at those positions, up to a factor per position
                (only the ratios between data tokens matter); overwritten.
            interval: not used: the law of the token of an unmasking position does not depend
                on the time of the event (`run` passes NaNs; each sequence has its own time).
            generator: source of randomness.
        """
        probs = score[..., : self.graph.num_tokens]
        if self.temperature != 1.0:
            probs = probs.pow(1.0 / self.temperature)
        if self.top_p < 1.0:
            probs = _nucleus(probs, self.top_p)
        return draw_categorical(probs, generator, self.categorical_dtype)

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
        """Draw samples with one score call per unmasking event; see `Sampler.run`.

        `steps` must be None: there is no grid (`tokens_per_call` trades calls for exactness).
        `nfe` is the number of calls (the largest number of free positions in the batch, divided
        by `tokens_per_call`, rounded up); `times` are each sequence's event times `[batch, nfe]`.
        """
        batch = _positive_int(batch, "batch")
        length = _positive_int(length, "length")
        if steps is not None:
            raise ValueError(
                f"FirstHittingSampler makes one score call per unmasking event and takes no "
                f"steps, got steps={steps!r}; pass steps=None (tokens_per_call=k unmasks k "
                "tokens per call)"
            )
        graph = self.graph
        assert isinstance(graph, AbsorbingGraph)  # checked in __init__
        mask_token, n_data = graph.mask_token, graph.num_tokens
        clamp = self._resolve(condition, batch, length, device)
        if clamp is not None and clamp.is_full:
            empty = torch.empty(batch, 0, dtype=torch.float64, device=device)
            return SampleResult(clamp.tokens.clone(), 0, empty, 0.0)
        evaluate = _ScoreCalls(
            score_fn, graph, batch, length, clamp, pass_condition, device, cache=False
        )
        x = graph.sample_limit((batch, length), generator, device)
        if clamp is not None:
            x = clamp(x)
        left = (x == mask_token).sum(dim=-1)  # masked positions per sequence, [B]
        f64 = torch.float64
        # log m(t), m = 1 - e^{-sigma}: the probability of being masked; 0 at the limit.
        sigma_1 = float(self.schedule.total(torch.tensor(1.0, dtype=f64)))
        log_m = torch.full((batch,), math.log(-math.expm1(-sigma_1)), dtype=f64, device=x.device)
        tiny = torch.finfo(f64).tiny
        times = []
        calls = -(-int(left.max()) // self.tokens_per_call)
        # In random order the positions that unmask do not depend on the scores: draw them first
        # and tell a score function that can use it (exact classifier guidance then classifies
        # the neighbours of those positions only). Other score functions keep the draw order.
        early = self.order == "random" and reads_positions(score_fn)
        for _ in _progress(range(calls), progress, type(self).__name__):
            rows = (left > 0).nonzero().squeeze(-1)
            n, k = left[rows], left[rows].clamp(max=self.tokens_per_call)
            # The next event: the latest of n i.i.d. masking times, m(s) = m(t) u^(1/n); with
            # k > 1 the next k events (the scores are those of the first).
            lm = first = log_m[rows]
            for j in range(self.tokens_per_call):
                u = torch.rand(rows.shape, dtype=f64, device=x.device, generator=generator)
                lm = torch.where(j < k, lm + u.clamp_min(tiny).log() / (n - j).clamp(min=1), lm)
                first = lm if j == 0 else first
            log_m[rows] = lm
            sigma = -torch.log1p(-first.exp())  # total noise at the (first) event
            times.append(self._record_times(batch, rows, sigma))
            priority = positions = None
            if early:
                priority = self._random_priority(x[rows], mask_token, generator)
                positions = self._chosen(priority, k)
            log_score = evaluate.at(x[rows], sigma, rows, positions)  # [R, L, S]
            x[rows] = self._unmask(x[rows], log_score, k, mask_token, n_data, generator, priority)
            left[rows] -= k
        if clamp is not None:
            x = clamp(x)
        times_out = torch.stack(times, dim=1) if times else torch.empty(batch, 0, dtype=f64)
        return SampleResult(x, evaluate.calls, times_out, evaluate.rows / batch)

    # -- internals ---------------------------------------------------------------------------------

    def _unmask(
        self,
        x: Tensor,
        log_score: Tensor,
        k: Tensor,
        mask_token: int,
        n_data: int,
        generator: torch.Generator | None,
        priority: Tensor | None = None,
    ) -> Tensor:
        """Unmask `k[r]` masked positions of each row `r` of `x` `[R, L]`: those of highest
        `priority` (`[R, L]`, drawn here unless given; -inf at unmasked positions)."""
        data = log_score[..., :n_data].to(torch.float64)
        if priority is None and self.order == "confidence":
            # The most probable token's probability at each masked position.
            priority = torch.log_softmax(data, dim=-1).amax(dim=-1)
            priority = priority.masked_fill(x != mask_token, -math.inf)
        elif priority is None:
            priority = self._random_priority(x, mask_token, generator)
        top = int(k.max())
        ranked = priority.topk(top, dim=-1).indices  # [R, top]
        chosen = torch.arange(top, device=x.device)[None, :] < k[:, None]  # [R, top]
        row_of = torch.arange(x.shape[0], device=x.device)[:, None].expand(-1, top)[chosen]
        pos_of = ranked[chosen]
        # Scores up to a factor per position: subtract the largest log-score over data tokens
        # (no overflow in exp, whatever the noise level).
        picked = data[row_of, pos_of]  # [P, N]
        score = (picked - picked.amax(dim=-1, keepdim=True)).exp_()
        tokens = self.step(x[row_of, pos_of][None], score[None], _NO_INTERVAL, generator)[0]
        out = x.clone()
        out[row_of, pos_of] = tokens
        return out

    @staticmethod
    def _random_priority(x: Tensor, mask_token: int, generator: torch.Generator | None) -> Tensor:
        """Uniform priorities `[R, L]` over the masked positions (-inf elsewhere): the top `k`
        of a row are `k` masked positions drawn uniformly without replacement."""
        priority = torch.rand(x.shape, dtype=torch.float64, device=x.device, generator=generator)
        return priority.masked_fill(x != mask_token, -math.inf)

    @staticmethod
    def _chosen(priority: Tensor, k: Tensor) -> Tensor:
        """Bool `[R, L]`: the `k[r]` positions of highest priority in each row `r`."""
        top = int(k.max())
        ranked = priority.topk(top, dim=-1).indices
        keep = torch.arange(top, device=priority.device)[None, :] < k[:, None]
        out = torch.zeros(priority.shape, dtype=torch.bool, device=priority.device)
        return out.scatter_(-1, ranked, keep)

    def _record_times(self, batch: int, rows: Tensor, sigma: Tensor) -> Tensor:
        """The event times of this call, `[B]` (NaN for sequences not evaluated)."""
        t = torch.full((batch,), math.nan, dtype=torch.float64, device=sigma.device)
        hi = self.schedule.total_max
        t[rows] = self.schedule.inverse(sigma.clamp(self.schedule.total_min, hi))
        return t


def _nucleus(probs: Tensor, top_p: float) -> Tensor:
    """Keep the most probable entries whose mass reaches `top_p` of each row (at least one)."""
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    mass = sorted_probs.cumsum(dim=-1)
    total = mass[..., -1:]
    # Keep an entry when the mass before it is below top_p of the row's total.
    keep_sorted = (mass - sorted_probs) < top_p * total
    keep = torch.zeros_like(keep_sorted).scatter_(-1, order, keep_sorted)
    return probs.masked_fill(~keep, 0.0)
