"""TransformerScoreNet: initialisation, positions, conditioning, presets and arguments."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from torch import nn

import ddiff.nets.transformer as transformer_module
from ddiff import AbsorbingGraph
from ddiff.nets import (
    PRESETS,
    CausalTransformer,
    LogScoreParameterization,
    ScaledAbsorbingParameterization,
    TransformerScoreNet,
)
from tests.nets.test_contract import perturb

S = 7


def _net(**kwargs: object) -> TransformerScoreNet:
    torch.manual_seed(0)
    net = TransformerScoreNet.from_preset("tiny", S, **kwargs)
    perturb(net)
    return net.eval()


def _tokens(batch: int = 2, length: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, S, (batch, length), generator=torch.Generator().manual_seed(seed))


def test_untrained_net_outputs_raw_zeros() -> None:
    torch.manual_seed(0)
    net = TransformerScoreNet.from_preset("tiny", S)
    x_t, sigma = _tokens(), torch.tensor([0.3, 4.0])
    assert torch.equal(net.raw_output(x_t, sigma), torch.zeros(2, 8, S))
    assert torch.equal(net(x_t, sigma), torch.zeros(2, 8, S))  # LogScore: all-zero log-scores

    graph = AbsorbingGraph(S - 1)
    scaled = TransformerScoreNet.from_preset(
        "tiny", S, parameterization=ScaledAbsorbingParameterization(graph)
    )
    out = scaled(x_t, sigma)
    shift = torch.log(torch.expm1(sigma.double())) + math.log(S - 1)
    expected = (-shift)[:, None, None].expand(2, 8, S).scatter(-1, x_t.unsqueeze(-1), 0.0)
    torch.testing.assert_close(out, expected.float())


def test_default_parameterization_is_log_score() -> None:
    assert isinstance(
        TransformerScoreNet(S, dim=8, depth=1, heads=2).parameterization, LogScoreParameterization
    )


def test_positions_matter_through_rotary(monkeypatch: pytest.MonkeyPatch) -> None:
    net = _net()
    x_t, sigma = _tokens(1, 8), torch.tensor([1.0])
    perm = torch.tensor([3, 0, 7, 1, 6, 2, 5, 4])
    permuted_then_net = net(x_t[:, perm], sigma)
    net_then_permuted = net(x_t, sigma)[:, perm]
    assert (permuted_then_net - net_then_permuted).abs().max() > 1e-3

    # Control: with identity rotations the same net is permutation-equivariant, so the check
    # above measures the rotary positions and nothing else.
    def no_rotation(length: int, head_dim: int, **kwargs: object) -> tuple[torch.Tensor, ...]:
        return torch.ones(length, head_dim), torch.zeros(length, head_dim)

    monkeypatch.setattr(transformer_module, "rotary_cos_sin", no_rotation)
    torch.testing.assert_close(net(x_t[:, perm], sigma), net(x_t, sigma)[:, perm])


def test_learned_absolute_positions_are_optional_and_added_last(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`max_length` adds a position table after the trunk: the other weights are drawn as
    without it, and with identity rotations the net still tells positions apart."""

    def fresh(**kwargs: object) -> dict[str, torch.Tensor]:
        torch.manual_seed(0)
        return TransformerScoreNet.from_preset("tiny", S, **kwargs).state_dict()

    plain, with_pos = fresh(), fresh(max_length=8)
    assert set(with_pos) - set(plain) == {"position.weight"}
    for key, value in plain.items():
        assert torch.equal(value, with_pos[key]), key

    def no_rotation(length: int, head_dim: int, **kwargs: object) -> tuple[torch.Tensor, ...]:
        return torch.ones(length, head_dim), torch.zeros(length, head_dim)

    monkeypatch.setattr(transformer_module, "rotary_cos_sin", no_rotation)
    out = _net(max_length=8)(torch.zeros(1, 8, dtype=torch.long), torch.tensor([1.0]))[0]
    assert not torch.allclose(out[2], out[3])
    assert "max_length=8" in repr(_net(max_length=8))
    with pytest.raises(ValueError, match="longer than max_length = 8"):
        _net(max_length=8)(torch.zeros(1, 9, dtype=torch.long), torch.tensor([1.0]))


def test_bidirectional() -> None:
    net = _net()
    x_t, sigma = _tokens(1, 6), torch.tensor([0.5])
    changed_last = x_t.clone()
    changed_last[0, -1] = (x_t[0, -1] + 1) % S
    changed_first = x_t.clone()
    changed_first[0, 0] = (x_t[0, 0] + 1) % S
    out = net(x_t, sigma)
    assert (net(changed_last, sigma)[0, 0] - out[0, 0]).abs().max() > 1e-4  # not causal
    assert (net(changed_first, sigma)[0, -1] - out[0, -1]).abs().max() > 1e-4


