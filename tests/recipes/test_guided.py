"""The DNA recipe's labelled runs (issue 12): a label-conditioned model and its noisy
classifier, guided `sample` and `infill`, the judged guidance comparison of `evaluate`, and the
errors of guided commands. Tiny budgets: these check the wiring, not the quality (the quality
is measured in docs/recipes/dna.md)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from ddiff import AbsorbingGraph
from ddiff.domains import dna
from ddiff.recipes import guided
from tests.recipes.conftest import TINY_DNA, run_main


def test_a_labelled_run_trains_the_model_and_the_classifier(dna_labelled_run: Path) -> None:
    record = json.loads((dna_labelled_run / "recipe.json").read_text())
    assert record["config"]["net"]["labels"] == list(dna.LABELS)
    assert (
        record["data"]["labels"]["promoter"][0] > 1000
        and record["data"]["labels"]["gene"][0] > 1000
    )
    clf = record["classifier"]
    assert clf["labels"] == list(dna.LABELS) and clf["steps"] == 10
    assert set(clf["heldout_accuracy_by_t"]) == {"0.1", "0.3", "0.5", "0.7", "0.9"}
    assert (dna_labelled_run / "classifier" / "model.safetensors").is_file()
    net = guided.load_classifier(dna_labelled_run, dna.LABELS, AbsorbingGraph(4))
    assert net.num_labels == 2 and not net.training


def test_evaluate_judges_every_label_kind_and_weight(dna_labelled_run: Path) -> None:
    m = json.loads((dna_labelled_run / "metrics.json").read_text())["guidance"]
    keys = [(r["label"], r["kind"], r["weight"]) for r in m["rows"]]
    assert keys == [
        (label, kind, w) for label in dna.LABELS for kind in ("free", "classifier") for w in (0, 2)
    ]
    assert set(m["judges"]) == set(guided.JUDGES)
    for key, judge in m["judges"].items():
        for r in m["rows"]:
            assert 0.0 <= r[f"label_rate_{key}"] <= 1.0 and 0.0 < r["js_k3"] < 1.0
        # weight 0 is one unconditional set: the two labels' rates at weight 0 sum to 1
        zero = {r["label"]: r[f"label_rate_{key}"] for r in m["rows"] if r["weight"] == 0}
        assert zero["promoter"] + zero["gene"] == pytest.approx(1.0)
        assert set(judge["accuracy_on_heldout"]) == set(dna.LABELS)
        assert all(a > 0.7 for a in judge["accuracy_on_heldout"].values()), judge
        assert [(v["label"], v["kind"]) for v in m["verdict"][key]] == [
            (label, kind) for label in dna.LABELS for kind in ("free", "classifier")
        ]
    report = (dna_labelled_run / "report.md").read_text()
    assert "## Guidance: generating one label" in report and "figures/guidance.png" in report
    assert m["classifier"] == "a trained ConvClassifierNet" and m["classifier"] in report
    assert (dna_labelled_run / "figures" / "guidance.png").stat().st_size > 1000


@pytest.mark.parametrize("kind", ["free", "classifier"])
def test_guided_sample_and_infill(
    kind: str, dna_labelled_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    common = ["--checkpoint", str(dna_labelled_run), "--out", str(out), "--no-progress"]
    guide = ["--label", "gene", "--guidance", kind, "--guidance-weight", "2"]
    code, _, err = run_main("dna", ["sample", *common, *guide], capsys)
    assert code == 0, err
    record = json.loads((out / "samples.json").read_text())
    assert record["guidance"]["label"] == "gene" and record["guidance"]["kind"] == kind
    assert record["guidance"]["weight"] == 2.0
    code, _, err = run_main("dna", ["infill", *common, *guide, "--motif", "ATG@-3"], capsys)
    assert code == 0, err
    rows = np.load(out / "infill_tokens.npy")
    assert (rows[:, -3:] == dna.encode("ATG").numpy()).all()


def test_the_unconditional_samples_of_a_labelled_model_use_the_null_label(
    dna_labelled_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --label, sample draws from the unconditional model; --guidance-weight 0 with
    a label is the same law and, with the same seed, the same samples."""
    a, b = tmp_path / "a", tmp_path / "b"
    common = ["sample", "--checkpoint", str(dna_labelled_run), "--no-progress"]
    assert run_main("dna", [*common, "--out", str(a)], capsys)[0] == 0
    guide = ["--label", "promoter", "--guidance-weight", "0"]
    assert run_main("dna", [*common, "--out", str(b), *guide], capsys)[0] == 0
    assert torch.equal(
        torch.from_numpy(np.load(a / "samples_tokens.npy")),
        torch.from_numpy(np.load(b / "samples_tokens.npy")),
    )
    assert "guidance" not in json.loads((a / "samples.json").read_text())


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--label", "enhancer"], ["--label enhancer", "unknown label 'enhancer'", "['promoter', 'gene']"]),
        (["--label", "gene", "--guidance", "classifier"], ["--guidance classifier", "has none", "--guidance free"]),
    ],
    ids=["unknown-label", "no-classifier"],
)  # fmt: skip
def test_guided_errors_are_one_line(
    argv: list[str],
    expected: list[str],
    dna_labelled_run: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run = tmp_path / "run"
    shutil.copytree(dna_labelled_run, run, ignore=shutil.ignore_patterns("classifier"))
    out = tmp_path / "out"
    code, _, err = run_main(
        "dna",
        ["sample", "--checkpoint", str(run), "--out", str(out), "--no-progress", *argv],
        capsys,
    )
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    for text in expected:
        assert text in lines[0], (text, lines[0])
    assert not out.exists() or not any(out.iterdir())


def test_a_label_the_data_lack_fails_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    argv = ["--out", str(out), "--set", "data.labelled=true", "--label", "enhancer"]
    code, _, err = run_main("dna", argv, capsys)
    assert code == 2 and "the data's labels are ['promoter', 'gene']" in err
    assert not (out / "checkpoints").exists()


def test_the_shipped_labelled_config_is_the_defaults_plus_labels() -> None:
    from ddiff.recipes.dna import RECIPE, DnaRecipeConfig

    repo = Path(__file__).resolve().parents[2]
    config = DnaRecipeConfig.from_yaml(repo / "recipes" / "dna-labelled.yaml")
    assert config.data.labelled and config.net.labels == dna.LABELS
    default = RECIPE.default_config()
    assert config.net == default.net.model_copy(update={"labels": dna.LABELS})
    for section in ("graph", "schedule", "optim", "train", "sampling", "evaluate"):
        assert getattr(config, section) == getattr(default, section), section
    # Its own guidance settings: the exact mode and the codon-phase Markov chains.
    assert config.guidance.mode == "exact"
    assert config.guidance.sweep_weights == default.guidance.sweep_weights == (0, 1, 1.5, 2, 4)
    clf = config.guidance.classifier
    assert (clf.kind, clf.order, clf.period) == ("markov", 2, 3)
    assert clf.model_copy(update={"kind": "conv", "period": 1}) == default.guidance.classifier


def test_a_markov_classifier_is_fitted_saved_and_guides(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`guidance.classifier.kind: markov`: counted chains instead of a trained network."""
    from ddiff.guidance import MarkovClassifier

    out = tmp_path / "run"
    args = [
        "train", "--out", str(out), *TINY_DNA,
        "--set", "data.labelled=true",
        "--set", "guidance.classifier.kind=markov",
        "--set", "guidance.classifier.period=3",
    ]  # fmt: skip
    code, _, err = run_main("dna", args, capsys)  # chains have no gradient: exact mode only
    assert code == 2 and "markov needs mode: exact" in err and "Traceback" not in err
    code, _, err = run_main("dna", [*args, "--set", "guidance.mode=exact"], capsys)
    assert code == 0, err
    clf = json.loads((out / "recipe.json").read_text())["classifier"]
    assert clf["sizes"] == {"kind": "markov", "order": 2, "period": 3} and clf["steps"] == 0
    # real chains, not a tiny network: the noisy posterior is informative at low noise
    assert clf["heldout_accuracy_by_t"]["0.1"] > 0.85
    assert clf["heldout_accuracy_by_t"]["0.1"] > clf["heldout_accuracy_by_t"]["0.9"]
    loaded = guided.load_classifier(out, dna.LABELS, AbsorbingGraph(4))
    assert isinstance(loaded, MarkovClassifier) and (loaded.order, loaded.period) == (2, 3)
    sampled = tmp_path / "sampled"
    common = ["--checkpoint", str(out), "--out", str(sampled), "--no-progress"]
    guide = ["--label", "gene", "--guidance", "classifier", "--guidance-weight", "1"]
    code, _, err = run_main("dna", ["sample", *common, *guide], capsys)
    assert code == 0, err
    assert json.loads((sampled / "samples.json").read_text())["guidance"]["kind"] == "classifier"
    # tables that do not match the recorded sizes: one clear error, not a traceback
    config = out / "classifier" / "config.json"
    record = json.loads(config.read_text())
    record["sizes"]["order"] = 3
    config.write_text(json.dumps(record))
    with pytest.raises(guided.RecipeError, match="not a readable classifier"):
        guided.load_classifier(out, dna.LABELS, AbsorbingGraph(4))
