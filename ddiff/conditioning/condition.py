"""What is fixed in a sequence: single tokens, spans, motifs, a prefix or a suffix."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ddiff.conditioning.clamp import Clamp


@dataclass(frozen=True)
class Motif:
    """Tokens fixed at consecutive positions, starting at `position`.

    Attributes:
        tokens: the fixed token ids, in order (at least one).
        position: where the first token goes; a negative position counts from the end, as in
            Python (`-3` is the third position from the end), so a suffix does not need to know
            the sequence length.
        name: optional label used in error messages (e.g. `"TATA box"`).

    Example:
        >>> from ddiff.conditioning import Condition, Motif
        >>> tata = Motif((3, 0, 3, 0), position=-6, name="TATA box")  # 6th position from the end
        >>> Condition((tata,)).resolve(length=10, num_tokens=4).tokens.tolist()
        [0, 0, 0, 0, 3, 0, 3, 0, 0, 0]
    """

    tokens: tuple[int, ...]
    position: int
    name: str | None = None

    def __post_init__(self) -> None:
        tokens = self.tokens
        if isinstance(tokens, Tensor):
            if tokens.dim() != 1 or tokens.is_floating_point():
                raise ValueError(
                    f"motif {self.name or ''} at position {self.position}: tokens must be a 1-d "
                    f"tensor of integer ids, got shape {list(tokens.shape)} and {tokens.dtype}"
                )
            tokens = tokens.tolist()
            object.__setattr__(self, "tokens", tokens)
        if isinstance(tokens, str):
            raise TypeError(
                f"{self._label()}: tokens must be integer ids, got the string {tokens!r}; encode "
                "it with the domain's alphabet first"
            )
        tokens = tuple(tokens)
        if not tokens:
            raise ValueError(f"{self._label()} at position {self.position} has no tokens")
        for k, token in enumerate(tokens):
            if isinstance(token, bool) or not isinstance(token, int) or token < 0:
                raise ValueError(
                    f"{self._label()} at position {self.position}: token #{k} is {token!r}; "
                    "tokens must be non-negative integer ids"
                )
        if isinstance(self.position, bool) or not isinstance(self.position, int):
            raise ValueError(f"{self._label()}: position must be an int, got {self.position!r}")
        object.__setattr__(self, "tokens", tokens)

    def _label(self) -> str:
        if self.name is not None:
            return f"motif {self.name!r}"
        shown = ", ".join(str(t) for t in list(self.tokens)[:8])
        return f"motif [{shown}{', ...' if len(self.tokens) > 8 else ''}]"

    def describe(self) -> str:
        """`motif 'name' at position p`, as used in error messages."""
        return f"{self._label()} at position {self.position}"


@dataclass(frozen=True)
class Condition:
    r"""A description of the fixed parts of a sequence, independent of any sampler.

    Sampling with a condition draws the free positions given the fixed ones: every sampler
    starts the fixed positions at their tokens and clamps them after every step (a projection
    onto the set of sequences that satisfy the condition). With exact scores this samples the
    exact conditional $p_0(x_{\text{free}} \mid x_{\text{fixed}})$ for absorbing graphs, where a
    clean token never changes again; for other graphs the score function must itself be
    conditional to be exact (pass it the condition with `pass_condition=True`), see
    `docs/samplers.md` for how far plain clamping is.

    Build conditions with the constructors and combine them with `|` (the union of what is
    fixed); `resolve` checks them against a length and an alphabet.

    Args:
        motifs: the fixed motifs.

    Example:
        >>> from ddiff.conditioning import Condition
        >>> c = Condition.prefix([1, 2]) | Condition.at({5: 3}) | Condition.suffix([0])
        >>> clamp = c.resolve(length=8, num_tokens=4)
        >>> clamp.mask.int().tolist(), clamp.tokens.tolist()
        ([1, 1, 0, 0, 0, 1, 0, 1], [1, 2, 0, 0, 0, 3, 0, 0])
        >>> Condition.span(6, [1, 2, 3], name="tail").resolve(8, 4)
        Traceback (most recent call last):
        ...
        ValueError: motif 'tail' at position 6 (3 tokens) runs past the end of the sequence: it needs positions 6..8 but the length is 8 (last position 7)
    """

    motifs: tuple[Motif, ...] = field(default=())

    def __post_init__(self) -> None:
        motifs = tuple(self.motifs)
        for m in motifs:
            if not isinstance(m, Motif):
                raise TypeError(f"a Condition holds Motif objects, got {type(m).__name__}")
        object.__setattr__(self, "motifs", motifs)

    # -- constructors ------------------------------------------------------------------------------

    @classmethod
    def at(cls, fixed: Mapping[int, int]) -> Condition:
        """Single tokens: `{position: token}` (negative positions count from the end)."""
        return cls(tuple(Motif((int(tok),), int(pos)) for pos, tok in fixed.items()))

    @classmethod
    def span(
        cls, position: int, tokens: Sequence[int] | Tensor, name: str | None = None
    ) -> Condition:
        """A motif: `tokens` at consecutive positions from `position`."""
        return cls((Motif(tokens, position, name),))  # type: ignore[arg-type]

    @classmethod
    def motifs_at(cls, motifs: Iterable[tuple[int, Sequence[int] | Tensor]]) -> Condition:
        """Several motifs, `[(position, tokens), ...]`."""
        return cls(tuple(Motif(tokens, pos) for pos, tokens in motifs))  # type: ignore[arg-type]

    @classmethod
    def prefix(cls, tokens: Sequence[int] | Tensor, name: str = "prefix") -> Condition:
        """A prompt: `tokens` at the start of the sequence."""
        return cls.span(0, tokens, name)

    @classmethod
    def suffix(cls, tokens: Sequence[int] | Tensor, name: str = "suffix") -> Condition:
        """`tokens` at the end of the sequence, whatever its length."""
        return cls.span(-len(tokens), tokens, name)

    def __or__(self, other: Condition) -> Condition:
        """Both conditions: everything either one fixes."""
        if not isinstance(other, Condition):
            return NotImplemented
        return Condition(self.motifs + other.motifs)

    @property
    def is_empty(self) -> bool:
        """True when nothing is fixed."""
        return not self.motifs

    # -- resolution --------------------------------------------------------------------------------

    def resolve(
        self, length: int, num_tokens: int, device: torch.device | str | None = None
    ) -> Clamp:
        """Check the condition against a sequence length and an alphabet; return its `Clamp`.

        Args:
            length: sequence length L (>= 1).
            num_tokens: data alphabet size N; fixed tokens must lie in `[0, N)` (never MASK).
            device: device of the clamp's tensors.

        Raises:
            ValueError: naming the motif and its position, when a motif is longer than the
                sequence, starts out of range, runs past the end, holds a token outside the
                alphabet, or overlaps another motif and disagrees with it.
        """
        if isinstance(length, bool) or not isinstance(length, int) or length < 1:
            raise ValueError(f"length must be a positive int, got {length!r}")
        if isinstance(num_tokens, bool) or not isinstance(num_tokens, int) or num_tokens < 1:
            raise ValueError(f"num_tokens must be a positive int, got {num_tokens!r}")
        tokens = [0] * length
        owner: list[Motif | None] = [None] * length
        for motif in self.motifs:
            k = len(motif.tokens)
            if k > length:
                raise ValueError(
                    f"{motif.describe()} has {k} tokens, longer than the sequence (length {length})"
                )
            if not -length <= motif.position < length:
                raise ValueError(
                    f"{motif.describe()} is out of range for a sequence of length {length}: use "
                    f"0..{length - 1}, or -{length}..-1 to count from the end"
                )
            start = motif.position % length
            if start + k > length:
                raise ValueError(
                    f"{motif.describe()} ({k} tokens) runs past the end of the sequence: it needs "
                    f"positions {start}..{start + k - 1} but the length is {length} (last "
                    f"position {length - 1})"
                )
            for offset, token in enumerate(motif.tokens):
                pos = start + offset
                if token >= num_tokens:
                    raise ValueError(
                        f"{motif.describe()}: token {token} (sequence position {pos}) is not a "
                        f"data token; the alphabet has {num_tokens} tokens (0..{num_tokens - 1})"
                    )
                other = owner[pos]
                if other is not None and tokens[pos] != token:
                    raise ValueError(
                        f"{other.describe()} and {motif.describe()} overlap and disagree at "
                        f"sequence position {pos} (token {tokens[pos]} vs {token}): "
                        f"{motif.describe()} overlaps {other.describe()}; remove or move one of them"
                    )
                tokens[pos], owner[pos] = token, motif
        mask = torch.tensor([o is not None for o in owner], dtype=torch.bool, device=device)
        return Clamp(mask=mask, tokens=torch.tensor(tokens, dtype=torch.long, device=device))
