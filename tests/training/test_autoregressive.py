"""AutoregressiveModule and heldout_nll: the loss, training on a Markov source, checkpoints."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from ddiff.config import TrainConfig
from ddiff.nets import CausalTransformer
from ddiff.testing import MarkovSource
from ddiff.training import (
    AtomicCheckpointIO,
    AutoregressiveModule,
    OptimSettings,
    TokenBatch,
    TokenDataModule,
    build_trainer,
    heldout_nll,
)
from tests.training.conftest import tiny_module, tiny_net

QUIET: dict[str, Any] = {
    "logger": False,
    "enable_progress_bar": False,
    "enable_model_summary": False,
    "num_sanity_val_steps": 0,
}


def tiny_ar(num_tokens: int = 4, **optim: float | None) -> AutoregressiveModule:
    torch.manual_seed(0)
    net = CausalTransformer(num_tokens, dim=32, depth=1, heads=2, cond_dim=32)
    settings = OptimSettings(**{"lr": 3e-3, "warmup_steps": 5, "ema_decay": 0.9, **optim})  # type: ignore[arg-type]
    return AutoregressiveModule(net, settings)


def markov_data(num_train: int, num_val: int) -> tuple[MarkovSource, torch.Tensor, torch.Tensor]:
    source = MarkovSource.random(4, length=8, seed=0)
    train = source.sample(num_train, torch.Generator().manual_seed(0))
    val = source.sample(num_val, torch.Generator().manual_seed(1))
    return source, train, val


def train_config(max_steps: int, val_every: int | None = None) -> TrainConfig:
    every = val_every or max_steps
    return TrainConfig(
        max_steps=max_steps,
        batch_size=32,
        val_every_n_steps=every,
        checkpoint_every_n_steps=max_steps,
        accelerator="cpu",
        devices=1,
    )


def test_loss_is_the_nll_per_real_token_in_float32() -> None:
    module = tiny_ar()
    with torch.no_grad():
        for p in module.net.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=torch.Generator().manual_seed(1)))
    tokens = torch.randint(4, (6, 5), generator=torch.Generator().manual_seed(2))
    lengths = torch.tensor([5, 3, 5, 1, 2, 5])
    loss = module.loss(TokenBatch(tokens, lengths))
    torch.testing.assert_close(loss, module.net.nll(tokens).sum() / 21)
    torch.testing.assert_close(module.loss(tokens), module.net.nll(tokens).sum() / 30)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = module.loss(tokens)
    assert loss.dtype == torch.float32
    loss.backward()
    assert all(p.grad is None or p.grad.dtype == torch.float32 for p in module.net.parameters())


def test_constructor_takes_a_causal_transformer() -> None:
    with pytest.raises(TypeError, match="CausalTransformer"):
        AutoregressiveModule(tiny_net(tiny_module().graph))  # type: ignore[arg-type]


@pytest.mark.usefixtures("one_thread")
def test_learns_a_markov_source_and_its_exact_nll_stays_above_the_entropy(tmp_path: Path) -> None:
    source, train, val = markov_data(2048, 256)
    module = tiny_ar()
    data = TokenDataModule(train, val, batch_size=32, val_batch_size=128)
    trainer = build_trainer(train_config(60), tmp_path, **QUIET)
    before = trainer.validate(module, datamodule=data, verbose=False)[0]
    trainer.fit(module, datamodule=data)
    after = {k: float(v) for k, v in trainer.callback_metrics.items()}
    entropy = source.entropy_per_token("bits")
    assert before["val/bits_per_token"] == pytest.approx(2.0, abs=1e-5)  # uniform at the start
    assert after["val/bits_per_token"] < before["val/bits_per_token"] - 0.3

    # The logged figure is the exact NLL of the validation set under the averaged weights.
    logged = heldout_nll(module.averaged_net, val)  # type: ignore[arg-type]
    assert after["val/bits_per_token"] == pytest.approx(logged.bits_per_token, abs=1e-5)
    assert after["val/stderr_bits_per_token"] == pytest.approx(
        logged.stderr_bits_per_token, abs=1e-5
    )

    # On fresh samples of the source the expected NLL is entropy + KL >= entropy.
    fresh = source.sample(4000, torch.Generator().manual_seed(7))
    result = heldout_nll(module.averaged_net, fresh)  # type: ignore[arg-type]
    print(
        f"\nAR exact NLL {result.bits_per_token:.3f} +- {result.stderr_bits_per_token:.3f} "
        f"bits/token; entropy {entropy:.3f}; uniform 2; before training "
        f"{before['val/bits_per_token']:.3f}"
    )
    assert result.bits_per_token >= entropy - 3 * result.stderr_bits_per_token
    assert result.bits_per_token < 1.7


def test_heldout_nll_statistics() -> None:
    net = tiny_ar().net
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=torch.Generator().manual_seed(1)))
    net.train()  # heldout_nll evaluates in eval mode and restores the mode
    tokens = torch.randint(4, (9, 6), generator=torch.Generator().manual_seed(3))
    lengths = torch.tensor([6, 2, 5, 6, 1, 3, 6, 4, 6])
    result = heldout_nll(net, tokens, lengths, batch_size=4)
    assert net.training
    with torch.no_grad():
        nats = net.eval().nll(tokens).double()
    torch.testing.assert_close(result.nats, nats)
    n, ell = nats.numpy() / math.log(2), lengths.double().numpy()
    ratio = n.sum() / ell.sum()
    assert result.bits_per_token == pytest.approx(ratio, rel=1e-12)
    # Delta method for a ratio of means: Var(n - ratio * l) / (B mean(l)^2).
    stderr = np.std(n - ratio * ell, ddof=1) / (math.sqrt(9) * ell.mean())
    assert result.stderr_bits_per_token == pytest.approx(stderr, rel=1e-9)
    torch.testing.assert_close(result.sequence_bits_per_token, torch.as_tensor(n / ell))
    # With equal lengths it is the usual standard error of the mean, per token.
    full = heldout_nll(net, tokens)
    per_token = nats.numpy() / math.log(2) / 6
    assert full.stderr_bits_per_token == pytest.approx(np.std(per_token, ddof=1) / 3, rel=1e-9)
    assert math.isnan(heldout_nll(net, tokens[:1]).stderr_bits_per_token)
    with pytest.raises(ValueError, match=r"lengths must be integers of shape \[9\]"):
        heldout_nll(net, tokens, lengths[:5])
    with pytest.raises(ValueError, match=r"lengths must be in \[1, 6\]"):
        heldout_nll(net, tokens, lengths + 1)
    bad = tokens.clone()
    bad[7, 1] = 4
    with pytest.raises(ValueError, match=r"token 4 at \[batch 7, position 1\]"):
        heldout_nll(net, bad, batch_size=4)


def test_checkpoints_of_the_other_kind_are_refused_both_ways() -> None:
    ar_checkpoint: dict[str, Any] = {}
    tiny_ar().on_save_checkpoint(ar_checkpoint)
    assert ar_checkpoint["ddiff"]["kind"] == "autoregressive"
    with pytest.raises(ValueError, match="autoregressive model written by AutoregressiveModule"):
        tiny_module().on_load_checkpoint(ar_checkpoint)

    diffusion_checkpoint: dict[str, Any] = {}
    tiny_module().on_save_checkpoint(diffusion_checkpoint)
    assert "kind" not in diffusion_checkpoint["ddiff"]  # the diffusion format is unchanged
    with pytest.raises(ValueError, match="diffusion model written by DiffusionModule"):
        tiny_ar().on_load_checkpoint(diffusion_checkpoint)

    with pytest.raises(ValueError, match="trained for 4 tokens, but the model here predicts 5"):
        tiny_ar(num_tokens=5).on_load_checkpoint(ar_checkpoint)
    with pytest.raises(ValueError, match="not written by ddiff's AutoregressiveModule"):
        tiny_ar().on_load_checkpoint({"state_dict": {}})
    restored = tiny_ar()
    restored.on_load_checkpoint(ar_checkpoint)  # the same kind and vocabulary loads


@pytest.mark.usefixtures("one_thread")
def test_resume_continues_exactly(tmp_path: Path) -> None:
    """8 steps, then a new module resumed to 16, equals 16 uninterrupted steps bit for bit."""
    _, train, val = markov_data(256, 16)

    def fit(run: str, max_steps: int, ckpt_path: Path | None = None) -> AutoregressiveModule:
        module = tiny_ar()
        data = TokenDataModule(train, val, batch_size=8, seed=3)
        trainer = build_trainer(train_config(max_steps), tmp_path / run, **QUIET)
        trainer.fit(module, datamodule=data, ckpt_path=ckpt_path)
        return module

    straight = fit("straight", 16)
    fit("split", 8)
    last = tmp_path / "split" / "checkpoints" / "last.ckpt"
    assert AtomicCheckpointIO().load_checkpoint(last)["global_step"] == 8
    resumed = fit("resumed", 16, ckpt_path=last)
    for key, value in straight.net.state_dict().items():
        assert torch.equal(value, resumed.net.state_dict()[key]), key
    assert straight.ema is not None and resumed.ema is not None
    assert resumed.ema.num_updates == straight.ema.num_updates == 16
    for key, value in straight.ema.model.state_dict().items():
        assert torch.equal(value, resumed.ema.model.state_dict()[key]), key
