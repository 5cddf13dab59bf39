"""Tiny recipe runs shared by the recipe tests (each trains for a few seconds)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

# A small network and budget: every recipe step runs, in seconds instead of minutes. TINY_DNA
# keeps the DNA recipe's convolutional network and its first-hitting sampler (no heads, no
# steps); TINY is for the transformer recipes.
TINY_DNA = [
    "--no-progress",
    "--max-steps", "20",
    "--num-samples", "8",
    "--set", "net.dim=32",
    "--set", "net.depth=1",
    "--set", "net.cond_dim=32",
    "--set", "train.val_every_n_steps=10",
    "--set", "train.checkpoint_every_n_steps=10",
    "--set", "train.limit_val_batches=1",
    "--set", "evaluate.num_t=2",
    "--set", "evaluate.max_heldout=48",
    "--set", "runtime.train_time_limit_s=null",
]  # fmt: skip
TINY = [*TINY_DNA, "--steps", "16", "--set", "net.heads=2"]


@pytest.fixture(autouse=True)
def _restore_threads() -> Iterator[None]:
    """Recipes set torch's thread count for the process; put it back after each test."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def run_main(
    module: str, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    """Run `python -m ddiff.recipes.<module> argv` in this process: (exit code, stdout, stderr)."""
    import importlib

    main = importlib.import_module(f"ddiff.recipes.{module}").main
    capsys.readouterr()
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="session")
def dna_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A complete tiny DNA run (train, sample, infill, evaluate) in a session directory."""
    from ddiff.recipes.dna import main

    out = tmp_path_factory.mktemp("dna") / "run"
    before = torch.get_num_threads()
    try:
        code = main(["--out", str(out), *TINY_DNA])
    finally:
        torch.set_num_threads(before)
    if code != 0:
        print(f"tiny DNA run failed with exit code {code}", file=sys.stderr)
    assert code == 0
    return out


@pytest.fixture(scope="session")
def dna_labelled_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A complete tiny labelled DNA run: the label-conditioned model, its classifier, samples,
    infill and the guidance comparison (two weights, a few samples)."""
    from ddiff.recipes.dna import main

    out = tmp_path_factory.mktemp("dna_labelled") / "run"
    before = torch.get_num_threads()
    try:
        code = main(
            [
                "--out", str(out), *TINY_DNA,
                "--set", "data.labelled=true",
                "--set", "guidance.classifier.max_steps=10",
                "--set", "guidance.classifier.dim=32",
                "--set", "guidance.classifier.depth=1",
                "--set", "guidance.classifier.cond_dim=32",
                "--set", "guidance.sweep_weights=[0, 2]",
                "--set", "guidance.sweep_samples=8",
            ]
        )  # fmt: skip
    finally:
        torch.set_num_threads(before)
    assert code == 0
    return out
