"""AutoregressiveModule: the loss, training on a Markov source, validation, checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from ddiff.config import TrainConfig
from ddiff.eval import bits_per_token
from ddiff.nets import CausalTransformer
from ddiff.run import build_trainer
from ddiff.testing import MarkovSource
from ddiff.training import (
    AtomicCheckpointIO,
    AutoregressiveModule,
    OptimSettings,
    TokenBatch,
    TokenDataModule,
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

    # The logged figures are bits_per_token's, from the same code, of the validation set under
    # the averaged weights (in the validation batches; Lightning logs float32).
    logged = bits_per_token(module.averaged_net, val, batch_size=128)
    assert logged.exact
    assert after["val/bits_per_token"] == pytest.approx(logged.bits_per_token, rel=1e-6)
    assert after["val/stderr_bits_per_token"] == pytest.approx(logged.stderr, rel=1e-6)

    # On fresh samples of the source the expected NLL is entropy + KL >= entropy.
    fresh = source.sample(4000, torch.Generator().manual_seed(7))
    result = bits_per_token(module.averaged_net, fresh)
    print(
        f"\nAR exact NLL {result}; entropy {entropy:.3f} bits/token; uniform 2; before "
        f"training {before['val/bits_per_token']:.3f}"
    )
    assert result.bits_per_token >= entropy - 3 * result.stderr
    assert result.bits_per_token < 1.7


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
