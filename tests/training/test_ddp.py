"""Two DDP processes on CPU (gloo) against single-process training on the same global batch.

Plain `ddp` re-launches the calling script for rank 1, so the runs are subprocesses of
`tiny_run.py`, never pytest's own process. Three checks:

1. both ranks end with identical weights;
2. one process replaying the same global batches (each half with its rank's draws, the mean
   of the two losses, one AdamW step) reproduces the DDP losses and weights: the ranks saw
   disjoint halves of the global batch and DDP averaged their gradients;
3. a real single-process run with the doubled batch sees the same data and the same times,
   and its losses agree with the DDP losses up to the noise of the noised tokens (which are
   drawn per rank, so they differ between the two runs).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ddiff.losses import sample_times
from ddiff.run import build_module
from ddiff.training import TokenBatch
from ddiff.training._seeding import TRAIN_NOISE, TRAIN_TIMES, keyed_generator
from tests.training.tiny_run import tiny_config

SCRIPT = Path(__file__).with_name("tiny_run.py")
STEPS, PER_RANK = 3, 64


def launch(
    run_dir: Path, devices: int, batch_size: int, *extra: str, steps: int = STEPS
) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable,
        str(SCRIPT),
        str(run_dir),
        "--max-steps",
        str(steps),
        "--devices",
        str(devices),
        "--batch-size",
        str(batch_size),
        *extra,
    ]
    return subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("ddp")
    ddp, single = root / "ddp", root / "single"
    processes = [launch(ddp, 2, PER_RANK), launch(single, 1, 2 * PER_RANK)]
    for process in processes:
        _, err = process.communicate(timeout=240)
        assert process.returncode == 0, err[-4000:]
    return ddp, single


def losses(run_dir: Path, rank: int) -> list[float]:
    return json.loads((run_dir / f"losses-rank{rank}.json").read_text())


def test_both_ranks_hold_identical_weights(runs: tuple[Path, Path]) -> None:
    ddp, _ = runs
    rank0, rank1 = (
        load_file(str(ddp / "rank0.safetensors")),
        load_file(str(ddp / "rank1.safetensors")),
    )
    assert rank0.keys() == rank1.keys()
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)
    initial = build_module(tiny_config(STEPS)).net.state_dict()
    assert not all(torch.equal(rank0[k], initial[k]) for k in rank0)  # training moved them


def test_ddp_equals_the_gradient_average_over_the_global_batch(runs: tuple[Path, Path]) -> None:
    ddp, _ = runs
    config = tiny_config(STEPS, batch_size=2 * PER_RANK)
    module = build_module(config)  # the same seeded initial weights as the DDP run
    assert config.data is not None
    data = config.data.build(batch_size=2 * PER_RANK, seed=config.train.seed)
    batches = iter(data.train_dataloader())
    optimizer = module.optim.build_optimizer(module.net.parameters())
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, module.optim.lr_factor())
    replayed = []
    for step in range(STEPS):
        batch = next(batches)
        times = keyed_generator(config.train.seed, TRAIN_TIMES, step, 0)
        t = sample_times((1, 2 * PER_RANK), "stratified", times).reshape(-1)
        per_rank = [
            module.loss(
                TokenBatch(batch.tokens[r::2], batch.lengths[r::2]),
                t[r::2],
                keyed_generator(config.train.seed, TRAIN_NOISE, step, 0, r),
            )
            for r in (0, 1)
        ]
        optimizer.zero_grad()
        ((per_rank[0] + per_rank[1]) / 2).backward()
        torch.nn.utils.clip_grad_norm_(module.net.parameters(), module.optim.grad_clip)
        optimizer.step()
        scheduler.step()
        replayed.append([x.item() for x in per_rank])
    for r in (0, 1):
        assert losses(ddp, r) == pytest.approx([x[r] for x in replayed], rel=1e-5)
    weights = load_file(str(ddp / "rank0.safetensors"))
    for key, value in module.net.state_dict().items():
        torch.testing.assert_close(weights[key], value, rtol=1e-4, atol=1e-6, msg=key)


def test_loss_matches_a_single_process_run(runs: tuple[Path, Path]) -> None:
    ddp, single = runs
    averaged = [(a + b) / 2 for a, b in zip(losses(ddp, 0), losses(ddp, 1), strict=True)]
    alone = losses(single, 0)
    print(f"\nDDP mean loss per step {averaged}\nsingle process         {alone}")
    # Same data, weights and times; only the noised tokens differ. Even on a global batch of
    # 1,024 tokens that noise alone moves a step's loss by ~10% (measured: 1.42 vs 1.26 at step
    # 0; the absorbing loss is heavy-tailed at small t), so 30% on the mean over the steps
    # catches a factor-of-two mistake (summed gradients, duplicated data) without flaking; the
    # exact check is the replay above.
    mean_ddp, mean_single = sum(averaged) / STEPS, sum(alone) / STEPS
    assert mean_ddp == pytest.approx(mean_single, rel=0.3)


def test_importance_sampling_keeps_one_proposal_on_every_rank(tmp_path: Path) -> None:
    """`time_sampling: importance` under DDP: every rank folds in the whole global batch (an
    all-reduce of the bins), so both ranks end with the same estimates, built from all
    2 x PER_RANK x steps times, and have left the uniform proposal."""
    steps = 4
    process = launch(tmp_path, 2, PER_RANK, "--importance-warmup", "1", steps=steps)
    _, err = process.communicate(timeout=240)
    assert process.returncode == 0, err[-4000:]
    rank0, rank1 = (load_file(str(tmp_path / f"importance-rank{r}.safetensors")) for r in (0, 1))
    assert rank0.keys() == rank1.keys() and all(torch.equal(rank0[k], rank1[k]) for k in rank0)
    assert float(rank0["counts"].sum()) == 2 * PER_RANK * steps
    assert int(rank0["num_updates"]) == steps
    from ddiff.losses import ImportanceTimes

    times = ImportanceTimes(warmup_steps=1)
    times.load_state_dict(rank0)
    assert not torch.allclose(times.proposal(), torch.full((32,), 1 / 32, dtype=torch.float64))
