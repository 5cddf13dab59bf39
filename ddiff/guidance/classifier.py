"""Classifier guidance: the concrete score times a ratio of noisy-classifier probabilities."""

from __future__ import annotations

from typing import Literal, Protocol

import torch
from torch import Tensor

from ddiff.conditioning import Clamp
from ddiff.graphs import Graph
from ddiff.guidance._common import (
    ScoreFunction,
    call,
    check_callable,
    check_log_score,
    check_weight,
    movable,
    zero_at_current,
)

GuidanceMode = Literal["exact", "first_order"]


class NoisyClassifier(Protocol):
    r"""`classifier(x_t, sigma) -> log p(c | x_t)`, `[B]`: a classifier of noised sequences.

    `x_t` is a LongTensor `[B, L]` of states (MASK included) and `sigma` the total noise `[B]`
    (float64 from the samplers). It returns the log-probability of **one** label $c$ (bind the
    label first, e.g. with `select_label`). For `ClassifierGuidance(mode="first_order")` it must
    also accept a float one-hot tensor `[B, L, S]` in place of `x_t` and be differentiable in
    it (an embedding written as `one_hot @ weight`). When a sampler passes a condition through
    the guidance, it is called with `condition=clamp` as well.
    """

    def __call__(self, x_t: Tensor, sigma: Tensor) -> Tensor: ...


