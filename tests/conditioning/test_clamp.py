"""Clamp: the projection samplers apply, shared or per sequence."""

from __future__ import annotations

import pytest
import torch

from ddiff.conditioning import Clamp


def test_projection_sets_only_the_fixed_positions() -> None:
    clamp = Clamp.from_tensors(torch.tensor([5, 1, 5]), torch.tensor([False, True, False]))
    x = torch.tensor([[0, 0, 0], [2, 2, 2]])
    assert clamp(x).tolist() == [[0, 1, 0], [2, 1, 2]]
    assert x.tolist() == [[0, 0, 0], [2, 2, 2]]  # a new tensor
    assert clamp.tokens.tolist() == [0, 1, 0]  # free positions hold 0
    assert clamp.length == 3 and clamp.num_fixed == 1


def test_batched_clamp() -> None:
    mask = torch.tensor([[True, False], [False, True]])
    clamp = Clamp.from_tensors(torch.tensor([[1, 0], [0, 2]]), mask, num_tokens=3)
    assert clamp(torch.full((2, 2), 9)).tolist() == [[1, 9], [9, 2]]
    assert clamp.expand(2) is clamp
    with pytest.raises(ValueError, match="holds 2 sequences but the batch has 3"):
        clamp.expand(3)


def test_expand_shares_memory() -> None:
    clamp = Clamp.from_tensors(torch.tensor([1, 0]), torch.tensor([True, False])).expand(4)
    assert clamp.mask.shape == (4, 2) and clamp.mask.stride() == (0, 1)
    assert "num_fixed=4" in repr(clamp)


@pytest.mark.parametrize(
    ("tokens", "mask", "num_tokens", "error", "message"),
    [
        (torch.tensor([1, 2]), torch.tensor([1, 0]), None, ValueError, "bool tensor"),
        (torch.tensor([1, 2]), torch.tensor([True]), None, ValueError, "same shape"),
        (
            torch.zeros(1, 2, 2, dtype=torch.long),
            torch.zeros(1, 2, 2, dtype=torch.bool),
            None,
            ValueError,
            "same shape",
        ),
        (torch.tensor([1.0, 2.0]), torch.tensor([True, True]), None, ValueError, "integer"),
        (
            torch.tensor([1, 4]),
            torch.tensor([True, True]),
            4,
            ValueError,
            "token 4 at index \\(1,\\) is not a data token",
        ),
        (torch.tensor([-1, 0]), torch.tensor([True, False]), None, ValueError, "token -1"),
        ([1, 2], torch.tensor([True, True]), None, TypeError, "torch tensors"),
    ],
)
def test_from_tensors_validates(tokens, mask, num_tokens, error, message) -> None:
    with pytest.raises(error, match=message):
        Clamp.from_tensors(tokens, mask, num_tokens)


def test_out_of_range_token_at_a_free_position_is_ignored() -> None:
    clamp = Clamp.from_tensors(torch.tensor([1, 99]), torch.tensor([True, False]), num_tokens=4)
    assert clamp.tokens.tolist() == [1, 0]
