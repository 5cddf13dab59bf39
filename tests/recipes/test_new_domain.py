"""docs/extending.md, "A domain": the toy coin domain runs as a recipe from its one module, and
every recipe's command line comes from its task."""

from __future__ import annotations

import importlib
import json
import sys
import types
from pathlib import Path

import pytest

from tests._markdown import python_blocks
from tests.recipes.conftest import TINY


def _coin_module() -> dict[str, object]:
    """The page's module, imported as `coin` (pydantic resolves annotations in a real module)."""
    (code,) = python_blocks("extending.md", "A domain")
    module = types.ModuleType("coin")
    sys.modules["coin"] = module
    try:
        exec(compile(code, "docs/extending.md", "exec"), module.__dict__)
    finally:
        del sys.modules["coin"]
    return module.__dict__


def test_the_toy_domain_runs_every_stage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = _coin_module()["RECIPE"]
    out = tmp_path / "coin"
    code = recipe.run(["--out", str(out), *TINY, "--set", "train.batch_size=16"])  # type: ignore[attr-defined]
    assert code == 0, capsys.readouterr().err
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["likelihood"]) >= {"diffusion_bound", "markov1_nll", "bound_minus_markov1"}
    assert 0.0 < metrics["likelihood"]["diffusion_bound"]["bits_per_token"] < 2.0
    assert set(metrics["sets"]) == {
        "diffusion samples",
        "real (training windows)",
        "order-1 Markov samples",
        "shuffled held-out",
    }
    # The baseline chain, fitted on the flips, reproduces the source's switch rate (1 - 0.9).
    assert abs(metrics["sets"]["order-1 Markov samples"]["switch_rate"] - 0.1) < 0.05
    assert metrics["infill"]["all_exact"] and metrics["infill"]["num_exact"] == 8
    rows = (out / "infill.txt").read_text().splitlines()
    assert len(rows) == 8 and all(row[10:16] == "HTHTHT" for row in rows)
    assert (out / "report.md").read_text().startswith("# Coin recipe report")


def test_the_toy_domain_rejects_a_bad_motif(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = _coin_module()["RECIPE"]
    capsys.readouterr()
    code = recipe.run(["--motif", "HXH@3", "--out", str(tmp_path / "o")])  # type: ignore[attr-defined]
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert (
        err
        == "error: --motif HXH@3: in the motif, letter 'X' at position 2 (1-based) is not H or T"
    )
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("name", ["dna", "protein", "text"])
def test_help_comes_from_the_task(name: str) -> None:
    module = importlib.import_module(f"ddiff.recipes.{name}")
    task = module.TASK
    text = module.RECIPE.parser().format_help()
    assert text.startswith(f"usage: python -m ddiff.recipes.{name}")
    assert task.description.split("\n")[0][:40] in " ".join(text.split())
    assert task.motif_option[0] in text
    for graph in task.graph_choices:
        assert graph in text
