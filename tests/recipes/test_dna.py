"""The DNA recipe: a tiny end-to-end run, the infill guarantee, resuming, and bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.recipes.conftest import TINY_DNA, run_main

REPO = Path(__file__).resolve().parents[2]


def _records(path: Path) -> list[str]:
    from ddiff.domains.dna import decode, read_fasta

    return [decode(r.tokens) for r in read_fasta(path)]


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


# -- the default configuration ------------------------------------------------------------------------


def test_yaml_equals_module_defaults() -> None:
    from ddiff.recipes.dna import RECIPE, DnaRecipeConfig

    assert DnaRecipeConfig.from_yaml(REPO / "recipes" / "dna.yaml") == RECIPE.default_config()


def test_default_motifs_are_sigma70_boxes_17bp_apart() -> None:
    from ddiff.recipes.dna import RECIPE, TASK

    motifs = RECIPE.motifs(RECIPE.default_config())
    (_, e35), (a10, _) = ((m.position % 150, m.position % 150 + len(m.tokens)) for m in motifs)
    assert [TASK.decode(m.tokens) for m in motifs] == ["TTGACA", "TATAAT"]
    assert a10 - e35 == 17  # the optimal sigma-70 spacer
    assert 150 - a10 - 6 == 35  # -10 box to the start codon after the window


# -- a tiny run -----------------------------------------------------------------------------------------


def test_tiny_run_writes_every_output(dna_run: Path) -> None:
    for name in (
        "recipe.json",
        "pretrained/model.safetensors",
        "pretrained/config.json",
        "checkpoints/last.ckpt",
        "samples.fasta",
        "infill.fasta",
        "metrics.json",
        "report.md",
    ):
        assert (dna_run / name).is_file(), name
    samples = _records(dna_run / "samples.fasta")
    assert len(samples) == 8 and {len(s) for s in samples} == {150}
    metrics = json.loads((dna_run / "metrics.json").read_text())
    bound = metrics["likelihood"]["diffusion_bound"]
    assert 1.0 < bound["bits_per_token"] < 3.0 and bound["stderr"] > 0
    assert metrics["likelihood"]["markov3_nll"]["bits_per_token"] < 2.0
    assert set(metrics["sets"]) >= {
        "diffusion samples",
        "real (training windows)",
        "order-3 Markov samples",
        "shuffled held-out",
    }
    for values in metrics["sets"].values():
        assert all(0.0 <= values[f"js_k{k}"] <= 1.0 for k in (3, 4, 5, 6))
    report = (dna_run / "report.md").read_text()
    assert "first_hitting sampler, one network call per unmasking event, 8 samples" in report
    images = [
        line.split("(")[1].rstrip(")") for line in report.splitlines() if line.startswith("![")
    ]
    assert len(images) >= 6
    for image in images:
        assert (dna_run / image).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", image


def test_infill_keeps_every_motif_exactly(dna_run: Path) -> None:
    infill = _records(dna_run / "infill.fasta")
    assert len(infill) == 8
    assert all(s[86:92] == "TTGACA" and s[109:115] == "TATAAT" for s in infill)
    record = json.loads((dna_run / "infill.json").read_text())
    assert record["all_exact"] and record["num_exact"] == 8
    assert json.loads((dna_run / "metrics.json").read_text())["infill"]["all_exact"]


@pytest.mark.parametrize("sampler", ["tau-leaping", "analytic", "first-hitting"])
def test_infill_guarantee_for_every_sampler(
    dna_run: Path, tmp_path: Path, sampler: str, capsys: pytest.CaptureFixture[str]
) -> None:
    motifs = ["--motif", "GGAGG@140", "--motif", "ACGT@0", "--motif", "TATAAT@-20"]
    argv = ["infill", "--checkpoint", str(dna_run), "--out", str(tmp_path), "--sampler", sampler]
    code, _, err = run_main("dna", [*argv, *motifs, "--num-samples", "16", "--no-progress"], capsys)
    assert code == 0, err
    infill = _records(tmp_path / "infill.fasta")
    assert len(infill) == 16
    assert all(s[140:145] == "GGAGG" and s[:4] == "ACGT" and s[130:136] == "TATAAT" for s in infill)


def test_motif_file_consensus(
    dna_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    jaspar = tmp_path / "box.jaspar"
    jaspar.write_text(
        ">MA9999.1 minus10\n"
        "A  [ 2 90  5 80 85  3 ]\nC  [ 3  2  3  5  5  2 ]\nG  [ 1  3  2  5  5  5 ]\nT  [94  5 90 10  5 90 ]\n"
    )
    out = tmp_path / "out"
    argv = ["infill", "--checkpoint", str(dna_run), "--out", str(out), "--no-progress"]
    code, _, err = run_main("dna", [*argv, "--motif-file", f"{jaspar}@100"], capsys)
    assert code == 0, err
    assert all(s[100:106] == "TATAAT" for s in _records(out / "infill.fasta"))


def test_evaluate_user_data_prints_bits_per_base(
    dna_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(0)
    fasta = tmp_path / "mine.fasta"
    fasta.write_text(
        "".join(f">r{i}\n{''.join(rng.choice(list('ACGT'), 400))}\n" for i in range(12))
    )
    argv = ["evaluate", "--checkpoint", str(dna_run), "--data", str(fasta), "--no-progress"]
    code, out, err = run_main("dna", [*argv, "--out", str(tmp_path / "eval")], capsys)
    assert code == 0, err
    line = next(x for x in out.splitlines() if x.startswith("bits/base:"))
    assert "±" in line and "mine.fasta" in line
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    # 12 records of 400 bp, never seen in training: all 24 windows are scored.
    assert metrics["likelihood"]["diffusion_bound"]["num_sequences"] == 24


def test_train_on_user_fasta_and_resume(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(1)
    fasta = tmp_path / "genome.fasta"
    fasta.write_text(">chr\n" + "".join(rng.choice(list("ACGT"), 6000)) + "\n")
    out = tmp_path / "run"
    small = ["--set", "data.length=40", "--set", "train.batch_size=8"]
    code, _, err = run_main(
        "dna",
        ["train", "--data", str(fasta), "--out", str(out), *TINY_DNA, *small, "--max-steps", "6"],
        capsys,
    )
    assert code == 0, err
    record = json.loads((out / "recipe.json").read_text())
    assert record["data"]["split"] == "coordinates" and record["training"]["steps"] == 6
    # One record: the last 10% of coordinates is held out, one window away from training.
    assert record["data"]["num_heldout"] == 15 and record["data"]["num_train"] == 134
    code, _, err = run_main(
        "dna",
        ["train", "--out", str(out), "--resume", "--max-steps", "10", "--no-progress"],
        capsys,
    )
    assert code == 0, err
    assert json.loads((out / "recipe.json").read_text())["training"]["steps"] == 10


# -- bad input: one line on stderr, exit code 2, nothing destroyed ------------------------------------


@pytest.fixture
def existing_out(tmp_path: Path) -> Path:
    out = tmp_path / "out"
    out.mkdir()
    (out / "samples.fasta").write_text(">old\nACGT\n")
    (out / "notes.txt").write_text("keep me")
    return out


def _bad_input(
    argv: list[str], out: Path, capsys: pytest.CaptureFixture[str], *expected: str
) -> str:
    before = _snapshot(out)
    code, _, err = run_main("dna", [*argv, "--out", str(out), "--no-progress"], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and "Traceback" not in err
    for text in expected:
        assert text in lines[0], (text, lines[0])
    assert _snapshot(out) == before
    return lines[0]


def test_letter_outside_alphabet(
    tmp_path: Path, existing_out: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fasta = tmp_path / "bad.fasta"
    fasta.write_text(">ok\nACGTACGT\n>broken\nACGTAC\nGTXACG\n")
    _bad_input(
        ["train", "--data", str(fasta)],
        existing_out,
        capsys,
        "bad.fasta",
        "'broken'",
        "position 9",
        "'X'",
    )


def test_ambiguity_code_names_the_policy(
    tmp_path: Path, existing_out: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fasta = tmp_path / "n.fasta"
    fasta.write_text(">r1\nACGTNNACGT\n")
    _bad_input(
        ["train", "--data", str(fasta)],
        existing_out,
        capsys,
        "n.fasta",
        "'r1'",
        "position 5",
        "split",
    )


@pytest.mark.parametrize("content", ["", "hello, this is not FASTA\n", "\x00\x01\x02binary"])
def test_empty_or_non_fasta_file(
    tmp_path: Path, existing_out: Path, capsys: pytest.CaptureFixture[str], content: str
) -> None:
    path = tmp_path / "input.fasta"
    path.write_text(content)
    _bad_input(["train", "--data", str(path)], existing_out, capsys, "input.fasta")


def test_missing_data_file(
    tmp_path: Path, existing_out: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _bad_input(
        ["--data", str(tmp_path / "nope.fasta")], existing_out, capsys, "nope.fasta", "no such file"
    )


@pytest.mark.parametrize(
    ("motifs", "expected"),
    [
        (["--motif", "TTGACA@148"], ("--motif TTGACA@148", "past the end")),
        (["--motif", "TTGACA@150"], ("--motif TTGACA@150", "out of range")),
        (
            ["--motif", "TTGACA@86", "--motif", "TATAAT@90"],
            ("--motif TATAAT@90", "overlaps", "--motif TTGACA@86"),
        ),
        (["--motif", "TTGXCA@86"], ("--motif TTGXCA@86", "position 4", "'X'")),
        (["--motif", "TTGACA"], ("--motif TTGACA", "@POSITION")),
        (["--motif", "TTGACA@here"], ("--motif TTGACA@here", "not an integer")),
    ],
)
def test_bad_motif(
    existing_out: Path,
    capsys: pytest.CaptureFixture[str],
    motifs: list[str],
    expected: tuple[str, ...],
) -> None:
    _bad_input(motifs, existing_out, capsys, *expected)


def test_bad_motif_file(
    tmp_path: Path, existing_out: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "motif.jaspar"
    path.write_text("this is not a matrix\n")
    _bad_input(["--motif-file", f"{path}@10"], existing_out, capsys, "--motif-file", "motif.jaspar")


def _fake_run(directory: Path, recipe: str | None, graph_tokens: int) -> Path:
    """A run directory holding an untrained model of another domain."""
    from ddiff.config import RunConfig
    from ddiff.pretrained import save_pretrained

    config = RunConfig.model_validate(
        {
            "graph": {"kind": "absorbing", "num_tokens": graph_tokens},
            "schedule": {"kind": "loglinear", "survival": 0.0},
            "net": {"kind": "transformer", "dim": 16, "depth": 1, "heads": 2, "cond_dim": 16},
            "train": {"max_steps": 1},
        }
    )
    torch.manual_seed(0)
    save_pretrained(config.net.build(config.graph.build()), directory / "pretrained", config)
    if recipe is not None:
        from ddiff.recipes.protein import RECIPE

        record = {"recipe": recipe, "config": RECIPE.default_config().model_dump(mode="json")}
        (directory / "recipe.json").write_text(json.dumps(record))
    return directory


@pytest.mark.parametrize("with_record", [True, False])
def test_checkpoint_from_another_domain(
    tmp_path: Path, existing_out: Path, capsys: pytest.CaptureFixture[str], with_record: bool
) -> None:
    run = _fake_run(tmp_path / "protein_run", "protein" if with_record else None, 21)
    expected = ("protein",) if with_record else ("21 data tokens", "needs 4")
    for command in ("sample", "evaluate"):
        _bad_input(
            [command, "--checkpoint", str(run)], existing_out, capsys, "protein_run", *expected
        )


def test_training_never_overwrites_a_run(dna_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _bad_input(["train"], dna_run, capsys, "already holds a trained run", "--resume")


def test_no_model_for_sampling(existing_out: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _bad_input(["sample"], existing_out, capsys, "no trained model")


def test_unknown_config_key(
    tmp_path: Path, existing_out: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _bad_input(["--set", "train.max_stepz=3"], existing_out, capsys, "train.max_stepz")
    config = tmp_path / "c.yaml"
    config.write_text("recipe: dna\ngraph: {kind: absorbing, num_tokens: 5}\n")
    _bad_input(["--config", str(config)], existing_out, capsys, "c.yaml", "4 data tokens")


def test_command_line_error_in_a_subprocess(existing_out: Path) -> None:
    """The real entry point: exit code 2 and a single line, no traceback."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ddiff.recipes.dna",
            "--motif",
            "TTGACA@200",
            "--out",
            str(existing_out),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
    assert "--motif TTGACA@200" in result.stderr


def test_renamed_config_key_still_works_with_one_warning_line(
    dna_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A recipe YAML written before `schedule.eps` became `schedule.survival` still runs; the
    command line says so in one line that names the file."""
    config = json.loads((dna_run / "recipe.json").read_text())["config"]
    config["schedule"] = {"kind": "loglinear", "eps": 0.0}
    old = tmp_path / "old.yaml"
    old.write_text(json.dumps(config))  # JSON is YAML
    argv = ["sample", "--config", str(old), "--checkpoint", str(dna_run), "--out", str(tmp_path)]
    code, _, err = run_main("dna", [*argv, "--num-samples", "2", "--no-progress"], capsys)
    assert code == 0, err
    assert err.strip().splitlines() == [
        f"warning: {old}: schedule.eps is deprecated, use schedule.survival (the same value)"
    ]
    assert len(_records(tmp_path / "samples.fasta")) == 2
