"""Token data: padding as a token, errors that name the record, a resumable, rank-aware order."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from ddiff.training import TokenDataModule, TokenDataset, windows
from ddiff.training.data import _EvalStream, _TrainStream


def take(stream: _TrainStream, n: int) -> list[torch.Tensor]:
    return [b.tokens for b in itertools.islice(iter(stream), n)]


def test_windows_are_full_length_with_real_tokens_everywhere() -> None:
    data = TokenDataset(torch.randint(4, (10, 6)), num_tokens=4)
    batch = data.batch(torch.tensor([3, 1]))
    assert batch.tokens.shape == (2, 6) and batch.tokens.dtype == torch.long
    assert batch.lengths.tolist() == [6, 6]


def test_variable_lengths_are_padded_with_the_pad_token_to_a_fixed_length() -> None:
    seqs = [np.array([1, 2]), torch.tensor([3]), [0, 1, 2, 3]]
    data = TokenDataset(seqs, length=5, pad_token=4, num_tokens=5)
    batch = data.batch(torch.tensor([0, 1, 2]))
    assert batch.tokens.tolist() == [[1, 2, 4, 4, 4], [3, 4, 4, 4, 4], [0, 1, 2, 3, 4]]
    assert batch.lengths.tolist() == [2, 1, 4]


def test_bad_data_names_the_record_and_position() -> None:
    with pytest.raises(ValueError, match="record 1 holds token 7 at position 2"):
        TokenDataset([[0, 1], [1, 2, 7]], length=4, num_tokens=4, name="train")
    with pytest.raises(ValueError, match="record 1 has 3 tokens, more than length = 2"):
        TokenDataset([[0], [1, 2, 3]], length=2)
    with pytest.raises(ValueError, match="give `length`"):
        TokenDataset([[0], [1, 2, 3]])
    with pytest.raises(ValueError, match="record 0 is empty"):
        TokenDataset([[], [1]], length=2)
    with pytest.raises(ValueError, match="integers"):
        TokenDataset(torch.rand(3, 4))
    with pytest.raises(ValueError, match="windows"):
        TokenDataset(torch.arange(8))
    with pytest.raises(ValueError, match="pad_token 9"):
        TokenDataset([[0], [1, 2]], length=3, pad_token=9, num_tokens=4)


def test_windows_cut_a_stream() -> None:
    assert windows(np.arange(10), 4, stride=3).tolist() == [
        [0, 1, 2, 3],
        [3, 4, 5, 6],
        [6, 7, 8, 9],
    ]
    with pytest.raises(ValueError, match="fewer than one window"):
        windows(torch.arange(3), 4)


def test_training_order_is_a_seeded_permutation_per_pass_and_resumes_at_any_batch() -> None:
    data = TokenDataset(torch.arange(24).reshape(12, 2) % 7)
    stream = _TrainStream(data, batch_size=4, seed=3, rank=0, world_size=1, start=0)
    first = take(stream, 9)  # three passes of three batches
    again = take(_TrainStream(data, 4, 3, 0, 1, 0), 9)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    one_pass = torch.cat(first[:3])
    assert sorted(map(tuple, one_pass.tolist())) == sorted(
        map(tuple, data.batch(torch.arange(12)).tokens.tolist())
    )
    assert not torch.equal(torch.cat(first[:3]), torch.cat(first[3:6]))  # a new order each pass
    resumed = take(_TrainStream(data, 4, 3, 0, 1, start=5), 4)
    assert all(torch.equal(a, b) for a, b in zip(first[5:], resumed, strict=True))
    other_seed = take(_TrainStream(data, 4, 4, 0, 1, 0), 3)
    assert not all(torch.equal(a, b) for a, b in zip(first, other_seed, strict=False))


def test_ranks_split_the_global_batch_of_a_single_process() -> None:
    data = TokenDataset(torch.arange(64).reshape(32, 2))
    single = take(_TrainStream(data, 8, 0, 0, 1, 0), 6)
    ranks = [take(_TrainStream(data, 4, 0, r, 2, 0), 6) for r in (0, 1)]
    for k in range(6):
        assert torch.equal(ranks[0][k], single[k][0::2])
        assert torch.equal(ranks[1][k], single[k][1::2])


def test_validation_shards_cover_the_data_once() -> None:
    data = TokenDataset(torch.arange(22).reshape(11, 2))
    shards = [torch.cat([b.tokens for b in _EvalStream(data, 2, r, 3)]) for r in range(3)]
    rows = sorted(int(x) for s in shards for x in s[:, 0])
    assert rows == list(range(0, 22, 2))
    assert len(_EvalStream(data, 2, 0, 3)) == 2  # rows 0, 3, 6, 9 in batches of 2


def test_too_small_a_dataset_for_the_global_batch_is_an_error() -> None:
    with pytest.raises(ValueError, match="fewer than one global batch"):
        _TrainStream(TokenDataset(torch.zeros(6, 2, dtype=torch.long)), 4, 0, 0, 2, 0)


def test_datamodule_resumes_after_the_batches_a_run_used() -> None:
    dm = TokenDataModule(torch.arange(80).reshape(40, 2), batch_size=4, seed=1)
    fresh = list(itertools.islice(iter(dm.train_dataloader()), 8))
    # A resumed Trainer at global step 3 with two micro-batches per step has used 6 batches.
    dm.trainer = SimpleNamespace(
        global_step=3, accumulate_grad_batches=2, global_rank=0, world_size=1
    )  # type: ignore[assignment]
    resumed = list(itertools.islice(iter(dm.train_dataloader()), 2))
    assert torch.equal(resumed[0].tokens, fresh[6].tokens)
    assert torch.equal(resumed[1].tokens, fresh[7].tokens)


def test_workers_deliver_the_same_batches_in_the_same_order() -> None:
    train = torch.arange(96).reshape(48, 2)
    inline = TokenDataModule(train, train[:10], batch_size=4, val_batch_size=3)
    workers = TokenDataModule(train, train[:10], batch_size=4, val_batch_size=3, num_workers=2)
    a = [b.tokens for b in itertools.islice(iter(inline.train_dataloader()), 7)]
    b = [b.tokens for b in itertools.islice(iter(workers.train_dataloader()), 7)]
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    va = [b.tokens for b in inline.val_dataloader()]
    vb = [b.tokens for b in workers.val_dataloader()]
    assert len(va) == 4 and all(torch.equal(x, y) for x, y in zip(va, vb, strict=True))


def test_datamodule_without_validation_data() -> None:
    dm = TokenDataModule(torch.zeros(8, 3, dtype=torch.long), batch_size=2)
    assert dm.val_dataloader() == []
    with pytest.raises(ValueError, match="batch_size"):
        TokenDataModule(torch.zeros(8, 3, dtype=torch.long), batch_size=0)
