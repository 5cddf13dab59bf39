"""Argument checks shared by the core modules (internal).

Every public entry point validates its tensors here so that a wrong shape or an out-of-range token
fails with a message that says what to fix, never with an index error deep inside a gather.
Renamed keyword arguments and attributes go through `renamed_keywords` and `warn_renamed`, so
the old names keep working for one release with the same one-line warning.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import torch
from torch import Tensor

P = ParamSpec("P")
R = TypeVar("R")


def check_tokens(x: Tensor, num_states: int, name: str = "x") -> None:
    """Raise `ValueError` unless `x` is an integer tensor with values in `[0, num_states)`."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of token ids, got {type(x).__name__}")
    if x.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8, torch.int8):
        raise ValueError(f"{name} must hold integer token ids, got dtype {x.dtype}")
    if x.dim() < 1:
        raise ValueError(f"{name} must have shape [batch, ...], got a 0-dim tensor")
    if x.numel() == 0:
        return
    lo, hi = int(x.min()), int(x.max())
    if lo < 0 or hi >= num_states:
        bad = ((x < 0) | (x >= num_states)).nonzero()[0].tolist()
        value = int(x[tuple(bad)])
        raise ValueError(
            f"{name} holds token {value} at index {tuple(bad)}, outside [0, {num_states}) "
            f"for a graph with {num_states} states"
        )


def batch_sigma(sigma: Tensor | float, x: Tensor, name: str = "sigma") -> Tensor:
    """Return `sigma` shaped `[B, 1, ..., 1]` to broadcast against `x` of shape `[B, ...]`.

    `sigma` may be a Python number, a 0-dim tensor (one noise level for the whole batch) or a
    tensor of shape `[B]` (one per sequence). Anything else is an error: silently broadcasting a
    `[B, 1]` against `[B, L]` is fine, but `[L]` against `[B, L]` would mix up sequences.
    """
    if not isinstance(sigma, Tensor):
        sigma = torch.tensor(float(sigma), dtype=torch.get_default_dtype(), device=x.device)
    if not sigma.is_floating_point():
        sigma = sigma.to(torch.get_default_dtype())
    batch = x.shape[0]
    if sigma.dim() == 0:
        sigma = sigma.expand(batch)
    elif sigma.dim() == 2 and sigma.shape[1] == 1:
        sigma = sigma[:, 0]
    if sigma.dim() != 1 or sigma.shape[0] != batch:
        raise ValueError(
            f"{name} must be a scalar or have shape [batch] = [{batch}] (or [batch, 1]); "
            f"got shape {list(sigma.shape)} for tokens of shape {list(x.shape)}"
        )
    if torch.isnan(sigma).any() or (sigma < 0).any():
        raise ValueError(f"{name} must be >= 0 (total noise), got {sigma.tolist()[:8]}")
    return sigma.reshape(batch, *([1] * (x.dim() - 1)))


def check_last_dim(t: Tensor, x: Tensor, size: int, name: str) -> None:
    """Raise unless `t` has shape `[*x.shape, size]`."""
    expected = [*x.shape, size]
    if list(t.shape) != expected:
        raise ValueError(
            f"{name} must have shape {expected} (tokens' shape + [states]), got {list(t.shape)}"
        )


def check_token_batch(
    x: Tensor, limit: int, name: str, limit_name: str, owner: str = "a network"
) -> Tensor:
    """`x` as int64 if it is an integer tensor `[batch, length]` with values in `[0, limit)`.

    For networks (and other readers, named by `owner`) of token batches. Errors name the
    argument, the offending `[batch b, position i]` and the owner's `limit_name = limit`.
    """
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of token ids, got {type(x).__name__}")
    if x.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8, torch.int8):
        raise ValueError(f"{name} must hold integer token ids, got dtype {x.dtype}")
    if x.dim() != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(
            f"{name} must have shape [batch, length] with batch, length >= 1, got "
            f"{list(x.shape)}; add a batch axis with {name}[None] for a single sequence"
        )
    lo, hi = int(x.min()), int(x.max())
    if lo < 0 or hi >= limit:
        b, i = ((x < 0) | (x >= limit)).nonzero()[0].tolist()
        raise ValueError(
            f"{name} holds token {int(x[b, i])} at [batch {b}, position {i}], outside "
            f"[0, {limit}) for {owner} with {limit_name} = {limit}"
        )
    return x.long()


# -- renamed arguments and attributes (kept for one release) ---------------------------------------


def warn_renamed(old: str, new: str) -> None:
    """Emit the one-line `DeprecationWarning` for a renamed keyword argument or attribute."""
    warnings.warn(
        f"{old} is deprecated and will be removed in the next release: use {new}",
        DeprecationWarning,
        stacklevel=3,
    )


def renamed_keywords(**renames: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Accept the old keyword names `renames` (old -> new) of a function, with a warning.

    `f(old=value)` warns once per call site and runs `f(new=value)`; passing both raises
    `TypeError`. For `__init__` the warning names the class being built.
    """

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            for old, new in renames.items():
                if old not in kwargs:
                    continue
                owner = type(args[0]).__name__ if fn.__name__ == "__init__" else fn.__qualname__
                if new in kwargs:
                    raise TypeError(f"{owner}() got both {old}= (deprecated) and {new}=")
                warn_renamed(f"{owner}({old}=...)", f"{new}=...")
                kwargs[new] = kwargs.pop(old)
            return fn(*args, **kwargs)

        return wrapper

    return decorate