class ClassifierGuidance:
    r"""Guide a score function with a noisy classifier $p(c \mid x_t)$.

    The conditional concrete score is the unconditional one times a ratio of noisy-classifier
    probabilities: with $x_t^{i \leftarrow y}$ the sequence with position $i$ set to $y$,

    $$\frac{p_t(x_t^{i \leftarrow y} \mid c)}{p_t(x_t \mid c)}
      = \frac{p_t(x_t^{i \leftarrow y})}{p_t(x_t)}\,
        \frac{p(c \mid x_t^{i \leftarrow y})}{p(c \mid x_t)},
      \qquad p(c \mid x_t) = \sum_{x_0} p(c \mid x_0)\, p(x_0 \mid x_t),$$

    for a label that depends on the clean sequence only. The guided log-score is

    $$\log s_w(x_t)_{i, y} = \log s(x_t)_{i, y}
      + w \bigl(\log p(c \mid x_t^{i \leftarrow y}) - \log p(c \mid x_t)\bigr)$$

    (Nisonoff et al., *Unlocking Guidance for Discrete State-Space Diffusion and Flow Models*,
    2024; Schiff et al., *Simple Guidance Mechanisms for Discrete Diffusion Models*, 2024).

    **Which law is sampled.** At weight 1 with the exact score and the exact noisy classifier
    this *is* the exact conditional score, so every sampler draws $p(x \mid c)$ up to its
    discretisation error (tested against `ddiff.testing.LabelledOracle`); weight 0 is the
    unguided score. Other weights **change the law**: the rates are those of the tilted
    marginals $p_t(x)\, p(c \mid x_t)^w$, which are not the noisings of one distribution, so the
    samples are neither $p(x \mid c)$ nor $p(x)\, p(c \mid x)^w / Z$ exactly; above 1 they are
    sharper (the label's probability rises with the weight).

    **Modes.**

    - `"exact"` evaluates the classifier on every single-token neighbour: $L (S - 1)$ sequences
      per sequence and step (fewer, see below), batched into calls of at most `max_batch`
      sequences, so memory stays bounded by the classifier's memory for `max_batch` inputs.
    - `"first_order"` replaces the difference by its first-order Taylor expansion in the one-hot
      input $e$ (Nisonoff et al., section 4; Grathwohl et al. 2021):
      $\log p(c \mid x^{i \leftarrow y}) - \log p(c \mid x) \approx
      \nabla_e \log p(c \mid x)[i, y] - \nabla_e \log p(c \mid x)[i, x^i]$, one forward and one
      backward pass per step whatever $L$ and $S$. It is an approximation (exact only for a
      classifier linear in the one-hot input): its cost and error against the exact mode are
      measured in `benchmarks/guidance.py` and on the guidance concept page.

    **Which entries are computed.** The entry at the current token is exactly 0 (a state's
    ratio to itself). Given `graph`, positions that hold a data state no other state jumps into
    (`Graph.frozen_states`: the unmasked tokens of an absorbing graph, which the samplers never
    move because their reverse rates are 0 whatever the score) are not guided: they keep the
    unguided log-scores, and the exact mode spends no classifier calls on them. For an absorbing
    graph the cost is then (masked positions) x N per sequence, and MASK is never a target (it
    is the current state of every guided position). Positions fixed by a condition passed at
    call time are skipped the same way. Without `graph`, every position is guided.

    Args:
        score_fn: the (unconditional) score function `(x_t [B, L], sigma [B]) -> log-scores
            [B, L, S]`.
        classifier: a `NoisyClassifier`, `(x_t, sigma) -> log p(c | x_t)` `[B]`.
        weight: $w \ge 0$.
        mode: `"exact"` (default) or `"first_order"`.
        graph: the forward process; lets the guidance skip positions that cannot move.
        max_batch: the most sequences per classifier call in the exact mode.

    Raises:
        ValueError: for a negative weight, an unknown mode, a classifier that returns the wrong
            shape, or $\log p(c \mid x_t) = -\infty$ at a sequence being guided.

    Calling it as `guidance(x_t, sigma, condition=clamp)` (samplers do so with
    `pass_condition=True`) passes the condition on to `score_fn` and to the classifier.

    Example:
        >>> import torch
        >>> from ddiff import AbsorbingGraph, EulerSampler, LogLinearSchedule
        >>> from ddiff.guidance import ClassifierGuidance
        >>> from ddiff.testing import LabelledOracle
        >>> graph = AbsorbingGraph(3)
        >>> oracle = LabelledOracle.random(graph, length=2, num_labels=2, seed=0)
        >>> guided = ClassifierGuidance(oracle.unconditional, oracle.classifier(1), 1.0, graph=graph)
        >>> x_t, sigma = torch.tensor([[3, 0]]), torch.tensor([0.5], dtype=torch.float64)
        >>> exact = oracle.conditional(1)(x_t, sigma)  # the exact conditional scores
        >>> bool(torch.allclose(guided(x_t, sigma)[:, 0], exact[:, 0]))  # at the masked position
        True
        >>> sampler = EulerSampler(graph, LogLinearSchedule())
        >>> x = sampler.sample(guided, 4_000, 2, 64, generator=torch.Generator().manual_seed(0))
        >>> oracle.conditional(1).total_variation(x) < 0.05  # weight 1: p(x | c)
        True
    """

    def __init__(
        self,
        score_fn: ScoreFunction,
        classifier: NoisyClassifier,
        weight: float,
        *,
        mode: GuidanceMode = "exact",
        graph: Graph | None = None,
        max_batch: int = 65_536,
    ) -> None:
        check_callable(score_fn, "score_fn")
        check_callable(classifier, "classifier")
        if mode not in ("exact", "first_order"):
            raise ValueError(f"mode must be 'exact' or 'first_order', got {mode!r}")
        if graph is not None and not isinstance(graph, Graph):
            raise TypeError(f"graph must be a ddiff Graph or None, got {type(graph).__name__}")
        if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
            raise ValueError(f"max_batch must be a positive int, got {max_batch!r}")
        self.score_fn = score_fn
        self.classifier = classifier
        self.weight = check_weight(weight)
        self.mode: GuidanceMode = mode
        self.graph = graph
        self.max_batch = max_batch

    reads_positions = True  # see ddiff.samplers.base.reads_positions

    def __repr__(self) -> str:
        return f"ClassifierGuidance(weight={self.weight}, mode={self.mode!r})"

    def __call__(
        self,
        x_t: Tensor,
        sigma: Tensor,
        *,
        condition: Clamp | None = None,
        positions: Tensor | None = None,
    ) -> Tensor:
        """Guided log-scores `[B, L, S]` of `x_t` `[B, L]` at total noise `sigma` `[B]`.

        `positions` (bool `[B, L]`): guide only these positions (the caller reads no other);
        elsewhere the entries are the unguided log-scores. The first-hitting sampler passes the
        positions it unmasks, so the exact mode classifies $S - 1$ neighbours per unmasking
        event instead of $S - 1$ per masked position.
        """
        log_score = check_log_score(call(self.score_fn, x_t, sigma, condition), x_t, "score_fn")
        if self.weight == 0.0:
            return zero_at_current(log_score.clone(), x_t)
        sigma = _batch(sigma, x_t)
        active = movable(self.graph, x_t, condition)
        if positions is not None:
            if positions.shape != x_t.shape or positions.dtype != torch.bool:
                raise ValueError(
                    f"positions must be a bool tensor of the tokens' shape {list(x_t.shape)}, "
                    f"got {positions.dtype} {list(positions.shape)}"
                )
            positions = positions.to(x_t.device)
            active = positions if active is None else active & positions
        if self.mode == "exact":
            delta = self.log_ratio(x_t, sigma, log_score.shape[-1], active, condition)
        else:
            delta = self.log_ratio_first_order(x_t, sigma, log_score.shape[-1], active, condition)
            _check_first_order(delta, self.weight)
        dtype = torch.promote_types(log_score.dtype, delta.dtype)
        out = log_score.to(dtype) + self.weight * delta.to(dtype)
        return zero_at_current(out, x_t)

    # -- the classifier term ------------------------------------------------------------------

    def log_ratio(
        self,
        x_t: Tensor,
        sigma: Tensor,
        num_states: int,
        active: Tensor | None = None,
        condition: Clamp | None = None,
    ) -> Tensor:
        r"""$\log p(c \mid x_t^{i \leftarrow y}) - \log p(c \mid x_t)$ `[B, L, S]`, exactly.

        Every neighbour $y \ne x_t^i$ of every active position (`active` bool `[B, L]`, `None`
        for all) is classified, in calls of at most `max_batch` sequences. Inactive positions
        and the current token get 0.
        """
        batch, length = x_t.shape
        base = self._classify(x_t, sigma, condition)
        out = torch.zeros(batch, length, num_states, dtype=base.dtype, device=x_t.device)
        active = torch.ones_like(x_t, dtype=torch.bool) if active is None else active
        rows, cols = active.nonzero(as_tuple=True)
        if rows.numel() == 0 or num_states < 2:
            return out
        _check_base(base, active.any(dim=1))
        # The S - 1 targets of each position: y = (x + k) mod S, k = 1..S-1 (never x itself).
        shift = torch.arange(1, num_states, device=x_t.device)
        n = rows.numel() * (num_states - 1)
        b = rows.repeat_interleave(num_states - 1)
        i = cols.repeat_interleave(num_states - 1)
        y = (x_t[rows, cols].unsqueeze(-1) + shift).remainder(num_states).reshape(-1)
        values = torch.empty(n, dtype=base.dtype, device=x_t.device)
        for start in range(0, n, self.max_batch):
            part = slice(start, min(start + self.max_batch, n))
            neighbours = x_t[b[part]].clone()
            neighbours[torch.arange(neighbours.shape[0], device=x_t.device), i[part]] = y[part]
            sub = None if condition is None else _rows(condition, b[part], batch)
            values[part] = self._classify(neighbours, sigma[b[part]], sub)
        out[b, i, y] = values - base[b]
        return out

    def log_ratio_first_order(
        self,
        x_t: Tensor,
        sigma: Tensor,
        num_states: int,
        active: Tensor | None = None,
        condition: Clamp | None = None,
    ) -> Tensor:
        r"""The first-order estimate $g_{i, y} - g_{i, x^i}$, $g = \nabla_e \log p(c \mid x_t)$.

        One forward and one backward pass through the classifier with the one-hot input $e$
        (float `[B, L, S]`); inactive positions and the current token get 0. Sequences must be
        classified independently (no batch statistics), so the gradient of the sum is each
        sequence's own gradient.
        """
        one_hot = torch.nn.functional.one_hot(x_t.long(), num_states).to(torch.get_default_dtype())
        with torch.enable_grad():
            one_hot.requires_grad_(True)
            log_p = self._classify(one_hot, sigma, condition)
            (grad,) = torch.autograd.grad(log_p.sum(), one_hot)
        grad = grad - grad.gather(-1, x_t.long().unsqueeze(-1))
        if active is not None:
            grad = grad * active.unsqueeze(-1).to(grad.dtype)
        return grad.detach()

    def _classify(self, x: Tensor, sigma: Tensor, condition: Clamp | None) -> Tensor:
        out = call(self.classifier, x, sigma, condition)
        expected = [x.shape[0]]
        if not isinstance(out, Tensor) or list(out.shape) != expected:
            shape = list(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise ValueError(
                f"classifier must return log p(c | x_t) of shape [batch] = {expected} (one label; "
                f"bind it with ddiff.guidance.select_label), got {shape}"
            )
        if not out.is_floating_point():
            raise ValueError(f"classifier must return floating log-probabilities, got {out.dtype}")
        return out


def select_label(logits_fn: ScoreFunction, label: int) -> NoisyClassifier:
    r"""A `NoisyClassifier` for one label from a classifier of all labels.

    `logits_fn(x_t, sigma) -> [B, C]` returns logits (or log-probabilities) of the $C$ labels;
    the result returns `log_softmax(logits)[:, label]`, $\log p(c \mid x_t)$ `[B]`. Keyword
    arguments (`condition=`) are passed on.

    Example:
        >>> import torch
        >>> from ddiff.guidance import select_label
        >>> logits = lambda x_t, sigma: torch.zeros(x_t.shape[0], 4)  # 4 labels, uniform
        >>> select_label(logits, 2)(torch.zeros(1, 3, dtype=torch.long), torch.ones(1)).exp()
        tensor([0.2500])
    """
    check_callable(logits_fn, "logits_fn")
    if isinstance(label, bool) or not isinstance(label, int) or label < 0:
        raise ValueError(f"label must be a class index >= 0, got {label!r}")

    def log_prob(x_t: Tensor, sigma: Tensor, **kwargs: object) -> Tensor:
        logits = logits_fn(x_t, sigma, **kwargs)
        if not isinstance(logits, Tensor) or logits.dim() != 2:
            shape = list(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
            raise ValueError(f"logits_fn must return logits [batch, labels], got {shape}")
        if label >= logits.shape[1]:
            raise ValueError(
                f"label {label} is out of range for a classifier of {logits.shape[1]} labels"
            )
        return torch.log_softmax(logits, dim=-1)[:, label]

    return log_prob


# -- internals -------------------------------------------------------------------------------------


def _batch(sigma: Tensor | float, x_t: Tensor) -> Tensor:
    """`sigma` as `[B]` (a scalar is broadcast), as samplers and networks take it."""
    sigma = torch.as_tensor(sigma, device=x_t.device)
    if not sigma.is_floating_point():
        sigma = sigma.to(torch.get_default_dtype())
    if sigma.dim() == 0:
        return sigma.expand(x_t.shape[0])
    sigma = sigma.reshape(-1)
    if sigma.shape[0] != x_t.shape[0]:
        raise ValueError(
            f"sigma must be a scalar or have shape [batch] = [{x_t.shape[0]}], got "
            f"{list(sigma.shape)}"
        )
    return sigma


def _rows(condition: Clamp, rows: Tensor, batch: int) -> Clamp:
    """The condition of the sequences `rows` (a `[len(rows), L]` clamp)."""
    full = condition.expand(batch)
    return Clamp(full.mask[rows], full.tokens[rows])


# exp() of a log-ratio above this overflows float32 scores (e^88); no sane ratio comes close.
_FIRST_ORDER_LIMIT = 80.0


def _check_first_order(delta: Tensor, weight: float) -> None:
    """Refuse a first-order term whose ratio would overflow: the linearisation broke down."""
    largest = float((weight * delta).abs().max()) if delta.numel() else 0.0
    if not largest <= _FIRST_ORDER_LIMIT:
        raise ValueError(
            f"the first-order guidance term reaches {largest:.3g} in log space (a ratio of "
            f"e^{largest:.0f}): the classifier is far from linear in its one-hot input here "
            "(exact noisy classifiers are, near zero noise); use mode='exact'"
        )


def _check_base(base: Tensor, guided: Tensor) -> None:
    r"""Raise if $\log p(c \mid x_t)$ is not finite at a sequence being guided (`guided` `[B]`)."""
    bad = ~torch.isfinite(base) & guided
    if bool(bad.any()):
        b = int(bad.nonzero()[0, 0])
        raise ValueError(
            f"the classifier gives log p(c | x_t) = {float(base[b])} for sequence {b}: guidance "
            "divides by p(c | x_t), so it must be positive and finite at every sequence being "
            "guided (a state with p(c | x_t) = 0 is unreachable under exact guidance; check the "
            "label and the condition)"
        )
