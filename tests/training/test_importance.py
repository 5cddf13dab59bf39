"""`time_sampling: importance` in DiffusionModule: the weighted loss, the estimates it keeps,
checkpoints, resuming with another time sampling, and the configuration (exact resumption:
tests/training/test_training.py)."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch

from ddiff import AbsorbingGraph, LogLinearSchedule
from ddiff.config import RunConfig
from ddiff.losses import ImportanceTimes, bound_integrand
from ddiff.run import build_module, train
from ddiff.training import (
    DiffusionModule,
    OptimSettings,
    TokenBatch,
    TokenDataModule,
)
from ddiff.training._seeding import TRAIN_NOISE, keyed_generator
from tests.training.conftest import tiny_net
from tests.training.tiny_run import QUIET, tiny_config

pytestmark = pytest.mark.usefixtures("one_thread")


def module_with(times: ImportanceTimes | str) -> DiffusionModule:
    graph = AbsorbingGraph(4)
    torch.manual_seed(0)
    optim = OptimSettings(lr=1e-3, warmup_steps=2, ema_decay=0.9)
    schedule = LogLinearSchedule(survival=0.0)
    return DiffusionModule(graph, schedule, tiny_net(graph), optim, time_sampling=times)


def fit(module: DiffusionModule, steps: int, root: Path) -> None:
    tokens = torch.randint(4, (256, 8), generator=torch.Generator().manual_seed(0))
    trainer = L.Trainer(
        max_steps=steps,
        accelerator="cpu",
        devices=1,
        enable_checkpointing=False,
        default_root_dir=root,
        **QUIET,
    )
    trainer.fit(module, datamodule=TokenDataModule(tokens, batch_size=16, seed=0))


def test_the_step_loss_is_the_weighted_integrand_at_the_proposals_times() -> None:
    times = ImportanceTimes(bins=4, decay=0.0, warmup_steps=0)
    centres = torch.tensor([0.1, 0.4, 0.6, 0.9], dtype=torch.float64)
    times.update(centres.repeat(2), torch.tensor([0.0, 5, 5, 5, 40, 5, 5, 5]))  # bin 0 varies
    module = module_with(times)
    before = times.proposal().clone()
    tokens = torch.randint(4, (8, 6), generator=torch.Generator().manual_seed(1))
    batch = TokenBatch(tokens, torch.full((8,), 6))
    u, _ = module._training_draws(8, 0)
    loss = module._step_loss(batch, 0)
    # Recompute by hand with the proposal the step used.
    q = before
    upper = torch.cumsum(q, 0)
    b = torch.searchsorted(upper, u, right=True).clamp(max=3)
    lower = upper[b] - q[b]
    t = (b + (u - lower) / q[b]) / 4
    weight = 1.0 / (4 * q[b])
    noise = keyed_generator(0, TRAIN_NOISE, 0, 0, 0)
    f = bound_integrand(module.net, module.graph, module.schedule, tokens, t, noise)
    torch.testing.assert_close(loss, (weight.float() * f).sum() / 48)
    assert bool((b == 0).sum() > 2)  # bin 0 (q = 0.85) gets most of the 8 times
    assert int(times.num_updates) == 2  # the step folded its integrand in


def test_training_fits_the_proposal_and_checkpoints_keep_it(tmp_path: Path) -> None:
    module = module_with(ImportanceTimes(bins=8, warmup_steps=3))
    fit(module, 12, tmp_path)
    assert module.importance is not None
    proposal = module.importance.proposal()
    assert int(module.importance.num_updates) == 12
    assert proposal[0] > proposal[-1]  # the integrand varies most near t = 0
    assert all(torch.isfinite(p).all() for p in module.net.parameters())
    state = module.state_dict()
    assert {"importance.mean", "importance.second_moment", "importance.counts"} <= state.keys()
    fresh = module_with(ImportanceTimes(bins=8, warmup_steps=3))
    fresh.load_state_dict(state)
    assert fresh.importance is not None
    torch.testing.assert_close(fresh.importance.proposal(), proposal)
    plain = module_with("stratified")
    assert plain.importance is None and not any("importance" in k for k in plain.state_dict())


def test_a_run_resumes_with_the_other_time_sampling(tmp_path: Path) -> None:
    """Switching `time_sampling` on resume works both ways: the sampler's estimates are
    dropped, or start afresh."""

    def config(steps: int, sampling: str) -> RunConfig:
        base = tiny_config(steps)
        return base.model_copy(
            update={"train": base.train.model_copy(update={"time_sampling": sampling})}
        )

    train(config(5, "stratified"), tmp_path / "a", **QUIET)
    module = train(config(10, "importance"), tmp_path / "a", resume=True, **QUIET)
    assert module.importance is not None and int(module.importance.num_updates) == 5
    train(config(5, "importance"), tmp_path / "b", **QUIET)
    module = train(config(10, "stratified"), tmp_path / "b", resume=True, **QUIET)
    assert module.importance is None and module.trainer.global_step == 10


def test_the_configuration_builds_an_importance_module() -> None:
    base = tiny_config(4)
    config = base.model_copy(
        update={"train": base.train.model_copy(update={"time_sampling": "importance"})}
    )
    module = build_module(RunConfig.model_validate(config.model_dump()))
    assert module.time_sampling == "importance"
    assert isinstance(module.importance, ImportanceTimes)
    with pytest.raises(ValueError, match="time_sampling must be"):
        module_with("adaptive")
