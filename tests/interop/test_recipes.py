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


def test_guidance_steers_a_loaded_sedd_model(tmp_path: Path) -> None:
    """Classifier guidance (ddiff.guidance) runs on a loaded SEDD network like on any score
    function: at weight 0 it is the model itself (same samples for a seed), and at weight 4 a
    classifier that likes A raises the share of A in the samples."""
    from ddiff.guidance import ClassifierGuidance
    from ddiff.interop import load_sedd
    from ddiff.samplers import EulerSampler

    checkpoint = sedd_dna_checkpoint(
        tmp_path / "sedd", "uniform", {"type": "geometric", "sigma_min": 1e-4, "sigma_max": 20}
    )
    pre = load_sedd(checkpoint)

    def likes_a(x_t: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """log p(c | x_t) of a label 'A-rich': a logistic in the share of A."""
        share = (x_t == 0).double().mean(dim=-1)
        return torch.nn.functional.logsigmoid(8.0 * (share - 0.25))

    sampler = EulerSampler(pre.graph, pre.schedule)

    def draw(score_fn: object) -> torch.Tensor:
        generator = torch.Generator().manual_seed(0)
        return sampler.run(score_fn, 64, 12, 16, generator=generator).tokens  # type: ignore[arg-type]

    plain = draw(pre.net)
    assert torch.equal(draw(ClassifierGuidance(pre.net, likes_a, 0.0, graph=pre.graph)), plain)
    guided = draw(ClassifierGuidance(pre.net, likes_a, 4.0, graph=pre.graph))
    assert (guided == 0).double().mean() > (plain == 0).double().mean() + 0.1
