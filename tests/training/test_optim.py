"""Optimiser settings: validation, warm-up, and which parameters are decayed."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from ddiff.training import OptimSettings


def test_linear_warmup_then_constant() -> None:
    factor = OptimSettings(warmup_steps=4).lr_factor()
    assert [factor(s) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert OptimSettings(warmup_steps=0).lr_factor()(0) == 1.0


def test_cosine_decay_from_the_end_of_warmup_to_the_floor() -> None:
    import math

    settings = OptimSettings(warmup_steps=10, lr_decay="cosine", decay_steps=110, min_lr_ratio=0.1)
    factor = settings.lr_factor()
    assert factor(8) == pytest.approx(0.9)  # still warming up
    assert factor(9) == 1.0  # the cosine starts where the warm-up ends
    assert factor(59) == pytest.approx(0.1 + 0.9 * 0.5)  # half way: the midpoint
    assert factor(109) == pytest.approx(0.1) and factor(500) == pytest.approx(0.1)
    values = [factor(s) for s in range(9, 110)]
    assert all(a >= b for a, b in itertools.pairwise(values))  # never rises
    expected = [0.1 + 0.45 * (1 + math.cos(math.pi * (s + 1 - 10) / 100)) for s in range(9, 110)]
    assert values == pytest.approx(expected)


def test_cosine_decay_ends_at_max_steps_unless_told() -> None:
    settings = OptimSettings(warmup_steps=2, lr_decay="cosine")
    assert settings.lr_factor(max_steps=12)(11) == 0.0
    assert OptimSettings(lr_decay="cosine", decay_steps=5).lr_factor(max_steps=100)(4) == 0.0
    with pytest.raises(ValueError, match="needs decay_steps, or a run with max_steps"):
        settings.lr_factor()
    short = settings.lr_factor(max_steps=2)  # no longer than the warm-up: no decay phase
    assert [short(s) for s in range(4)] == [0.5, 1.0, 1.0, 1.0]


def test_cosine_decay_in_a_run_config() -> None:
    from pydantic import ValidationError

    from ddiff.config import RunConfig

    base = {
        "graph": {"kind": "absorbing", "num_tokens": 4},
        "schedule": {"kind": "loglinear", "survival": 0.0},
        "train": {"max_steps": 50},
    }
    config = RunConfig.model_validate(
        {**base, "optim": {"kind": "adamw", "warmup_steps": 5, "lr_decay": "cosine"}}
    )
    assert config.optim.build().lr_factor(50)(49) == 0.0
    with pytest.raises(ValidationError, match=r"decay_steps \(5\) must be above warmup_steps"):
        RunConfig.model_validate(
            {**base, "optim": {"kind": "adamw", "warmup_steps": 5, "decay_steps": 5}}
        )


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
        ({"lr_decay": "linear"}, "lr_decay"),
        ({"decay_steps": 0}, "decay_steps"),
        ({"warmup_steps": 10, "decay_steps": 10}, "decay_steps"),
        ({"min_lr_ratio": 1.5}, "min_lr_ratio"),
    ],
)
def test_invalid_settings_name_the_field(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        OptimSettings(**kwargs)
