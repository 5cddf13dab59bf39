"""Token sequences held compactly and batched with padding to a fixed length.

**Variable lengths: padding as a token, to a fixed length.** A list of sequences of different
lengths is padded at the end with `pad_token` up to `length`, and the model learns the padded
sequences as they are: the pads are data (the loss covers them), so the model also learns where
sequences end, and its bound is a bound on the likelihood of the whole padded sequence, content
and length included. Reported bits per token divide that bound by the number of **real**
(non-pad) tokens (`TokenBatch.lengths`), as a language model's perplexity per word includes
the cost of its end-of-sequence token. Padding to a fixed length (not to each batch's longest
sequence) keeps the likelihood of a sequence independent of the batch it lands in.

Why not a mask that drops the pads from the loss: the network would still read the (noised)
pads as context, and a sum of DSE terms over a subset of positions is not a bound on anything.
Why not packing: packing (concatenate sequences with a separator token, cut into windows with
`windows`) is the right choice for text corpora; pass the windows as fixed-length data.

`pad_token` should be a token reserved for padding (or end-of-sequence) in the graph's data
alphabet; if it is also an ordinary token, the bound is still valid but the model cannot tell
where a sequence ends.

These need only torch and numpy; `ddiff.training.TokenDataModule` serves them to Lightning.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

__all__ = ["TokenArray", "TokenBatch", "TokenDataset", "windows"]

TokenArray = Tensor | np.ndarray | Sequence[Tensor | np.ndarray | Sequence[int]]
"""Fixed-length windows `[N, L]` (a tensor or array), or a sequence of 1-D token sequences."""


class TokenBatch(NamedTuple):
    """A batch of token sequences (and their class labels, for labelled data).

    Attributes:
        tokens: LongTensor `[batch, length]` (padded sequences end with the pad token).
        lengths: LongTensor `[batch]`, the number of real (non-pad) tokens of each sequence.
        labels: LongTensor `[batch]` of class ids, or None for unlabelled data.

    Example:
        >>> import torch
        >>> from ddiff.data import TokenDataset
        >>> batch = TokenDataset([[5, 6, 7], [8]], length=3, pad_token=0).batch(torch.arange(2))
        >>> batch.tokens
        tensor([[5, 6, 7],
                [8, 0, 0]])
        >>> torch.arange(3) < batch.lengths[:, None]  # the real (non-pad) positions
        tensor([[ True,  True,  True],
                [ True, False, False]])
    """

    tokens: Tensor
    lengths: Tensor
    labels: Tensor | None = None


class TokenDataset:
    """Token sequences held compactly: one flat array of tokens plus offsets.

    Args:
        data: fixed-length windows `[N, L]`, or a sequence of 1-D token sequences.
        length: the length every sequence is padded to; required for variable-length data
            (must be >= the longest sequence); for windows it defaults to L (a larger value pads).
        pad_token: the token appended to sequences shorter than `length`.
        num_tokens: if given, every token must be in `[0, num_tokens)`.
        name: how errors refer to this data (e.g. a file name or "train").
        labels: one class id per sequence (`[N]` integers), for label-conditioned training;
            batches then carry them (`TokenBatch.labels`).
        num_labels: if given, every label must be in `[0, num_labels)`.

    Raises:
        ValueError: on an empty dataset, a token outside the alphabet or a sequence longer than
            `length`, or labels that are not one integer per sequence in range; the message
            names the record and position.

    Example:
        >>> import torch
        >>> from ddiff.data import TokenDataset
        >>> data = TokenDataset([[1, 2, 3], [4, 5]], length=4, pad_token=0)
        >>> len(data), data.lengths
        (2, tensor([3, 2]))
        >>> data.batch(torch.tensor([1, 0]))  # padded to length 4
        TokenBatch(tokens=tensor([[4, 5, 0, 0],
                [1, 2, 3, 0]]), lengths=tensor([2, 3]), labels=None)
        >>> TokenDataset([[1, 2], [3, 0]], labels=[1, 0]).batch(torch.tensor([0])).labels
        tensor([1])
        >>> TokenDataset([[1, 2], [3, 9]], num_tokens=4, name="train")
        Traceback (most recent call last):
            ...
        ValueError: train: record 1 holds token 9 at position 1, outside the alphabet [0, 4)
    """

    def __init__(
        self,
        data: TokenArray,
        length: int | None = None,
        pad_token: int = 0,
        num_tokens: int | None = None,
        name: str = "data",
        labels: Sequence[int] | Tensor | np.ndarray | None = None,
        num_labels: int | None = None,
    ) -> None:
        if isinstance(data, Tensor | np.ndarray) and data.ndim == 2:
            flat = torch.as_tensor(np.asarray(data) if isinstance(data, np.ndarray) else data)
            n, width = flat.shape
            lengths = torch.full((n,), width, dtype=torch.long)
            flat = flat.reshape(-1)
        elif isinstance(data, Tensor | np.ndarray):
            raise ValueError(
                f"{name}: token arrays must be 2-D windows [N, L] (or pass a list of 1-D "
                f"sequences), got shape {list(data.shape)}; cut a 1-D stream with windows()"
            )
        else:
            seqs = [_as_tokens(s) for s in data]
            lengths = torch.tensor([s.numel() for s in seqs], dtype=torch.long)
            flat = torch.cat(seqs) if seqs else torch.zeros(0, dtype=torch.long)
        if lengths.numel() == 0:
            raise ValueError(f"{name}: no sequences")
        if flat.dtype.is_floating_point or flat.dtype == torch.bool or flat.is_complex():
            raise ValueError(f"{name}: tokens must be integers, got dtype {flat.dtype}")
        longest = int(lengths.max())
        if length is None:
            if int(lengths.min()) != longest:
                raise ValueError(
                    f"{name}: sequences have lengths from {int(lengths.min())} to {longest}; "
                    "give `length` (the padded length, >= the longest sequence)"
                )
            length = longest
        if longest > length:
            record = int((lengths > length).nonzero()[0, 0])
            raise ValueError(
                f"{name}: record {record} has {int(lengths[record])} tokens, more than "
                f"length = {length}; crop or window long sequences, or raise length"
            )
        if int(lengths.min()) < 1:
            record = int((lengths < 1).nonzero()[0, 0])
            raise ValueError(f"{name}: record {record} is empty")
        offsets = torch.zeros(lengths.numel() + 1, dtype=torch.long)
        offsets[1:] = lengths.cumsum(0)
        if num_tokens is not None:
            _check_range(flat, offsets, num_tokens, name)
            if not 0 <= pad_token < num_tokens and int(lengths.min()) < length:
                raise ValueError(
                    f"{name}: pad_token {pad_token} is outside the alphabet [0, {num_tokens})"
                )
        # Stored in int32 when the ids fit (half the memory); batches are int64.
        fits = flat.numel() == 0 or (int(flat.min()) >= -(2**31) and int(flat.max()) < 2**31)
        self.tokens = flat.to(torch.int32 if fits else torch.int64)
        self.offsets = offsets
        self.length = int(length)
        self.pad_token = int(pad_token)
        self.name = name
        self.labels = None if labels is None else _as_labels(labels, len(self), num_labels, name)

    def __len__(self) -> int:
        return self.offsets.numel() - 1

    @property
    def lengths(self) -> Tensor:
        """LongTensor `[N]`: real tokens per sequence."""
        return self.offsets[1:] - self.offsets[:-1]

    def batch(self, indices: Tensor) -> TokenBatch:
        """The sequences at `indices`, padded to `length`."""
        starts = self.offsets[indices]
        lengths = self.offsets[indices + 1] - starts
        position = torch.arange(self.length)
        real = position[None, :] < lengths[:, None]
        gather = (starts[:, None] + position[None, :]).clamp(max=max(self.tokens.numel() - 1, 0))
        tokens = torch.where(real, self.tokens[gather].long(), self.pad_token)
        labels = None if self.labels is None else self.labels[indices]
        return TokenBatch(tokens=tokens, lengths=lengths, labels=labels)


def windows(stream: Tensor | np.ndarray, length: int, stride: int | None = None) -> Tensor:
    """Cut a 1-D token stream into windows `[N, length]` (the tail that does not fit is dropped).

    Use it for packing: concatenate documents with a separator token, then cut.

    Args:
        stream: 1-D tokens.
        length: window length.
        stride: distance between window starts (default: `length`, no overlap).

    Example:
        >>> windows(torch.arange(7), 3)
        tensor([[0, 1, 2],
                [3, 4, 5]])
    """
    x = torch.as_tensor(np.asarray(stream) if isinstance(stream, np.ndarray) else stream)
    if x.dim() != 1:
        raise ValueError(f"stream must be 1-D, got shape {list(x.shape)}")
    stride = length if stride is None else stride
    if length < 1 or stride < 1:
        raise ValueError(f"length and stride must be >= 1, got {length} and {stride}")
    if x.numel() < length:
        raise ValueError(f"the stream has {x.numel()} tokens, fewer than one window of {length}")
    return x.unfold(0, length, stride).clone()


def _as_tokens(sequence: Tensor | np.ndarray | Sequence[int]) -> Tensor:
    array = sequence if isinstance(sequence, Tensor) else torch.as_tensor(np.asarray(sequence))
    return array.reshape(-1).long() if array.numel() == 0 else array.reshape(-1)


def _as_labels(
    labels: Sequence[int] | Tensor | np.ndarray, n: int, num_labels: int | None, name: str
) -> Tensor:
    """Labels as a LongTensor `[n]`, checked (one integer per record, in range)."""
    array = labels if isinstance(labels, Tensor) else torch.as_tensor(np.asarray(labels))
    if array.is_floating_point() or array.dtype == torch.bool or array.is_complex():
        raise ValueError(f"{name}: labels must be integer class ids, got dtype {array.dtype}")
    if list(array.shape) != [n]:
        raise ValueError(
            f"{name}: labels must hold one class id per record ({n}), got shape {list(array.shape)}"
        )
    high = num_labels if num_labels is not None else None
    bad = (array < 0) if high is None else (array < 0) | (array >= high)
    if bool(bad.any()):
        record = int(bad.nonzero()[0, 0])
        limit = "" if high is None else f" [0, {high})"
        raise ValueError(
            f"{name}: record {record} has label {int(array[record])}, outside the label set{limit}"
        )
    return array.long()


def _check_range(flat: Tensor, offsets: Tensor, num_tokens: int, name: str) -> None:
    if flat.numel() == 0:
        return
    bad = (flat < 0) | (flat >= num_tokens)
    if bool(bad.any()):
        where = int(bad.nonzero()[0, 0])
        record = int(torch.searchsorted(offsets, torch.tensor(where), right=True)) - 1
        position = where - int(offsets[record])
        raise ValueError(
            f"{name}: record {record} holds token {int(flat[where])} at position {position}, "
            f"outside the alphabet [0, {num_tokens})"
        )
