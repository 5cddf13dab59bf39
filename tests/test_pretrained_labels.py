"""Label sets in configurations and pretrained exports: recorded, checked, and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from ddiff.config import RunConfig
from ddiff.pretrained import CONFIG_NAME, load_pretrained, save_pretrained


def config(labels: list[str] | None = None, **data: object) -> RunConfig:
    net: dict[str, object] = {
        "kind": "transformer",
        "dim": 32,
        "depth": 1,
        "heads": 2,
        "cond_dim": 32,
    }
    if labels is not None:
        net["labels"] = labels
    raw: dict[str, object] = {
        "graph": {"kind": "absorbing", "num_tokens": 4},
        "schedule": {"kind": "loglinear", "survival": 0.0},
        "net": net,
        "train": {"max_steps": 1},
    }
    if data:
        raw["data"] = data
    return RunConfig.model_validate(raw)


def test_net_labels_build_a_labelled_network_and_none_builds_the_old_one() -> None:
    c = config(["promoter", "gene"])
    assert c.net.num_labels == 2
    torch.manual_seed(0)
    labelled = c.net.build(c.graph.build())
    torch.manual_seed(0)
    plain = config().net.build(c.graph.build())
    assert labelled.num_labels == 2 and plain.num_labels == 0
    assert "label_embedding.weight" not in plain.state_dict()


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ([], "one or more non-empty label names"),
        (["a", "a"], "repeated: \\['a'\\]"),
        ([" a"], "without surrounding spaces"),
    ],
)
def test_bad_label_names_are_refused(labels: list[str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        config(labels)


def test_labelled_data_needs_net_labels(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.zeros((8, 4), dtype=np.int64))
    np.save(tmp_path / "y.npy", np.zeros(8, dtype=np.int64))
    with pytest.raises(
        ValidationError, match=r"data\.train_labels is set but the network has no labels"
    ):
        config(
            None, kind="npy", train=str(tmp_path / "x.npy"), train_labels=str(tmp_path / "y.npy")
        )
    c = config(
        ["a", "b"], kind="npy", train=str(tmp_path / "x.npy"), train_labels=str(tmp_path / "y.npy")
    )
    assert c.data is not None
    dm = c.data.build(batch_size=4)
    dm.setup("fit")
    assert next(iter(dm.train_dataloader())).labels is not None


def test_pretrained_records_and_checks_the_label_set(tmp_path: Path) -> None:
    c = config(["promoter", "gene"])
    torch.manual_seed(0)
    net = c.net.build(c.graph.build())
    model = load_pretrained(save_pretrained(net, tmp_path / "m", c))
    assert model.labels == ("promoter", "gene") and model.label_index("gene") == 1
    with pytest.raises(
        ValueError, match="unknown label 'enhancer'; this model knows \\['promoter', 'gene'\\]"
    ):
        model.label_index("enhancer")
    # A configuration with another label set is refused when loading.
    path = tmp_path / "m" / CONFIG_NAME
    raw = json.loads(path.read_text())
    raw["net"]["labels"] = ["gene", "promoter"]
    path.write_text(json.dumps(raw))
    with pytest.raises(ValueError, match="trained with the labels \\['promoter', 'gene'\\]"):
        load_pretrained(tmp_path / "m")
    # Saving a network with a configuration that disagrees on the labels is refused.
    with pytest.raises(ValueError, match="the network has 2 labels but the configuration names 0"):
        save_pretrained(net, tmp_path / "n", config())


def test_unlabelled_models_have_no_labels_and_say_so(tmp_path: Path) -> None:
    c = config()
    torch.manual_seed(0)
    model = load_pretrained(save_pretrained(c.net.build(c.graph.build()), tmp_path / "m", c))
    assert model.labels == ()
    with pytest.raises(
        ValueError, match="trained without labels, so it cannot be guided to 'gene'"
    ):
        model.label_index("gene")
