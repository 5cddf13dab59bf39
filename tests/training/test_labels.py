"""Label-conditioned training: labelled data, label dropout, conditional validation, checkpoints."""

from __future__ import annotations

import math

import lightning as L
import pytest
import torch
from torch import Tensor, nn

from ddiff import AbsorbingGraph, LogLinearSchedule
from ddiff.nets import (
    NULL_LABEL,
    CausalTransformer,
    ScaledAbsorbingParameterization,
    TransformerScoreNet,
)
from ddiff.testing import LabelledOracle
from ddiff.training import (
    AutoregressiveModule,
    DiffusionModule,
    OptimSettings,
    TokenBatch,
    TokenDataModule,
    TokenDataset,
)

GRAPH = AbsorbingGraph(4)


def labelled_net(num_labels: int = 2) -> TransformerScoreNet:
    torch.manual_seed(0)
    return TransformerScoreNet(
        GRAPH.num_states,
        dim=32,
        depth=1,
        heads=2,
        cond_dim=32,
        parameterization=ScaledAbsorbingParameterization(GRAPH),
        num_labels=num_labels,
    )


def module(num_labels: int = 2, **kwargs: float) -> DiffusionModule:
    settings = OptimSettings(lr=1e-3, warmup_steps=2, ema_decay=0.9)
    return DiffusionModule(
        GRAPH, LogLinearSchedule(survival=0.0), labelled_net(num_labels), settings, **kwargs
    )


def test_data_module_serves_labels() -> None:
    tokens = torch.randint(4, (64, 8), generator=torch.Generator().manual_seed(0))
    labels = torch.arange(64) % 2
    dm = TokenDataModule(
        tokens,
        tokens[:16],
        batch_size=16,
        train_labels=labels,
        val_labels=labels[:16],
        num_labels=2,
    )
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch.labels is not None and batch.labels.shape == (16,)
    # Each row keeps its own label: the label is the parity of the row's index.
    rows = [int((tokens == row).all(dim=1).nonzero()[0, 0]) for row in batch.tokens]
    assert batch.labels.tolist() == [r % 2 for r in rows]
    assert next(iter(dm.val_dataloader())).labels.tolist() == labels[:16].tolist()
    plain = TokenDataModule(tokens, batch_size=16)
    plain.setup("fit")
    assert next(iter(plain.train_dataloader())).labels is None


def test_label_errors_name_the_record() -> None:
    with pytest.raises(
        ValueError, match=r"train: record 1 has label 2, outside the label set \[0, 2\)"
    ):
        TokenDataset([[0, 1], [1, 1]], labels=[0, 2], num_labels=2, name="train")
    with pytest.raises(ValueError, match=r"one class id per record \(2\)"):
        TokenDataset([[0, 1], [1, 1]], labels=[0])
    with pytest.raises(ValueError, match="only train_labels was given"):
        TokenDataModule(
            torch.zeros(4, 2, dtype=torch.long),
            torch.zeros(4, 2, dtype=torch.long),
            batch_size=2,
            train_labels=[0, 1, 0, 1],
        )


def test_label_dropout_is_keyed_and_has_the_right_rate() -> None:
    m = module(label_dropout=0.25)
    labels = torch.ones(20_000, dtype=torch.long)
    dropped = m._drop_labels(labels, 0, 5, 3)
    assert abs(float((dropped == NULL_LABEL).double().mean()) - 0.25) < 0.015
    assert torch.equal(dropped, m._drop_labels(labels, 0, 5, 3))  # same keys, same draw
    assert not torch.equal(dropped, m._drop_labels(labels, 0, 5, 4))
    assert torch.equal(module(label_dropout=0.0)._drop_labels(labels, 0, 5, 3), labels)
    with pytest.raises(ValueError, match=r"label_dropout must be in \[0, 1\]"):
        module(label_dropout=1.5)


def test_loss_uses_the_labels_and_unlabelled_networks_refuse_them() -> None:
    m = module()
    with torch.no_grad():
        for p in m.net.parameters():
            p.add_(0.2 * torch.randn_like(p))
    tokens = torch.randint(4, (8, 6), generator=torch.Generator().manual_seed(1))
    lengths = torch.full((8,), 6)
    t = torch.rand(8, dtype=torch.float64, generator=torch.Generator().manual_seed(2))

    @torch.no_grad()
    def loss(labels: Tensor | None) -> float:
        return float(
            m.loss(TokenBatch(tokens, lengths, labels), t, torch.Generator().manual_seed(3))
        )

    assert loss(torch.zeros(8, dtype=torch.long)) != loss(torch.ones(8, dtype=torch.long))
    assert loss(None) == loss(torch.full((8,), NULL_LABEL))
    with pytest.raises(ValueError, match="the data carry labels but the network was built without"):
        module(0).loss(TokenBatch(tokens, lengths, torch.zeros(8, dtype=torch.long)), t)


