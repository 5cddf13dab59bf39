"""`Clamp`: a resolved condition, the projection every sampler applies after every step."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor


@dataclass(frozen=True, eq=False)
class Clamp:
    r"""Which positions are fixed and to what: the projection $x \mapsto$ `where(mask, tokens, x)`.

    A `Condition` describes what is fixed in terms of motifs; `Condition.resolve` checks it
    against a sequence length and an alphabet and returns a `Clamp`. Build one directly with
    `Clamp.from_tensors` when every sequence of a batch has its own fixed positions (e.g. one
    prompt per row). Samplers start the fixed positions at their tokens and re-apply the clamp
    after every step, so the other positions are sampled given the fixed ones.

    Attributes:
        mask: bool, `[L]` (shared by the batch) or `[B, L]`; True where the token is fixed.
        tokens: long, same shape as `mask`; the fixed tokens (0 where `mask` is False).

    Example:
        >>> import torch
        >>> from ddiff.conditioning import Clamp
        >>> clamp = Clamp.from_tensors(torch.tensor([0, 3, 0]), torch.tensor([False, True, False]))
        >>> clamp(torch.tensor([[1, 1, 1], [2, 2, 2]]))
        tensor([[1, 3, 1],
                [2, 3, 2]])
        >>> clamp.num_fixed, clamp.is_empty, clamp.is_full
        (1, False, False)
    """

    mask: Tensor
    tokens: Tensor

    @classmethod
    def from_tensors(cls, tokens: Tensor, mask: Tensor, num_tokens: int | None = None) -> Clamp:
        """A clamp from explicit tensors, validated.

        Args:
            tokens: `[L]` or `[B, L]` integer tokens; only the entries where `mask` is True count.
            mask: bool tensor of the same shape, True at fixed positions.
            num_tokens: if given, every fixed token must be a data token in `[0, num_tokens)`.

        Raises:
            ValueError: on mismatched shapes, a non-bool mask, or a fixed token out of range.
        """
        if not isinstance(tokens, Tensor) or not isinstance(mask, Tensor):
            raise TypeError("tokens and mask must be torch tensors")
        if mask.dtype != torch.bool:
            raise ValueError(f"mask must be a bool tensor (True = fixed), got dtype {mask.dtype}")
        if tokens.dim() not in (1, 2) or tokens.shape != mask.shape:
            raise ValueError(
                "tokens and mask must have the same shape, [length] or [batch, length]; got "
                f"{list(tokens.shape)} and {list(mask.shape)}"
            )
        if tokens.is_floating_point() or tokens.is_complex():
            raise ValueError(f"tokens must hold integer token ids, got dtype {tokens.dtype}")
        tokens = torch.where(mask, tokens.long(), 0)
        high = num_tokens if num_tokens is not None else None
        bad = (tokens < 0) if high is None else ((tokens < 0) | (tokens >= high))
        if bool(bad.any()):
            index = tuple(bad.nonzero()[0].tolist())
            limit = "" if high is None else f" (the alphabet has {high} data tokens: 0..{high - 1})"
            raise ValueError(
                f"fixed token {int(tokens[index])} at index {index} is not a data token{limit}"
            )
        return cls(mask=mask, tokens=tokens)

    # -- the projection ----------------------------------------------------------------------------

    def __call__(self, x: Tensor) -> Tensor:
        """`x` `[B, L]` with the fixed positions set to their tokens (a new tensor)."""
        return torch.where(self.mask, self.tokens, x)

    # -- properties --------------------------------------------------------------------------------

    @property
    def length(self) -> int:
        """Sequence length L."""
        return int(self.mask.shape[-1])

    @property
    def num_fixed(self) -> int:
        """Number of fixed positions (summed over the batch for a batched clamp)."""
        return int(self.mask.sum())

    @property
    def is_empty(self) -> bool:
        """True when nothing is fixed (sampling is then unconditional)."""
        return not bool(self.mask.any())

    @property
    def is_full(self) -> bool:
        """True when every position is fixed (the sample is the condition itself)."""
        return bool(self.mask.all())

    def expand(self, batch: int) -> Clamp:
        """The same clamp with `[batch, L]` tensors (views when the clamp is shared)."""
        if self.mask.dim() == 2:
            if self.mask.shape[0] != batch:
                raise ValueError(
                    f"this clamp holds {self.mask.shape[0]} sequences but the batch has {batch}; "
                    "give one row per sequence or a shared [length] clamp"
                )
            return self
        length = self.length
        return Clamp(self.mask.expand(batch, length), self.tokens.expand(batch, length))

    def to(self, device: torch.device | str | None) -> Clamp:
        """The clamp on `device`."""
        return Clamp(self.mask.to(device), self.tokens.to(device))

    def __repr__(self) -> str:
        shape = "x".join(str(d) for d in self.mask.shape)
        return f"Clamp(shape={shape}, num_fixed={self.num_fixed})"


class ConditionalScoreFn(Protocol):
    """A score function that also reads the condition: `(x_t, sigma, *, condition) -> [B, L, S]`.

    Samplers call it this way only when asked to (`pass_condition=True`); `condition` is then the
    `Clamp` expanded to `[B, L]`, so a network can embed which positions are fixed.
    """

    def __call__(self, x_t: Tensor, sigma: Tensor, *, condition: Clamp) -> Tensor: ...
