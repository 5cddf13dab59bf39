"""The exponential moving average of the weights."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ddiff.training import EMA


def test_average_follows_the_warmed_up_decay() -> None:
    net = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        net.weight.fill_(1.0)
    ema = EMA(net, decay=0.99)
    expected = 1.0
    for n, value in enumerate([3.0, 5.0, -1.0, 2.0]):
        with torch.no_grad():
            net.weight.fill_(value)
        ema.update(net)
        d = min(0.99, (1 + n) / (10 + n))
        expected = d * expected + (1 - d) * value
        assert torch.allclose(ema.model.weight, torch.full((1, 2), expected))
    assert not ema.model.weight.requires_grad and not ema.model.training


def test_buffers_are_copied_and_state_round_trips() -> None:
    net = nn.BatchNorm1d(3)
    ema = EMA(net, decay=0.5)
    net.running_mean.fill_(7.0)
    ema.update(net)
    assert torch.equal(ema.model.running_mean, net.running_mean)
    other = EMA(nn.BatchNorm1d(3), decay=0.5)
    other.load_state_dict(ema.state_dict())
    assert other.num_updates == 1 and torch.equal(other.model.running_mean, net.running_mean)


def test_decay_must_be_below_one() -> None:
    with pytest.raises(ValueError, match="decay"):
        EMA(nn.Linear(1, 1), 1.0)