def test_checkpoints_record_the_label_count() -> None:
    saved: dict = {}
    module(2).on_save_checkpoint(saved)
    assert saved["ddiff"]["num_labels"] == 2
    with pytest.raises(
        ValueError, match="trained with 2 labels, but the network here has no labels"
    ):
        module(0).on_load_checkpoint(saved)
    with pytest.raises(
        ValueError, match="trained with 2 labels, but the network here has 3 labels"
    ):
        module(3).on_load_checkpoint(saved)
    old: dict = {}
    module(0).on_save_checkpoint(old)
    assert "num_labels" not in old["ddiff"]  # unconditional checkpoints keep their format
    module(0).on_load_checkpoint(old)
    with pytest.raises(ValueError, match="trained without labels"):
        module(2).on_load_checkpoint(old)


class LabelledOracleNet(nn.Module):
    """The exact conditional scores of a LabelledOracle as a labelled network."""

    def __init__(self, oracle: LabelledOracle) -> None:
        super().__init__()
        self.oracle = oracle
        self.num_states = oracle.graph.num_states
        self.num_labels = oracle.num_labels
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x_t: Tensor, sigma: Tensor, label: int | Tensor | None = None) -> Tensor:
        assert isinstance(label, int), "validation groups the rows by label"
        return self.oracle.conditional(label)(x_t, sigma).float() + 0 * self.dummy


def test_validation_reports_the_conditional_bound() -> None:
    """With exact conditional scores the validation bound is -log p(x | c) per token."""
    oracle = LabelledOracle.random(AbsorbingGraph(3), length=3, num_labels=2, seed=3)
    g = torch.Generator().manual_seed(0)
    labels = (torch.rand(600, generator=g) < 0.5).long()
    val = torch.stack([oracle.conditional(int(c)).sample_data(1, g)[0] for c in labels.tolist()])
    m = DiffusionModule(
        AbsorbingGraph(3),
        LogLinearSchedule(survival=0.0),
        LabelledOracleNet(oracle),
        OptimSettings(ema_decay=None),
        val_num_t=8,
    )
    dm = TokenDataModule(
        val,
        val,
        batch_size=50,
        val_batch_size=100,
        train_labels=labels,
        val_labels=labels,
        num_labels=2,
    )
    trainer = L.Trainer(
        accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False
    )
    metrics = trainer.validate(m, datamodule=dm, verbose=False)[0]
    bits, stderr = metrics["val/bits_per_token"], metrics["val/mc_stderr_bits_per_token"]
    nll = torch.stack(
        [oracle.conditional(int(c)).nll(x[None])[0] for x, c in zip(val, labels, strict=True)]
    )
    empirical = float(nll.mean()) / (3 * math.log(2))
    assert abs(bits - empirical) < 4 * stderr + 0.01, (bits, empirical, stderr)


def test_a_labelled_model_trains(one_thread: None) -> None:
    tokens = torch.randint(4, (64, 8), generator=torch.Generator().manual_seed(0))
    labels = torch.arange(64) % 2
    dm = TokenDataModule(
        tokens,
        tokens[:32],
        batch_size=16,
        train_labels=labels,
        val_labels=labels[:32],
        num_labels=2,
    )
    m = module(label_dropout=0.2)
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=3,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        val_check_interval=3,
        limit_val_batches=1,
    )
    trainer.fit(m, datamodule=dm)
    assert trainer.global_step == 3
    assert math.isfinite(float(trainer.callback_metrics["val/bits_per_token"]))


def test_autoregressive_module_with_labels() -> None:
    torch.manual_seed(0)
    net = CausalTransformer(4, dim=32, depth=1, heads=2, cond_dim=32, num_labels=2)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.2 * torch.randn_like(p))
    m = AutoregressiveModule(net)
    tokens = torch.randint(4, (8, 6), generator=torch.Generator().manual_seed(1))
    lengths = torch.full((8,), 6)
    a = float(m.loss(TokenBatch(tokens, lengths, torch.zeros(8, dtype=torch.long))))
    b = float(m.loss(TokenBatch(tokens, lengths, torch.ones(8, dtype=torch.long))))
    assert a != b
    saved: dict = {}
    m.on_save_checkpoint(saved)
    with pytest.raises(ValueError, match="trained with 2 labels"):
        AutoregressiveModule(
            CausalTransformer(4, dim=32, depth=1, heads=2, cond_dim=32)
        ).on_load_checkpoint(saved)


def test_run_config_label_dropout_reaches_the_module() -> None:
    from ddiff.config import RunConfig
    from ddiff.run import build_module

    config = RunConfig.model_validate(
        {
            "graph": {"kind": "absorbing", "num_tokens": 4},
            "schedule": {"kind": "loglinear", "survival": 0.0},
            "net": {"kind": "transformer", "preset": "tiny", "labels": ["a", "b"]},
            "train": {"max_steps": 1, "label_dropout": 0.25},
        }
    )
    assert build_module(config).label_dropout == 0.25
