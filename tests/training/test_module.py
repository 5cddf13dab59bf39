"""DiffusionModule: the loss, its random draws, validation with the bound, checkpoint hooks."""

from __future__ import annotations

import math
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from torch import Tensor, nn

from ddiff import AbsorbingGraph, LogLinearSchedule, UniformGraph
from ddiff.losses import bound_integrand
from ddiff.testing import ExactOracle, MarkovSource
from ddiff.training import DiffusionModule, OptimSettings, TokenBatch, TokenDataModule
from tests.training.conftest import tiny_module, tiny_net


def test_loss_is_the_bound_integrand_per_real_token() -> None:
    module = tiny_module()
    tokens = torch.randint(4, (6, 5))
    lengths = torch.tensor([5, 3, 5, 1, 2, 5])
    t = torch.rand(6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    loss = module.loss(TokenBatch(tokens, lengths), t, torch.Generator().manual_seed(2))
    integrand = bound_integrand(
        module.net, module.graph, module.schedule, tokens, t, torch.Generator().manual_seed(2)
    )
    assert torch.allclose(loss, integrand.sum() / 21)
    plain = module.loss(tokens, t, torch.Generator().manual_seed(2))  # a LongTensor batch
    assert torch.allclose(plain, integrand.sum() / 30)


@pytest.mark.parametrize(
    "graph", [AbsorbingGraph(4), UniformGraph(4)], ids=["absorbing", "uniform"]
)
def test_loss_is_float32_under_bf16_autocast(graph) -> None:
    module = tiny_module(graph)
    tokens = torch.randint(4, (4, 8))
    t = torch.rand(4, dtype=torch.float64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert module.net(tokens, t).dtype in (torch.bfloat16, torch.float32)
        loss = module.loss(tokens, t, torch.Generator().manual_seed(0))
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is None or p.grad.dtype == torch.float32 for p in module.net.parameters())


def attach(module: DiffusionModule, step: int, rank: int, world: int) -> None:
    fake = SimpleNamespace(
        world_size=world, accumulate_grad_batches=1, global_rank=rank, global_step=step
    )
    module._trainer = fake  # type: ignore[assignment]
    module.__dict__["_fake"] = fake


def test_times_are_stratified_over_the_global_batch_and_split_like_the_data(monkeypatch) -> None:
    module = tiny_module()
    monkeypatch.setattr(
        DiffusionModule, "global_step", property(lambda self: self._fake.global_step)
    )
    monkeypatch.setattr(
        DiffusionModule, "global_rank", property(lambda self: self._fake.global_rank)
    )
    attach(module, step=7, rank=0, world=1)
    t_all, noise = module._training_draws(8, batch_idx=0)
    assert sorted((t_all * 8).floor().long().tolist()) == list(range(8))
    for rank in (0, 1):
        attach(module, step=7, rank=rank, world=2)
        t_rank, noise_rank = module._training_draws(4, batch_idx=0)
        assert torch.equal(t_rank, t_all[rank::2])
    assert noise_rank.initial_seed() != noise.initial_seed()  # ranks noise independently
    attach(module, step=8, rank=0, world=1)
    assert not torch.equal(module._training_draws(8, 0)[0], t_all)  # new times each step


def test_constructor_checks_its_objects() -> None:
    graph = AbsorbingGraph(4)
    with pytest.raises(ValueError, match="scores 4 states but the graph has 5"):
        DiffusionModule(graph, LogLinearSchedule(0.0), tiny_net(UniformGraph(4)))
    with pytest.raises(ValueError, match="time_sampling"):
        DiffusionModule(graph, LogLinearSchedule(0.0), tiny_net(graph), time_sampling="sobol")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="seed"):
        DiffusionModule(graph, LogLinearSchedule(0.0), tiny_net(graph), seed=-1)
    with pytest.raises(TypeError, match="Graph"):
        DiffusionModule("absorbing", LogLinearSchedule(0.0), tiny_net(graph))  # type: ignore[arg-type]


def test_checkpoint_from_another_graph_is_refused_with_both_sizes() -> None:
    saved: dict = {}
    tiny_module(AbsorbingGraph(4)).on_save_checkpoint(saved)
    other = tiny_module(UniformGraph(4))
    with pytest.raises(ValueError) as info:
        other.on_load_checkpoint(saved)
    message = str(info.value)
    assert "AbsorbingGraph with 4 data tokens (5 states)" in message
    assert "UniformGraph with 4 data tokens (4 states)" in message
    with pytest.raises(ValueError, match="AbsorbingGraph with 3 data tokens"):
        tiny_module(AbsorbingGraph(3)).on_load_checkpoint(saved)
    with pytest.raises(ValueError, match="not written by ddiff"):
        other.on_load_checkpoint({"state_dict": {}})


def test_checkpoint_carries_the_ema() -> None:
    module = tiny_module()
    with torch.no_grad():
        for p in module.net.parameters():
            p.add_(1.0)
    assert module.ema is not None
    module.ema.update(module.net)
    saved: dict = {}
    module.on_save_checkpoint(saved)
    restored = tiny_module()
    restored.on_load_checkpoint(saved)
    assert restored.ema is not None and restored.ema.num_updates == 1
    for a, b in zip(module.ema.model.parameters(), restored.ema.model.parameters(), strict=True):
        assert torch.equal(a, b)
    assert tiny_module(ema_decay=None).averaged_net is not None


class OracleNet(nn.Module):
    """Exact scores as a network (the dummy parameter gives the optimiser something to hold)."""

    def __init__(self, oracle: ExactOracle) -> None:
        super().__init__()
        self.oracle = oracle
        self.num_states = oracle.graph.num_states
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x_t: Tensor, sigma: Tensor) -> Tensor:
        return self.oracle(x_t, sigma).float() + 0 * self.dummy


def test_validation_with_exact_scores_reports_the_entropy_per_token() -> None:
    source = MarkovSource.random(3, 4, seed=1, concentration=0.5)
    graph = AbsorbingGraph(3)
    sequences = ExactOracle(graph, torch.ones([3] * 4) / 81).all_sequences(data_only=True)
    probs = torch.exp(-source.nll(sequences)).reshape([3] * 4)
    module = DiffusionModule(
        graph,
        LogLinearSchedule(survival=0.0),
        OracleNet(ExactOracle(graph, probs)),
        OptimSettings(ema_decay=None),
        val_num_t=8,
    )
    val = source.sample(600, torch.Generator().manual_seed(0))
    dm = TokenDataModule(val, val, batch_size=50, val_batch_size=100)
    trainer = L.Trainer(
        accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False
    )
    metrics = trainer.validate(module, datamodule=dm, verbose=False)[0]
    bits, stderr = metrics["val/bits_per_token"], metrics["val/mc_stderr_bits_per_token"]
    empirical = float(source.nll(val).mean()) / (4 * math.log(2))
    assert metrics["val/prior_bits_per_token"] == 0.0
    assert 0 < stderr < 0.05
    # With exact scores the bound is tight up to Monte Carlo error in t and x_t.
    print(f"bound {bits:.4f} +- {stderr:.4f} bits, empirical NLL {empirical:.4f}")
    assert abs(bits - empirical) < 4 * stderr + 0.01, (bits, empirical, stderr)
