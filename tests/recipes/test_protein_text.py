"""The protein and text recipes: tiny end-to-end runs, their infill guarantee and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.recipes.conftest import TINY, run_main

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["protein", "text"])
def test_yaml_equals_module_defaults(name: str) -> None:
    import importlib

    module = importlib.import_module(f"ddiff.recipes.{name}")
    config = module.RECIPE.config_type.from_yaml(REPO / "recipes" / f"{name}.yaml")
    assert config == module.RECIPE.default_config()


def test_protein_tiny_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ddiff.domains.protein import decode, read_fasta

    out = tmp_path / "run"
    argv = ["--out", str(out), *TINY, "--set", "data.max_length=96"]
    code, _, err = run_main("protein", argv, capsys)
    assert code == 0, err
    samples = read_fasta(out / "samples.fasta", min_length=0)
    assert len(samples) == 8 and all(r.tokens.numel() <= 96 for r in samples)
    rows = np.load(out / "infill_tokens.npy")
    assert rows.shape == (8, 96)
    assert all(decode(row[9:17].astype(np.int64)) == "GAGGVGKS" for row in rows)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["infill"]["num_exact"] == 8
    assert 3.0 < metrics["likelihood"]["diffusion_bound"]["bits_per_token"] < 8.0
    assert "nearest_identity_mean" in metrics["sets"]["diffusion samples"]
    assert (out / "report.md").read_text().startswith("# Protein recipe report")


def test_protein_bad_inputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fasta = tmp_path / "p.fasta"
    fasta.write_text(">a\nMKVLAAGHWRST\n>b\nMKV1LA\n")
    for argv, expected in (
        (["train", "--data", str(fasta)], ("p.fasta", "'b'", "position 4")),
        (["--motif", "GAGGVGKS@250"], ("--motif GAGGVGKS@250", "past the end")),
        (["--motif", "GAGGVGKS@9", "--motif", "KST@12"], ("overlaps",)),
        (["--motif", "GAG*GKS@9"], ("--motif GAG*GKS@9", "position 4")),
    ):
        code, _, err = run_main(
            "protein", [*argv, "--out", str(tmp_path / "o"), "--no-progress"], capsys
        )
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        assert all(text in err for text in expected), (expected, err)
    assert not (tmp_path / "o").exists()


def test_text_tiny_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ddiff.domains.text import encode

    out = tmp_path / "run"
    argv = [
        "--out", str(out), *TINY,
        "--set", "data.length=48",
        "--prompt", "Mr. Speaker,",
        "--span", " our Union is strong@30",
    ]  # fmt: skip
    code, _, err = run_main("text", argv, capsys)
    assert code == 0, err
    rows = np.load(out / "infill_tokens.npy")
    prompt, span = encode("Mr. Speaker,").numpy(), encode(" our Union is strong").numpy()
    assert rows.shape == (8, 48)
    assert (rows[:, : prompt.size] == prompt).all()
    assert (rows[:, 30 : 30 + span.size] == span).all()
    assert (out / "samples.txt").read_text().startswith("### sample 0\n")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["infill"]["num_exact"] == 8
    assert metrics["likelihood"]["diffusion_bound"]["bits_per_character"] > 0
    assert "Union is strong" in (out / "report.md").read_text()


def test_text_bad_inputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    binary = tmp_path / "b.txt"
    binary.write_bytes(b"\xff\xfe\x00 not utf-8")
    empty = tmp_path / "e.txt"
    empty.write_text("   \n")
    for argv, expected in (
        (["train", "--data", str(binary)], ("b.txt", "not UTF-8")),
        (["train", "--data", str(empty)], ("e.txt", "no text")),
        (["--span", "the Union@500"], ("the Union", "out of range")),
        (["--prompt", "Mr. Speaker, Mr. Vice President", "--span", " Members@3"], ("overlaps",)),
    ):
        code, _, err = run_main(
            "text", [*argv, "--out", str(tmp_path / "o"), "--no-progress"], capsys
        )
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        assert all(text in err for text in expected), (expected, err)
    assert not (tmp_path / "o").exists()
