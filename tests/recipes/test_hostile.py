"""Hostile and faulty input to the three recipes, table-driven.

Every case is a command line a user (or a hostile one) might type. Each must end with exit code
2 and exactly one line on stderr that starts with `error:`, names what is wrong and where, and
has no traceback; and nothing that was in the output directory (or in the run it read) may have
changed. The documented successes (a damaged checkpoint, kill -9 then --resume) follow the table.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.recipes.conftest import TINY, TINY_DNA, run_main

REPO = Path(__file__).resolve().parents[2]
PROMOTERS = REPO / "ddiff" / "domains" / "data" / "ecoli_promoters_train.fasta"


def _gzipped(text: str) -> bytes:
    return gzip.compress(text.encode())


FILES: dict[str, bytes | str] = {
    "bad_letter.fasta": ">ok\nACGTACGT\n>broken\nACGTAC\nGTXACG\n",
    "iupac.fasta": ">r1\nACGTNNACGT\n",
    "empty.fasta": "",
    "binary.fasta": b"\x00\x01\x02\xff binary",
    "plain.fasta.gz": ">r1\nACGT\n",  # a plain file named .gz
    "short.fasta": ">a\nACGT\n>b\nACGTACGT\n",
    "genome.fasta": ">chr\n" + "ACGT" * 400 + "\n",
    "unequal.jaspar": ">m\nA [ 1 2 3 ]\nC [ 1 2 ]\nG [ 1 2 3 ]\nT [ 1 2 3 ]\n",
    "not_yaml.yaml": "graph: {kind: [absorbing\n",
    "list.yaml": "- recipe\n- dna\n",
    "no_kind.yaml": "recipe: dna\ngraph: {num_tokens: 4}\n",
    "protein_config.yaml": "recipe: protein\ndata: {min_length: 20}\n",
    "protein_bad.fasta": ">a\nMKVLAAGHWRST\n>b\nMKV1LA\n",
    "proteins_short.fasta": ">a\nMKV\n>b\nMKVL\n",
    "text_binary.txt": b"\xff\xfe\x00 not utf-8",
    "text_empty.txt": "   \n",
    "text_tiny.txt": "Four score and seven years ago.",
    "bad_line.jsonl": '{"text": "fine"}\nnot json\n',
    "no_text.jsonl": '{"body": "no text field"}\n',
    "a_file": "I am a file",
}


@dataclass(frozen=True)
class Case:
    """One hostile command line: `{tmp}` is a scratch directory holding `FILES`, `{run}` a
    trained tiny DNA run, `{out}` an output directory that already holds files."""

    id: str
    recipe: str
    argv: tuple[str, ...]
    expected: tuple[str, ...]
    needs_run: bool = field(default=False)


CASES = [
    # -- damaged or wrong input files --------------------------------------------------------
    Case("missing-data", "dna", ("train", "--data", "{tmp}/nope.fasta"), ("nope.fasta", "no such file")),
    Case("bad-letter", "dna", ("train", "--data", "{tmp}/bad_letter.fasta"), ("bad_letter.fasta", "'broken'", "position 9 (1-based)", "'X'")),
    Case("iupac", "dna", ("train", "--data", "{tmp}/iupac.fasta"), ("iupac.fasta", "'r1'", "--set data.ambiguous=split")),
    Case("empty-fasta", "dna", ("train", "--data", "{tmp}/empty.fasta"), ("empty.fasta", "no fasta records")),
    Case("binary-fasta", "dna", ("train", "--data", "{tmp}/binary.fasta"), ("binary.fasta",)),
    Case("plain-gz", "dna", ("train", "--data", "{tmp}/plain.fasta.gz"), ("plain.fasta.gz", "not gzip-compressed")),
    Case("truncated-gz", "dna", ("train", "--data", "{tmp}/truncated.fasta.gz"), ("truncated.fasta.gz", "ends early")),
    Case("records-too-short", "dna", ("train", "--data", "{tmp}/short.fasta"), ("short.fasta", "length=150", "longest has 8")),
    Case("records-split-one-record", "dna", ("train", "--data", "{tmp}/genome.fasta", "--set", "data.length=40", "--set", "data.split=records"), ("genome.fasta", "at least 2 records", "--set data.split=coordinates")),
    Case("pwm-file-missing", "dna", ("infill", "--checkpoint", "{run}", "--motif-file", "{tmp}/nope.jaspar@10"), ("--motif-file", "nope.jaspar", "no such file"), needs_run=True),
    Case("pwm-file-unequal-rows", "dna", ("infill", "--checkpoint", "{run}", "--motif-file", "{tmp}/unequal.jaspar@10"), ("--motif-file", "unequal.jaspar", "inconsistent lengths"), needs_run=True),
    Case("protein-bad-letter", "protein", ("train", "--data", "{tmp}/protein_bad.fasta"), ("protein_bad.fasta", "'b'", "position 4 (1-based)")),
    Case("protein-too-short", "protein", ("train", "--data", "{tmp}/proteins_short.fasta"), ("proteins_short.fasta", "0 of 2 records", "data.min_length")),
    Case("protein-plain-gz", "protein", ("train", "--data", "{tmp}/plain.fasta.gz"), ("plain.fasta.gz", "not gzip-compressed")),
    Case("text-binary", "text", ("train", "--data", "{tmp}/text_binary.txt"), ("text_binary.txt", "not UTF-8")),
    Case("text-empty", "text", ("train", "--data", "{tmp}/text_empty.txt"), ("text_empty.txt", "no text")),
    Case("text-too-little", "text", ("train", "--data", "{tmp}/text_tiny.txt"), ("text_tiny.txt", "too few")),
    Case("jsonl-bad-line", "text", ("train", "--data", "{tmp}/bad_line.jsonl"), ("bad_line.jsonl", "line 2", "not JSON")),
    Case("jsonl-no-text", "text", ("train", "--data", "{tmp}/no_text.jsonl"), ("no_text.jsonl", "line 1", '"text"')),
    # -- motifs, prompts and spans -----------------------------------------------------------
    Case("motif-out-of-range", "dna", ("--motif", "TTGACA@150"), ("--motif TTGACA@150", "out of range", "0-based")),
    Case("motif-past-end", "dna", ("--motif", "TTGACA@148"), ("--motif TTGACA@148", "past the end", "0-based")),
    Case("motif-overlap", "dna", ("--motif", "TTGACA@86", "--motif", "TATAAT@90"), ("--motif TATAAT@90", "overlaps", "--motif TTGACA@86")),
    Case("motif-letter", "dna", ("--motif", "TTGXCA@86"), ("--motif TTGXCA@86", "position 4 (1-based)", "'X'")),
    Case("motif-no-position", "dna", ("--motif", "TTGACA"), ("--motif TTGACA", "@POSITION")),
    Case("motif-position-not-int", "dna", ("--motif", "TTGACA@here"), ("--motif TTGACA@here", "not an integer")),
    Case("protein-motif-past-end", "protein", ("--motif", "GAGGVGKS@250"), ("--motif GAGGVGKS@250", "past the end")),
    Case("protein-motif-stop", "protein", ("--motif", "GAG*GKS@9"), ("--motif GAG*GKS@9", "position 4 (1-based)")),
    Case("span-out-of-range", "text", ("--span", "the Union@500"), ("the Union", "out of range")),
    Case("prompt-span-overlap", "text", ("--prompt", "Mr. Speaker, Mr. Vice President", "--span", " Members@3"), ("overlaps",)),
    # -- configuration -----------------------------------------------------------------------
    Case("config-missing", "dna", ("--config", "{tmp}/nope.yaml"), ("nope.yaml", "no such file")),
    Case("config-not-yaml", "dna", ("--config", "{tmp}/not_yaml.yaml"), ("not_yaml.yaml", "not valid YAML")),
    Case("config-not-mapping", "dna", ("--config", "{tmp}/list.yaml"), ("list.yaml", "mapping of sections")),
    Case("config-no-kind", "dna", ("--config", "{tmp}/no_kind.yaml"), ("no_kind.yaml", "graph", "needs a kind", "absorbing", "hky85")),
    Case("config-of-another-recipe", "dna", ("--config", "{tmp}/protein_config.yaml"), ("protein_config.yaml", "'protein' recipe", "python -m ddiff.recipes.protein")),
    Case("set-unknown-key", "dna", ("--set", "train.max_stepz=3"), ("train.max_stepz",)),
    Case("set-no-equals", "dna", ("--set", "train.max_steps"), ("--set", "KEY=VALUE")),
    Case("set-bad-value", "dna", ("--set", "train.max_steps=many"), ("train.max_steps",)),
    Case("set-min-above-max", "protein", ("--set", "data.min_length=300"), ("data.min_length = 300", "data.max_length")),
    Case("graph-of-wrong-alphabet", "dna", ("--set", "graph.num_tokens=5"), ("4 data tokens",)),
    # -- output directories ------------------------------------------------------------------
    Case("out-is-a-file", "dna", ("--out", "{tmp}/a_file"), ("a_file", "not a directory")),
    Case("out-below-a-file", "dna", ("--out", "{tmp}/a_file/run"), ("a_file", "is a file")),
    Case("train-over-a-run", "dna", ("train", "--out", "{run}"), ("already holds a trained run", "--resume"), needs_run=True),
    Case("resume-nothing", "dna", ("train", "--resume", "--out", "{tmp}/never"), ("--resume", "no checkpoint to resume")),
    Case("samples-exist", "dna", ("sample", "--checkpoint", "{run}", "--out", "{run}"), ("already holds the samples of sample", "--overwrite"), needs_run=True),
    Case("overwrite-with-train", "dna", ("train", "--overwrite"), ("--overwrite is for sample and infill",)),
    # -- checkpoints -------------------------------------------------------------------------
    Case("no-model-in-out", "dna", ("sample",), ("no trained model",)),
    Case("checkpoint-missing", "dna", ("sample", "--checkpoint", "{tmp}/nope"), ("nope", "no such directory")),
    Case("checkpoint-is-a-file", "dna", ("sample", "--checkpoint", "{tmp}/a_file"), ("a_file", "not a directory")),
    Case("checkpoint-empty-weights", "dna", ("sample", "--checkpoint", "{tmp}/empty_weights"), ("model.safetensors", "not a readable safetensors file", "0 bytes")),
    Case("checkpoint-truncated-weights", "dna", ("sample", "--checkpoint", "{tmp}/truncated_weights"), ("model.safetensors", "not a readable safetensors file")),
    Case("checkpoint-with-train", "dna", ("train", "--checkpoint", "{run}"), ("--checkpoint is for sample",), needs_run=True),
    Case("text-checkpoint-of-dna", "text", ("sample", "--checkpoint", "{run}"), ("'dna' recipe", "python -m ddiff.recipes.dna"), needs_run=True),
    Case("all-checkpoints-damaged", "dna", ("train", "--resume", "--out", "{tmp}/damaged_run"), ("no intact checkpoint", "last.ckpt", "step=20.ckpt"), needs_run=True),
    # -- options that cannot apply -----------------------------------------------------------
    Case("graph-with-sample", "dna", ("sample", "--checkpoint", "{run}", "--graph", "uniform"), ("--graph applies to training",), needs_run=True),
    Case("max-steps-with-evaluate", "dna", ("evaluate", "--checkpoint", "{run}", "--max-steps", "5"), ("--max-steps applies to training",), needs_run=True),
    Case("resume-with-infill", "dna", ("infill", "--checkpoint", "{run}", "--resume"), ("--resume applies to training",), needs_run=True),
    Case("data-with-sample", "dna", ("sample", "--checkpoint", "{run}", "--data", "{tmp}/genome.fasta"), ("--data is for train and evaluate",), needs_run=True),
    Case("motif-with-sample", "dna", ("sample", "--checkpoint", "{run}", "--motif", "ACGT@0"), ("--motif applies to infill",), needs_run=True),
    Case("motif-file-with-train", "dna", ("train", "--motif-file", "{tmp}/unequal.jaspar@0"), ("--motif-file applies to infill",)),
    Case("prompt-with-sample", "text", ("sample", "--prompt", "Hello"), ("--prompt applies to infill",)),
    # -- guidance (issue 12): the labelled run's own errors are in test_guided.py ---------------
    Case("label-on-unlabelled-model", "dna", ("sample", "--checkpoint", "{run}", "--label", "promoter"), ("--label promoter", "trained without labels"), needs_run=True),
    Case("negative-guidance-weight", "dna", ("sample", "--checkpoint", "{run}", "--label", "promoter", "--guidance-weight", "-1"), ("--guidance-weight -1", "must be >= 0"), needs_run=True),
    Case("guidance-without-label", "dna", ("sample", "--checkpoint", "{run}", "--guidance", "free"), ("give --label NAME",), needs_run=True),
    Case("label-with-train", "dna", ("train", "--label", "promoter"), ("--label applies to sample and infill",)),
    Case("label-with-evaluate", "dna", ("evaluate", "--checkpoint", "{run}", "--guidance-weight", "2"), ("--guidance-weight applies to sample and infill",), needs_run=True),
    Case("label-not-in-data", "dna", ("--label", "promoter"), ("--label promoter", "not a label of the training data", "the data carry none")),
    Case("labelled-user-data", "dna", ("train", "--data", "{tmp}/genome.fasta", "--set", "data.labelled=true"), ("labelled", "unset data.path")),
    Case("net-labels-without-labelled-data", "dna", ("train", "--set", "net.labels=[a, b]"), ("net.labels", "data.labelled: true")),
    Case("position-table-too-short", "dna", ("train", "--set", "net={{kind: conv, max_length: 100}}"), ("net.max_length = 100", "data.length = 150")),
    Case("labelled-with-wrong-names", "dna", ("train", "--set", "data.labelled=true", "--set", "net.labels=[gene, promoter]"), ("net.labels", "['promoter', 'gene']")),
]  # fmt: skip


def _snapshot(*directories: Path) -> dict[str, bytes]:
    return {
        str(p): p.read_bytes()
        for d in directories
        if d.is_dir()
        for p in sorted(d.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory, dna_run: Path) -> Path:
    """The files of `FILES`, damaged runs and weights, made once."""
    tmp = tmp_path_factory.mktemp("hostile")
    for name, content in FILES.items():
        path = tmp / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    whole = gzip.compress(PROMOTERS.read_bytes())
    (tmp / "truncated.fasta.gz").write_bytes(whole[: len(whole) // 3])
    for name, keep in (("empty_weights", 0), ("truncated_weights", 1000)):
        shutil.copytree(dna_run / "pretrained", tmp / name)
        weights = tmp / name / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[:keep])
    damaged = tmp / "damaged_run"
    shutil.copytree(dna_run, damaged)
    for ckpt in (damaged / "checkpoints").glob("*.ckpt"):
        ckpt.write_bytes(ckpt.read_bytes()[:500])
    return tmp


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input_is_one_line_and_changes_nothing(
    case: Case, scratch: Path, dna_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    argv = [a.format(tmp=scratch, run=dna_run, out=out) for a in case.argv]
    if "--out" not in argv:
        argv += ["--out", str(out)]
    watched = [out, dna_run, scratch] if case.needs_run else [out, scratch]
    before = _snapshot(*watched)
    code, _, err = run_main(case.recipe, [*argv, "--no-progress"], capsys)
    lines = err.strip().splitlines()
    assert code == 2, (code, err)
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for text in case.expected:
        assert text in lines[0], (text, lines[0])
    assert _snapshot(*watched) == before


def test_the_table_has_forty_cases_across_the_three_recipes() -> None:
    assert len(CASES) >= 40
    assert {c.recipe for c in CASES} == {"dna", "protein", "text"}


# -- documented successes ------------------------------------------------------------------------


def test_damaged_last_checkpoint_resumes_from_the_older_one(
    dna_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    shutil.copytree(dna_run, run)
    last = run / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[:2000])  # a write cut short
    code, _, err = run_main("dna", ["train", "--resume", "--out", str(run), "--max-steps", "24", "--no-progress"], capsys)  # fmt: skip
    assert code == 0, err
    warning = next(line for line in err.splitlines() if "damaged" in line)
    assert warning.startswith("warning: ") and "last.ckpt" in warning and "step=20.ckpt" in warning
    record = json.loads((run / "recipe.json").read_text())["training"]
    assert record["steps"] == 24 and record["sessions"] == 2


def test_protein_recipe_warns_on_nucleotide_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fasta = tmp_path / "genes.fasta"
    fasta.write_text("".join(f">g{i}\n{'ACGT' * 20}{'GATTACA' * (i + 1)}\n" for i in range(40)))
    argv = ["train", "--data", str(fasta), "--out", str(tmp_path / "run"), *TINY]
    code, _, err = run_main("protein", [*argv, "--set", "data.min_length=20", "--max-steps", "2", "--set", "train.batch_size=8"], capsys)  # fmt: skip
    assert code == 0, err
    assert any(line.startswith("warning: ") and "nucleotide" in line for line in err.splitlines())


def test_unwritable_out_fails_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read-only filesystem (simulated: this test may run as root, who can write anywhere)."""
    import tempfile

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(tempfile, "TemporaryFile", refuse)
    code, out, err = run_main("dna", ["--out", str(tmp_path / "ro"), "--no-progress"], capsys)
    assert code == 2
    assert err.strip() == (
        f"error: --out {tmp_path / 'ro'}: cannot write there (Read-only file system); choose "
        "another --out"
    )
    assert "train" not in out  # no stage started
    assert not (tmp_path / "ro" / "recipe.json").exists()  # nothing of the run was written


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_kill_9_during_training_then_resume(tmp_path: Path) -> None:
    out = tmp_path / "run"
    argv = [sys.executable, "-m", "ddiff.recipes.dna", "train", "--out", str(out), *TINY_DNA]
    argv += ["--max-steps", "400", "--set", "train.checkpoint_every_n_steps=20"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 120
    while not list((out / "checkpoints").glob("step=*.ckpt")) and time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"training ended before the first checkpoint: {proc.stderr.read()!r}")  # type: ignore[union-attr]
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "pretrained").exists()  # killed before it finished
    resumed = subprocess.run(
        [*argv[:4], "--out", str(out), "--resume", "--no-progress"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    record = json.loads((out / "recipe.json").read_text())["training"]
    assert record["steps"] == 400
    assert (out / "pretrained" / "model.safetensors").is_file()
