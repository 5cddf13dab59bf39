"""Shared pieces of the guidance combinators (internal): weights, calls, the current token."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ddiff.conditioning import Clamp
from ddiff.graphs import Graph

ScoreFunction = Callable[..., Tensor]
"""`(x_t [B, L], sigma [B]) -> log-scores [B, L, S]`, or with `condition=` as keyword argument."""


def check_weight(weight: float) -> float:
    """`weight` as a float if it is a finite number >= 0; else a `ValueError` that says why."""
    if isinstance(weight, bool) or not isinstance(weight, (int, float)):
        raise TypeError(f"weight must be a number >= 0, got {type(weight).__name__}")
    w = float(weight)
    if not math.isfinite(w) or w < 0.0:
        raise ValueError(
            f"weight must be a finite number >= 0 (0: unguided, 1: the conditional law, "
            f"> 1: sharper than it), got {weight!r}"
        )
    return w


def check_callable(fn: object, name: str) -> None:
    if not callable(fn):
        raise TypeError(f"{name} must be callable (x_t, sigma) -> ..., got {type(fn).__name__}")


def call(fn: ScoreFunction, x_t: Tensor, sigma: Tensor, condition: Clamp | None) -> Tensor:
    """`fn(x_t, sigma)`, or `fn(x_t, sigma, condition=condition)` when a condition is passed."""
    if condition is None:
        return fn(x_t, sigma)
    return fn(x_t, sigma, condition=condition)


def check_log_score(out: Any, x_t: Tensor, name: str) -> Tensor:
    """Raise unless `out` is floating `[B, L, S]` for tokens `x_t` `[B, L]`."""
    if not isinstance(out, Tensor) or out.dim() != 3 or list(out.shape[:2]) != list(x_t.shape):
        shape = list(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(
            f"{name} must return log-scores [batch, length, states] for tokens of shape "
            f"{list(x_t.shape)}, got {shape}"
        )
    if not out.is_floating_point():
        raise ValueError(f"{name} must return floating log-scores, got {out.dtype}")
    return out


def zero_at_current(log_score: Tensor, x_t: Tensor) -> Tensor:
    """Set the entry at the current token to exactly 0 (a state's ratio to itself), in place."""
    return log_score.scatter_(-1, x_t.long().unsqueeze(-1), 0.0)


def movable(graph: Graph | None, x_t: Tensor, condition: Clamp | None) -> Tensor | None:
    """Bool `[B, L]`: the positions whose scores a sampler uses; `None` means all.

    A position is skipped when it holds a data state that no other state jumps into
    (`Graph.frozen_states`: an unmasked token of an absorbing graph, whose reverse rates are
    zero whatever the score; the samplers skip the same positions) or when the condition fixes it.
    """
    active = None
    if graph is not None:
        frozen = graph.frozen_states() & (torch.arange(graph.num_states) < graph.num_tokens)
        if bool(frozen.any()):
            active = ~frozen.to(x_t.device)[x_t.long()]
    if condition is not None:
        free = ~condition.expand(x_t.shape[0]).mask.to(x_t.device)
        active = free if active is None else active & free
    return active
