"""A run killed with SIGKILL resumes from its last checkpoint and ends where an uninterrupted run does."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from ddiff.training import AtomicCheckpointIO

SCRIPT = Path(__file__).with_name("tiny_run.py")
STEPS = 60


def launch(run_dir: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), str(run_dir), "--max-steps", str(STEPS), *extra],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen, timeout: float = 300) -> None:
    _, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err[-3000:]


def test_kill_9_then_resume_gives_the_uninterrupted_weights(tmp_path: Path) -> None:
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    reference = launch(straight)
    victim = launch(killed, "--checkpoint-every", "5")
    last = killed / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 120
    while not last.exists():
        assert victim.poll() is None, victim.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.01)
    victim.send_signal(signal.SIGKILL)  # kill -9: no handler, no cleanup
    victim.wait()
    assert victim.returncode == -signal.SIGKILL
    step_at_kill = AtomicCheckpointIO().load_checkpoint(last)["global_step"]
    assert 0 < step_at_kill < STEPS, "the run finished before it could be killed"
    assert not (killed / "pretrained").exists()

    finish(launch(killed, "--checkpoint-every", "5", "--resume"))
    finish(reference)

    a, b = (
        load_file(str(straight / "rank0.safetensors")),
        load_file(str(killed / "rank0.safetensors")),
    )
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=0, atol=1e-6, msg=key)
    ema_a = load_file(str(straight / "pretrained" / "model.safetensors"))
    ema_b = load_file(str(killed / "pretrained" / "model.safetensors"))
    for key in ema_a:
        torch.testing.assert_close(ema_b[key], ema_a[key], rtol=0, atol=1e-6, msg=key)
    print(f"\nkilled at step {step_at_kill} of {STEPS}; resumed weights match")
