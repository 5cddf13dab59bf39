"""Optimiser settings: validation, warm-up, and which parameters are decayed."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ddiff.training import OptimSettings


def test_linear_warmup_then_constant() -> None:
    factor = OptimSettings(warmup_steps=4).lr_factor()
    assert [factor(s) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert OptimSettings(warmup_steps=0).lr_factor()(0) == 1.0


def test_weight_decay_applies_to_matrices_only() -> None:
    net = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4))
    opt = OptimSettings(weight_decay=0.1).build_optimizer(net.parameters())
    decayed, plain = opt.param_groups
    assert [p.shape for p in decayed["params"]] == [torch.Size([4, 3])]
    assert decayed["weight_decay"] == 0.1 and plain["weight_decay"] == 0.0
    assert len(plain["params"]) == 3
    assert len(OptimSettings().build_optimizer(net.parameters()).param_groups) == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lr": 0.0}, "lr"),
        ({"betas": (0.9, 1.0)}, "betas"),
        ({"warmup_steps": -1}, "warmup_steps"),
        ({"grad_clip": 0.0}, "grad_clip"),
        ({"ema_decay": 1.0}, "ema_decay"),
        ({"weight_decay": -0.1}, "weight_decay"),
    ],
)
def test_invalid_settings_name_the_field(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        OptimSettings(**kwargs)
