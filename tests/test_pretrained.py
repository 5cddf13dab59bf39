"""`ddiff.pretrained`: safetensors plus config.json, clear mismatch errors, scoring from a path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ddiff.config import RunConfig
from ddiff.eval import bits_per_token
from ddiff.pretrained import bits_per_token_from_path, load_pretrained, save_pretrained
from ddiff.run import build_module
from ddiff.samplers import EulerSampler


def config(num_tokens: int = 4, dim: int = 32) -> RunConfig:
    return RunConfig.model_validate(
        {
            "graph": {"kind": "absorbing", "num_tokens": num_tokens},
            "schedule": {"kind": "loglinear", "survival": 0.0},
            "net": {"kind": "transformer", "preset": "tiny", "dim": dim, "cond_dim": 16},
            "optim": {"kind": "adamw", "ema_decay": 0.5},
            "train": {"max_steps": 1},
        }
    )


def trained(cfg: RunConfig):
    module = build_module(cfg)
    with torch.no_grad():
        for p in module.net.parameters():
            p.add_(0.1 * torch.randn_like(p))
    module.ema.update(module.net)  # the EMA now differs from the net (decay 0.5 at n = 0: 0.1)
    with torch.no_grad():
        for p in module.net.parameters():
            p.add_(1.0)
    return module


def test_round_trip_saves_the_ema_weights(tmp_path: Path) -> None:
    cfg = config()
    module = trained(cfg)
    save_pretrained(module, tmp_path, cfg)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]
    loaded = load_pretrained(tmp_path)
    assert loaded.config == cfg and loaded.graph.num_states == 5
    assert not loaded.net.training
    x_t, sigma = torch.tensor([[4, 1, 4, 0]]), torch.tensor([0.7])
    assert torch.allclose(loaded.net(x_t, sigma), module.ema.model(x_t, sigma))
    assert not torch.allclose(loaded.net(x_t, sigma), module.net(x_t, sigma))
    assert isinstance(loaded.sampler(), EulerSampler)
    weights = load_file(str(tmp_path / "model.safetensors"))
    assert set(weights) == set(module.net.state_dict())


def test_a_plain_network_can_be_saved(tmp_path: Path) -> None:
    cfg = config()
    net = build_module(cfg).net
    save_pretrained(net, tmp_path, cfg)
    assert torch.equal(load_pretrained(tmp_path).net.embedding.weight, net.embedding.weight)


def test_weights_for_another_vocabulary_are_refused_with_both_sizes(tmp_path: Path) -> None:
    save_pretrained(trained(config(4)), tmp_path, config(4))
    (tmp_path / "config.json").write_text(config(6).to_json())
    with pytest.raises(ValueError) as info:
        load_pretrained(tmp_path)
    message = str(info.value)
    assert "AbsorbingGraph with 4 data tokens (5 states)" in message
    assert "AbsorbingGraph with 6 data tokens (7 states)" in message


def test_a_different_architecture_names_the_tensor(tmp_path: Path) -> None:
    save_pretrained(trained(config(dim=32)), tmp_path, config(dim=32))
    (tmp_path / "config.json").write_text(config(dim=64).to_json())
    # The first tensor in the file that differs (keys in order: embedding.weight, trunk.*).
    with pytest.raises(
        ValueError, match=r"tensor 'embedding.weight' has shape \[5, 32\] but .* expects \[5, 64\]"
    ):
        load_pretrained(tmp_path)


def test_saving_with_a_mismatched_config_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="6 data tokens"):
        save_pretrained(trained(config(4)), tmp_path, config(6))


def test_missing_or_foreign_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"model\.safetensors"):
        load_pretrained(tmp_path)
    cfg = config()
    save_pretrained(trained(cfg), tmp_path, cfg)
    from safetensors.torch import save_file

    save_file(load_file(str(tmp_path / "model.safetensors")), str(tmp_path / "model.safetensors"))
    with pytest.raises(ValueError, match="not written by ddiff"):
        load_pretrained(tmp_path)


def test_config_json_is_plain_json(tmp_path: Path) -> None:
    cfg = config()
    save_pretrained(trained(cfg), tmp_path, cfg)
    data = json.loads((tmp_path / "config.json").read_text())
    assert data["graph"] == {"kind": "absorbing", "num_tokens": 4}


def test_bits_per_token_from_path_is_the_estimate_of_the_loaded_model(tmp_path: Path) -> None:
    cfg = config()
    save_pretrained(trained(cfg), tmp_path, cfg)
    x, lengths = torch.randint(4, (6, 5)), torch.tensor([5, 4, 3, 5, 2, 1])
    from_path = bits_per_token_from_path(tmp_path, x, lengths=lengths, num_t=4, seed=1)
    loaded = bits_per_token(load_pretrained(tmp_path), x, lengths=lengths, num_t=4, seed=1)
    assert from_path.as_dict() == loaded.as_dict()
    with pytest.raises(TypeError, match="bits_per_token_from_path"):
        bits_per_token(str(tmp_path), x)  # eval takes objects only; the message says what to do