def test_sigma_conditioning_distinguishes_noise_levels() -> None:
    net = _net()
    x_t = _tokens(1, 5)
    levels = [1e-5, 1e-4, 1e-2, 1.0, 5.0, 20.0]
    raws = [net.raw_output(x_t, torch.tensor([s])) for s in levels]
    for i in range(len(levels)):
        for j in range(i):
            assert (raws[i] - raws[j]).abs().max() > 1e-4, (levels[i], levels[j])
    # Outside the clamp range [1e-8, 1e4] the network sees the boundary.
    torch.testing.assert_close(
        net.raw_output(x_t, torch.tensor([float("inf")])), net.raw_output(x_t, torch.tensor([1e4]))
    )
    torch.testing.assert_close(
        net.raw_output(x_t, torch.tensor([0.0])), net.raw_output(x_t, torch.tensor([1e-8]))
    )


def test_dropout_only_in_training() -> None:
    net = _net(dropout=0.5)
    x_t, sigma = _tokens(), torch.tensor([1.0, 2.0])
    assert torch.equal(net(x_t, sigma), net(x_t, sigma))
    net.train()
    assert not torch.equal(net(x_t, sigma), net(x_t, sigma))


def _count(preset: str, num_states: int = 50_258) -> tuple[int, int]:
    with torch.device("meta"):  # shapes only: no memory, no initialisation cost
        net = TransformerScoreNet.from_preset(preset, num_states)
    return net.num_parameters(), net.num_parameters(non_embedding=False)


def test_small_preset_is_sedd_small_sized() -> None:
    non_embedding, total = _count("small")
    assert 85e6 <= non_embedding <= 95e6
    assert total - non_embedding == 2 * 50_258 * 768 + 50_258  # embedding + untied head


def test_medium_preset_is_sedd_medium_sized() -> None:
    non_embedding, _ = _count("medium")
    assert 300e6 <= non_embedding <= 340e6


def test_num_parameters_counts_every_parameter() -> None:
    net = _net()
    assert net.num_parameters(non_embedding=False) == sum(p.numel() for p in net.parameters())
    assert net.num_parameters() == net.num_parameters(False) - (2 * S * 64 + S)


def test_presets() -> None:
    assert {"tiny", "small"} <= set(PRESETS)
    net = TransformerScoreNet.from_preset("tiny", S, depth=3, dropout=0.1)
    assert (net.dim, net.depth, net.heads, net.cond_dim, net.dropout) == (64, 3, 2, 64, 0.1)
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        TransformerScoreNet.from_preset("huge", S)
    with pytest.raises(TypeError):
        PRESETS["tiny"]["dim"] = 1  # type: ignore[index]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_states": 1}, "num_states must be an integer >= 2"),
        ({"dim": 10, "heads": 3}, "dim / heads must be an even integer"),
        ({"dim": 6, "heads": 2}, "dim / heads must be an even integer"),
        ({"depth": 0}, "depth must be a positive integer"),
        ({"cond_dim": 0}, "cond_dim must be a positive integer"),
        ({"mlp_ratio": 0.0}, "mlp_ratio must be > 0"),
        ({"dropout": 1.0}, "dropout must be in \\[0, 1\\)"),
        ({"max_length": 0}, "max_length must be a positive integer"),
        (
            {"parameterization": ScaledAbsorbingParameterization(AbsorbingGraph(3))},
            "scores 4 states but the network has num_states = 7",
        ),
    ],
)
def test_invalid_arguments(kwargs: dict[str, object], match: str) -> None:
    args: dict[str, object] = {"num_states": S, "dim": 8, "depth": 1, "heads": 2, **kwargs}
    with pytest.raises(ValueError, match=match):
        TransformerScoreNet(**args)  # type: ignore[arg-type]


def test_parameterization_must_be_a_parameterization() -> None:
    with pytest.raises(TypeError, match="must be a Parameterization"):
        TransformerScoreNet(S, dim=8, depth=1, heads=2, parameterization=lambda r, x, s: r)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "make",
    [
        lambda: TransformerScoreNet(5, dim=32, depth=2, heads=2, cond_dim=16),
        lambda: CausalTransformer(4, dim=32, depth=2, heads=2, cond_dim=16),
    ],
    ids=["diffusion", "autoregressive"],
)
def test_state_dicts_from_before_the_shared_trunk_load(make: Callable[[], nn.Module]) -> None:
    """Saved before the trunk was one module, the blocks, final modulation and head sat at the
    top level (`blocks.0.qkv.weight`, `head.weight`); such state dicts still load, strictly,
    also nested in another module (a Lightning checkpoint's `net.` prefix)."""
    torch.manual_seed(0)
    saved = make().state_dict()
    legacy = {k.removeprefix("trunk."): v for k, v in saved.items()}
    assert {"blocks.0.qkv.weight", "final_modulation.weight", "head.weight"} <= set(legacy)
    torch.manual_seed(1)
    net = make()
    net.load_state_dict(legacy, strict=True)
    assert all(torch.equal(net.state_dict()[k], v) for k, v in saved.items())
    holder = nn.Module()
    holder.net = make()
    holder.load_state_dict({f"net.{k}": v for k, v in legacy.items()}, strict=True)
    assert all(torch.equal(holder.net.state_dict()[k], v) for k, v in saved.items())
