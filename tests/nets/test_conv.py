"""`ConvScoreNet`: receptive field, absolute positions and its errors (the ScoreNet contract is
in test_contract.py)."""

from __future__ import annotations

import pytest
import torch

from ddiff.nets import ConvScoreNet


def _trained_looking(net: ConvScoreNet) -> ConvScoreNet:
    """Give the zero-initialised modulations and head random weights (an untrained net outputs
    zeros everywhere, which tests nothing)."""
    torch.manual_seed(1)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if "modulation" in name or name.startswith("head"):
                p.normal_(0, 0.5)
    return net


@pytest.mark.parametrize(("depth", "cycle"), [(1, 1), (2, 2), (3, 3)])
def test_receptive_field_of_dilated_blocks(depth: int, cycle: int) -> None:
    """Blocks with dilations 1, 2, 4 and kernel 3 see 1 + 2 (2^depth - 1) positions: a change at
    position j moves exactly the outputs within that distance of j."""
    torch.manual_seed(0)
    net = _trained_looking(ConvScoreNet(4, max_length=40, dim=8, depth=depth, kernel_size=3, cycle=cycle, cond_dim=8))  # fmt: skip
    x = torch.randint(0, 4, (1, 40))
    y = x.clone()
    y[0, 20] = (x[0, 20] + 1) % 4
    sigma = torch.tensor([1.0])
    moved = (net(x, sigma) - net(y, sigma)).abs().amax(dim=-1)[0] > 1e-7
    reach = 2**depth - 1
    assert moved.nonzero().flatten().tolist() == list(range(20 - reach, 20 + reach + 1))


def test_absolute_positions_are_seen() -> None:
    """A constant sequence gets different scores at different positions (rotary attention
    alone could not tell them apart)."""
    torch.manual_seed(0)
    net = _trained_looking(ConvScoreNet(4, max_length=32, dim=8, depth=1, cond_dim=8))
    out = net(torch.zeros(1, 32, dtype=torch.long), torch.tensor([1.0]))[0]
    assert not torch.allclose(out[10], out[11])


def test_without_positions_the_blocks_are_translation_equivariant() -> None:
    """`positions=False`: no position table, any length, and a constant sequence gets the same
    scores wherever the zero padding at the ends is out of reach."""
    torch.manual_seed(0)
    net = _trained_looking(ConvScoreNet(4, max_length=8, dim=8, depth=1, cond_dim=8, positions=False))  # fmt: skip
    assert net.position is None and "position.weight" not in net.state_dict()
    out = net(torch.zeros(1, 32, dtype=torch.long), torch.tensor([1.0]))[0]
    torch.testing.assert_close(out[10], out[11])
    assert "positions=False" in repr(net)


def test_errors() -> None:
    net = ConvScoreNet(4, max_length=8, dim=8, depth=1, cond_dim=8)
    with pytest.raises(ValueError, match="longer than max_length = 8"):
        net(torch.zeros(1, 9, dtype=torch.long), torch.tensor([1.0]))
    with pytest.raises(ValueError, match="kernel_size must be a positive odd integer"):
        ConvScoreNet(4, max_length=8, kernel_size=4)
    with pytest.raises(ValueError, match="max_length must be a positive integer"):
        ConvScoreNet(4, max_length=0)
