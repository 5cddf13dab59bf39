"""Label conditioning of the networks: a null label, per-sequence labels, unchanged unconditional
networks (parameters bit-identical for a seed), and errors that say what to do."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ddiff import AbsorbingGraph
from ddiff.nets import (
    NULL_LABEL,
    CausalTransformer,
    ConvScoreNet,
    ScaledAbsorbingParameterization,
    TransformerScoreNet,
)

GRAPH = AbsorbingGraph(4)


def score_net(num_labels: int, seed: int = 0) -> TransformerScoreNet:
    torch.manual_seed(seed)
    param = ScaledAbsorbingParameterization(GRAPH)
    return TransformerScoreNet.from_preset(
        "tiny", GRAPH.num_states, parameterization=param, num_labels=num_labels
    )


def conv_net(num_labels: int, seed: int = 0) -> ConvScoreNet:
    torch.manual_seed(seed)
    param = ScaledAbsorbingParameterization(GRAPH)
    return ConvScoreNet(
        GRAPH.num_states, max_length=8, dim=16, depth=2, cond_dim=16, parameterization=param,
        num_labels=num_labels,
    )  # fmt: skip


def ar_net(num_labels: int, seed: int = 0) -> CausalTransformer:
    torch.manual_seed(seed)
    return CausalTransformer.from_preset("tiny", num_tokens=4, num_labels=num_labels)


def perturb(net: nn.Module) -> nn.Module:
    """Random weights everywhere (the zero-initialised modulations would hide the label)."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=g))
    return net.eval()


@pytest.mark.parametrize("build", [score_net, conv_net, ar_net])
def test_unconditional_parameters_do_not_depend_on_the_label_option(build) -> None:  # type: ignore[no-untyped-def]
    """The label embedding is built last: every other tensor is drawn as without labels, and a
    network without labels has no label tensor at all (old checkpoints load unchanged)."""
    plain, labelled = build(0).state_dict(), build(3).state_dict()
    assert not any("label" in key for key in plain)
    assert set(labelled) - set(plain) == {"label_embedding.weight"}
    assert labelled["label_embedding.weight"].shape[0] == 4  # 3 labels + the null label
    for key, value in plain.items():
        assert torch.equal(value, labelled[key]), key


@pytest.mark.parametrize("build", [score_net, conv_net])
def test_score_net_label_changes_the_scores_and_null_is_the_default(build) -> None:  # type: ignore[no-untyped-def]
    net = perturb(build(3))
    x_t = torch.tensor([[4, 1, 4, 0], [4, 4, 2, 3]])
    sigma = torch.tensor([0.5, 1.5])
    with torch.no_grad():
        uncond = net(x_t, sigma)
        assert torch.equal(uncond, net(x_t, sigma, label=NULL_LABEL))
        assert torch.equal(uncond, net.bind_label(None)(x_t, sigma))
        a, b = net(x_t, sigma, label=0), net(x_t, sigma, label=2)
        assert not torch.allclose(a, b) and not torch.allclose(a, uncond)
        mixed = net(x_t, sigma, label=torch.tensor([0, 2]))
        torch.testing.assert_close(mixed[0], a[0])
        torch.testing.assert_close(mixed[1], b[1])
        torch.testing.assert_close(net.bind_label(2)(x_t, sigma), b)
        for out in (a, b, mixed):  # still exactly 0 at the current token
            assert float(out.gather(-1, x_t[..., None]).abs().max()) == 0.0


def test_ar_label_changes_the_likelihood_and_null_is_the_default() -> None:
    net = perturb(ar_net(2))
    x = torch.tensor([[0, 3, 1, 2], [1, 1, 0, 3]])
    with torch.no_grad():
        assert torch.equal(net.nll(x), net.nll(x, label=NULL_LABEL))
        assert not torch.allclose(net.nll(x, label=0), net.nll(x, label=1))
        sample = net.sample(3, 5, torch.Generator().manual_seed(0), label=1)
    assert sample.shape == (3, 5)
    assert ar_net(2).num_parameters() > ar_net(0).num_parameters()


@pytest.mark.parametrize("build", [score_net, conv_net, ar_net])
def test_label_errors_say_what_to_do(build) -> None:  # type: ignore[no-untyped-def]
    def call(net: nn.Module, label: object) -> None:
        if isinstance(net, CausalTransformer):
            net(torch.tensor([[0, 1]]), label=label)
        else:
            net(torch.tensor([[0, 1]]), torch.tensor([0.5]), label=label)

    with pytest.raises(ValueError, match=r"built without labels.*net\.labels"):
        call(build(0), 0)
    with pytest.raises(ValueError, match=r"label 3 of sequence 0 is outside \[0, 3\)"):
        call(build(3), 3)
    with pytest.raises(ValueError, match=r"label must have shape \[batch\] = \[1\]"):
        call(build(3), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="label must be a class id"):
        call(build(3), 0.5)


@pytest.mark.parametrize("build", [score_net, conv_net])
def test_bind_label_checks_the_label(build) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="built without labels"):
        build(0).bind_label(1)
    with pytest.raises(ValueError, match="outside"):
        build(2).bind_label(5)
    assert "label 1" in repr(build(2).bind_label(1))


@pytest.mark.parametrize("build", [score_net, conv_net])
def test_labelled_network_runs_under_bf16_autocast(build) -> None:  # type: ignore[no-untyped-def]
    net = perturb(build(2))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = net(torch.tensor([[4, 1, 4]]), torch.tensor([0.5]), label=1)
    assert out.shape == (1, 3, 5)
