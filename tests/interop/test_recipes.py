"""The recipes take a SEDD checkpoint with `--checkpoint` where the domain fits (DNA: 4 tokens)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from ddiff.interop import SeddScoreNet
from tests.recipes.conftest import run_main


def sedd_dna_checkpoint(directory: Path, graph: str, noise: dict[str, object]) -> Path:
    """A SEDD checkpoint in the Hugging Face layout for 4 tokens (random weights)."""
    config = {
        "tokens": 4,
        "graph": {"type": graph},
        "noise": noise,
        "model": {"hidden_size": 32, "cond_dim": 16, "n_blocks": 1, "n_heads": 2,
                  "scale_by_sigma": graph == "absorb", "dropout": 0.1},
        "sampling": {"predictor": "analytic", "steps": 8, "noise_removal": True},
    }  # fmt: skip
    torch.manual_seed(0)
    net = SeddScoreNet(4 + (graph == "absorb"), dim=32, depth=1, heads=2, cond_dim=16)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))
    directory.mkdir(parents=True)
    (directory / "config.json").write_text(json.dumps(config))
    save_file(net.state_dict(), str(directory / "model.safetensors"))
    return directory


def test_dna_evaluate_with_a_sedd_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint = sedd_dna_checkpoint(
        tmp_path / "sedd", "uniform", {"type": "geometric", "sigma_min": 1e-4, "sigma_max": 20}
    )
    rng = np.random.default_rng(0)
    fasta = tmp_path / "mine.fasta"
    fasta.write_text(
        "".join(f">r{i}\n{''.join(rng.choice(list('ACGT'), 400))}\n" for i in range(12))
    )
    argv = ["evaluate", "--checkpoint", str(checkpoint), "--data", str(fasta), "--no-progress"]
    argv += ["--set", "evaluate.num_t=2", "--out", str(tmp_path / "eval")]
    code, out, err = run_main("dna", argv, capsys)
    assert code == 0, err
    line = next(x for x in out.splitlines() if x.startswith("bits/base:"))
    assert "±" in line and "mine.fasta" in line
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    bound = metrics["likelihood"]["diffusion_bound"]
    assert math.isfinite(bound["bits_per_token"]) and bound["bits_per_token"] > 1.5


def test_dna_sample_with_a_sedd_checkpoint_in_pytorch_bin_form(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Older hub checkpoints hold `pytorch_model.bin` instead of `model.safetensors`; the
    recipes' `--checkpoint` finds them too."""
    checkpoint = sedd_dna_checkpoint(
        tmp_path / "sedd", "absorb", {"type": "loglinear", "sigma_min": 1e-4, "sigma_max": 20}
    )
    weights = checkpoint / "model.safetensors"
    from safetensors.torch import load_file

    torch.save(load_file(str(weights)), checkpoint / "pytorch_model.bin")
    weights.unlink()
    argv = ["sample", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "out")]
    code, _, err = run_main(
        "dna", [*argv, "--num-samples", "3", "--steps", "4", "--no-progress"], capsys
    )
    assert code == 0, err
    records = (tmp_path / "out" / "samples.fasta").read_text().count(">")
    assert records == 3
