"""Token data for training: fixed-length windows and variable-length sequences.

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

**Order and resumption.** Training batches form an endless stream: batch k of the run is the
k-th slice of a sequence of random permutations of the data (one per pass, seeded by the run's
seed and the pass number), so a run resumed at step k continues with batch k, exactly. Under
distributed training every rank builds the same global batch of `batch_size * world_size`
sequences and keeps the rows `rank::world_size`. Validation batches are rank-sharded, in order,
without the duplicates a `DistributedSampler` adds. Both loaders are iterable datasets that
batch themselves, so Lightning never replaces their samplers.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import lightning as L
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from ddiff.training._seeding import DATA_ORDER, derive_seed

TokenArray = Tensor | np.ndarray | Sequence[Tensor | np.ndarray | Sequence[int]]
"""Fixed-length windows `[N, L]` (a tensor or array), or a sequence of 1-D token sequences."""


class TokenBatch(NamedTuple):
    """A batch of token sequences.

    Attributes:
        tokens: LongTensor `[batch, length]` (padded sequences end with the pad token).
        lengths: LongTensor `[batch]`, the number of real (non-pad) tokens of each sequence.

    Example:
        >>> import torch
        >>> from ddiff.training import TokenDataset
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


class TokenDataset:
    """Token sequences held compactly: one flat array of tokens plus offsets.

    Args:
        data: fixed-length windows `[N, L]`, or a sequence of 1-D token sequences.
        length: the length every sequence is padded to; required for variable-length data
            (must be >= the longest sequence); for windows it defaults to L (a larger value pads).
        pad_token: the token appended to sequences shorter than `length`.
        num_tokens: if given, every token must be in `[0, num_tokens)`.
        name: how errors refer to this data (e.g. a file name or "train").

    Raises:
        ValueError: on an empty dataset, a token outside the alphabet or a sequence longer than
            `length`; the message names the record and position.

    Example:
        >>> import torch
        >>> from ddiff.training import TokenDataset
        >>> data = TokenDataset([[1, 2, 3], [4, 5]], length=4, pad_token=0)
        >>> len(data), data.lengths
        (2, tensor([3, 2]))
        >>> data.batch(torch.tensor([1, 0]))  # padded to length 4
        TokenBatch(tokens=tensor([[4, 5, 0, 0],
                [1, 2, 3, 0]]), lengths=tensor([2, 3]))
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
        return TokenBatch(tokens=tokens, lengths=lengths)


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


class _TrainStream(IterableDataset):
    """Endless training batches from `start` on; batch k is fixed by (seed, k, rank)."""

    def __init__(
        self,
        data: TokenDataset,
        batch_size: int,
        seed: int,
        rank: int,
        world_size: int,
        start: int,
    ) -> None:
        self.data, self.batch_size, self.seed = data, batch_size, seed
        self.rank, self.world_size, self.start = rank, world_size, start
        global_batch = batch_size * world_size
        self.per_pass = len(data) // global_batch
        if self.per_pass < 1:
            raise ValueError(
                f"{data.name}: {len(data)} sequences are fewer than one global batch of "
                f"{batch_size} x {world_size} ranks = {global_batch}; lower batch_size"
            )

    def __iter__(self) -> Iterator[TokenBatch]:
        info = get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        global_batch = self.batch_size * self.world_size
        cached: tuple[int, Tensor] | None = None
        k = self.start + worker
        while True:
            epoch, j = divmod(k, self.per_pass)
            if cached is None or cached[0] != epoch:
                g = torch.Generator().manual_seed(derive_seed(self.seed, DATA_ORDER, epoch))
                cached = (epoch, torch.randperm(len(self.data), generator=g))
            rows = cached[1][j * global_batch : (j + 1) * global_batch]
            yield self.data.batch(rows[self.rank :: self.world_size])
            k += workers  # workers take turns; the DataLoader returns their batches in order


class _EvalStream(IterableDataset):
    """This rank's share (`rank::world_size`) of a dataset, in order, in batches."""

    def __init__(self, data: TokenDataset, batch_size: int, rank: int, world_size: int) -> None:
        self.data, self.batch_size = data, batch_size
        self.rows = torch.arange(rank, len(data), world_size)

    def __len__(self) -> int:
        return -(-self.rows.numel() // self.batch_size)

    def __iter__(self) -> Iterator[TokenBatch]:
        info = get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        for b in range(worker, len(self), workers):
            yield self.data.batch(self.rows[b * self.batch_size : (b + 1) * self.batch_size])


class TokenDataModule(L.LightningDataModule):
    """Training and validation token data for `DiffusionModule`.

    See the module docstring for the padding policy and the (resumable, rank-aware) batch order.

    Args:
        train: training sequences, windows `[N, L]` or a sequence of 1-D sequences.
        val: validation sequences (same forms), or None for no validation.
        batch_size: sequences per batch **per device** (the global batch is
            `batch_size * world_size`; with gradient accumulation, times its factor).
        val_batch_size: sequences per validation batch (default: `batch_size`).
        length: padded length for variable-length data (see `TokenDataset`).
        pad_token: the padding token for variable-length data.
        num_tokens: if given, tokens are checked to lie in `[0, num_tokens)`.
        seed: seed of the training order.
        num_workers: DataLoader worker processes (0: batches are built in the main process).

    Example:
        >>> import torch
        >>> dm = TokenDataModule(torch.randint(4, (64, 8)), batch_size=16)
        >>> dm.setup("fit")
        >>> batch = next(iter(dm.train_dataloader()))
        >>> batch.tokens.shape, batch.lengths.tolist()[:3]
        (torch.Size([16, 8]), [8, 8, 8])
    """

    def __init__(
        self,
        train: TokenArray,
        val: TokenArray | None = None,
        *,
        batch_size: int,
        val_batch_size: int | None = None,
        length: int | None = None,
        pad_token: int = 0,
        num_tokens: int | None = None,
        seed: int = 0,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        for name, value in (("batch_size", batch_size), ("val_batch_size", val_batch_size)):
            if value is not None and (isinstance(value, bool) or int(value) != value or value < 1):
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {num_workers}")
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        self._train_source, self._val_source = train, val
        self.batch_size = int(batch_size)
        self.val_batch_size = int(val_batch_size or batch_size)
        self.length, self.pad_token, self.num_tokens = length, pad_token, num_tokens
        self.seed, self.num_workers = seed, num_workers
        self.train_data: TokenDataset | None = None
        self.val_data: TokenDataset | None = None

    def setup(self, stage: str | None = None) -> None:
        """Index the arrays (once); Lightning calls this on every process."""
        kwargs: dict[str, Any] = {
            "length": self.length,
            "pad_token": self.pad_token,
            "num_tokens": self.num_tokens,
        }
        if self.train_data is None:
            self.train_data = TokenDataset(self._train_source, name="train", **kwargs)
        if self.val_data is None and self._val_source is not None:
            self.val_data = TokenDataset(self._val_source, name="val", **kwargs)

    def _rank(self) -> tuple[int, int]:
        trainer = self.trainer
        return (0, 1) if trainer is None else (trainer.global_rank, trainer.world_size)

    def _start_batch(self) -> int:
        # Checkpoints are written after an optimizer step, so a resumed run has consumed exactly
        # global_step * accumulate_grad_batches batches (Lightning restores global_step before
        # it asks for the training loader).
        trainer = self.trainer
        return 0 if trainer is None else trainer.global_step * trainer.accumulate_grad_batches

    def train_dataloader(self) -> DataLoader:
        """The endless training stream, starting after the batches a resumed run has used."""
        if self.train_data is None:
            self.setup("fit")
        data = self.train_data
        if data is None:  # unreachable: setup sets it
            raise RuntimeError("setup() did not index the training data")
        rank, world = self._rank()
        stream = _TrainStream(data, self.batch_size, self.seed, rank, world, self._start_batch())
        return self._loader(stream)

    def val_dataloader(self) -> DataLoader | list[DataLoader]:
        """This rank's share of the validation data (an empty list without validation data)."""
        if self.train_data is None:
            self.setup("validate")
        if self.val_data is None:
            return []
        rank, world = self._rank()
        return self._loader(_EvalStream(self.val_data, self.val_batch_size, rank, world))

    def _loader(self, stream: IterableDataset) -> DataLoader:
        return DataLoader(
            stream,
            batch_size=None,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )


def _as_tokens(sequence: Tensor | np.ndarray | Sequence[int]) -> Tensor:
    array = sequence if isinstance(sequence, Tensor) else torch.as_tensor(np.asarray(sequence))
    return array.reshape(-1).long() if array.numel() == 0 else array.reshape(-1)


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
