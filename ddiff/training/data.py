"""Token data for training: a Lightning data module over `ddiff.data.TokenDataset`.

The data themselves (fixed-length windows or variable-length sequences padded with a token, and
why padding is data) are `ddiff.data.TokenDataset`, `TokenBatch` and `windows`, re-exported
here; see `ddiff.data.tokens` for the padding policy.

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
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from ddiff.data.tokens import TokenArray, TokenBatch, TokenDataset, windows
from ddiff.training._seeding import DATA_ORDER, derive_seed

__all__ = ["TokenArray", "TokenBatch", "TokenDataModule", "TokenDataset", "windows"]

TokenLabels = Sequence[int] | Tensor | np.ndarray
"""One class id per sequence, `[N]`."""


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
        train_labels: one class id per training sequence, for label-conditioned training
            (batches then carry `TokenBatch.labels`); None for unlabelled data.
        val_labels: the validation sequences' class ids (required with `train_labels` when
            there is validation data).
        num_labels: if given, labels are checked to lie in `[0, num_labels)`.
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
        train_labels: TokenLabels | None = None,
        val_labels: TokenLabels | None = None,
        num_labels: int | None = None,
        seed: int = 0,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        if val is not None and (train_labels is None) != (val_labels is None):
            given = "train_labels" if val_labels is None else "val_labels"
            raise ValueError(
                f"only {given} was given: labelled data needs labels for both the training and "
                "the validation sequences (or neither)"
            )
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
        self._train_labels, self._val_labels = train_labels, val_labels
        self.num_labels = num_labels
        self.train_data: TokenDataset | None = None
        self.val_data: TokenDataset | None = None

    def setup(self, stage: str | None = None) -> None:
        """Index the arrays (once); Lightning calls this on every process."""
        kwargs: dict[str, Any] = {
            "length": self.length,
            "pad_token": self.pad_token,
            "num_tokens": self.num_tokens,
        }
        kwargs["num_labels"] = self.num_labels
        if self.train_data is None:
            self.train_data = TokenDataset(
                self._train_source, name="train", labels=self._train_labels, **kwargs
            )
        if self.val_data is None and self._val_source is not None:
            self.val_data = TokenDataset(
                self._val_source, name="val", labels=self._val_labels, **kwargs
            )

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
