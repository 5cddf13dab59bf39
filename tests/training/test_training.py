"""End-to-end training: a tiny model learns a Markov source; bf16; the command line; resumption."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from ddiff.config import RunConfig
from ddiff.pretrained import load_pretrained
from ddiff.run import main, train
from ddiff.testing import MarkovSource
from ddiff.training import AtomicCheckpointIO
from tests.training.tiny_run import QUIET, tiny_config

pytestmark = pytest.mark.usefixtures("one_thread")


def test_a_tiny_model_learns_a_markov_source(tmp_path: Path) -> None:
    """300 steps of the "tiny" transformer: the bound falls far below log2(4) = 2 bits/token."""
    config = RunConfig.model_validate(
        {
            "graph": {"kind": "absorbing", "num_tokens": 4},
            "schedule": {"kind": "loglinear", "survival": 0.0},
            "net": {"kind": "transformer", "preset": "tiny"},
            "optim": {"kind": "adamw", "lr": 1e-3, "warmup_steps": 20, "ema_decay": 0.99},
            "train": {
                "max_steps": 300,
                "batch_size": 32,
                "val_every_n_steps": 300,
                "val_num_t": 8,
                "checkpoint_every_n_steps": 300,
                "accelerator": "cpu",
                "devices": 1,
            },
            "data": {
                "kind": "markov",
                "num_tokens": 4,
                "length": 16,
                "num_train": 4096,
                "num_val": 256,
            },
        }
    )
    overrides = {k: v for k, v in QUIET.items() if k not in ("limit_val_batches", "logger")}
    module = train(config, tmp_path, **overrides)
    metrics = module.trainer.callback_metrics
    bits = float(metrics["val/bits_per_token"])
    stderr = float(metrics["val/mc_stderr_bits_per_token"])
    assert config.data is not None
    source: MarkovSource = config.data.source()  # type: ignore[union-attr]
    entropy = source.entropy_per_token("bits")
    print(
        f"\nvalidation bound {bits:.3f} +- {stderr:.3f} bits/token; entropy {entropy:.3f}; uniform 2"
    )
    assert bits < 0.5 * math.log2(4)  # clearly below the uniform baseline
    assert bits > entropy - 4 * stderr - 0.05  # and still a bound
    loaded = load_pretrained(tmp_path / "pretrained")
    assert loaded.config == config


def test_bf16_mixed_precision_trains_with_a_float32_loss(tmp_path: Path) -> None:
    config = tiny_config(max_steps=4)
    config = config.model_copy(
        update={"train": config.train.model_copy(update={"precision": "bf16-mixed"})}
    )
    dtypes: list[torch.dtype] = []

    import lightning as L

    class Record(L.Callback):
        def on_train_batch_end(self, trainer, module, outputs, *rest) -> None:  # type: ignore[no-untyped-def]
            dtypes.append(outputs["loss"].dtype)

    module = train(config, tmp_path, callbacks=[Record()], **QUIET)
    assert module.trainer.precision == "bf16-mixed"
    assert dtypes == [torch.float32] * 4
    assert all(torch.isfinite(p).all() for p in module.net.parameters())


@pytest.mark.parametrize("sampling", ["stratified", "importance"])
def test_resume_continues_exactly(tmp_path: Path, sampling: str) -> None:
    """12 steps, then a new module resumed to 24, equals 24 uninterrupted steps bit for bit
    (with importance-sampled times, the sampler's estimates included)."""

    def config(steps: int) -> RunConfig:
        base = tiny_config(steps)
        return base.model_copy(
            update={"train": base.train.model_copy(update={"time_sampling": sampling})}
        )

    train(config(24), tmp_path / "straight", **QUIET)
    train(config(12), tmp_path / "split", **QUIET)
    train(config(24), tmp_path / "split", resume=True, **QUIET)
    io = AtomicCheckpointIO()
    a = io.load_checkpoint(tmp_path / "straight" / "checkpoints" / "last.ckpt")
    b = io.load_checkpoint(tmp_path / "split" / "checkpoints" / "last.ckpt")
    assert a["global_step"] == b["global_step"] == 24
    if sampling == "importance":
        assert int(a["state_dict"]["importance.num_updates"]) == 24
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key
    for key, value in a["ddiff"]["ema"]["weights"].items():
        assert torch.equal(value, b["ddiff"]["ema"]["weights"][key]), key
    exp_avg = [s["exp_avg"] for s in a["optimizer_states"][0]["state"].values()]
    exp_avg_b = [s["exp_avg"] for s in b["optimizer_states"][0]["state"].values()]
    assert all(torch.equal(x, y) for x, y in zip(exp_avg, exp_avg_b, strict=True))


def test_command_line_trains_resumes_and_reports_typos(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run.yaml"
    run.write_text(
        "graph: {kind: uniform, num_tokens: 3}\n"
        "schedule: {kind: loglinear}\n"
        "net: {kind: transformer, preset: tiny, dim: 32, cond_dim: 32}\n"
        "optim: {kind: adamw, warmup_steps: 0}\n"
        "train: {max_steps: 2, batch_size: 4, accelerator: cpu, devices: 1, val_every_n_steps: 2}\n"
        "data: {kind: markov, num_tokens: 3, length: 6, num_train: 16, num_val: 4}\n"
    )
    out = tmp_path / "out"
    assert main(["--config", str(run), "--run-dir", str(out)]) == 0
    files = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert {
        "checkpoints/config.json",
        "checkpoints/last.ckpt",
        "pretrained/config.json",
        "pretrained/model.safetensors",
    } <= files
    assert (
        main(
            ["--config", str(run), "--run-dir", str(out), "--resume", "--set", "train.max_steps=3"]
        )
        == 0
    )
    last = AtomicCheckpointIO().load_checkpoint(out / "checkpoints" / "last.ckpt")
    assert last["global_step"] == 3
    assert RunConfig.from_json(out / "checkpoints" / "config.json").train.max_steps == 3
    run.write_text(run.read_text().replace("batch_size", "batchsize"))
    assert main(["--config", str(run), "--run-dir", str(out)]) == 2
    assert "train.batchsize" in capsys.readouterr().err


def test_training_without_data_is_an_error(tmp_path: Path) -> None:
    config = tiny_config(2).model_copy(update={"data": None})
    with pytest.raises(ValueError, match="no data section"):
        train(config, tmp_path)
