"""`tests.testing.registry`: contract suites run over every concrete class, and miss none."""

from __future__ import annotations

import pytest

import ddiff.graphs.uniform
from ddiff import AbsorbingGraph, DenseGraph, Graph, NoiseSchedule, UniformGraph
from ddiff.schedules.base import SurvivalSchedule
from tests.testing import registry


def test_finds_the_concrete_classes_at_any_depth() -> None:
    assert registry.concrete_subclasses(Graph) == [AbsorbingGraph, DenseGraph, UniformGraph]
    schedules = registry.concrete_subclasses(NoiseSchedule)
    assert SurvivalSchedule not in schedules  # abstract
    assert {c.__name__ for c in schedules} >= {"LogLinearSchedule", "CosineSchedule"}  # depth 2


def test_classes_outside_ddiff_are_left_out() -> None:
    class LocalGraph(UniformGraph):
        pass

    assert LocalGraph not in registry.concrete_subclasses(Graph)


def test_a_new_class_without_examples_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    class ShippedGraph(UniformGraph):
        pass

    ShippedGraph.__module__, ShippedGraph.__qualname__ = ddiff.graphs.uniform.__name__, "Shipped"
    monkeypatch.setattr(ddiff.graphs.uniform, "Shipped", ShippedGraph, raising=False)
    examples = {AbsorbingGraph: {"a": AbsorbingGraph(2)}, DenseGraph: {}, UniformGraph: {}}
    assert registry.missing(Graph, examples) == [
        "ddiff.graphs.dense.DenseGraph",
        "ddiff.graphs.uniform.Shipped",
        "ddiff.graphs.uniform.UniformGraph",
    ]
    examples[ShippedGraph] = {"shipped": ShippedGraph(3)}
    assert list(registry.implementations(Graph, examples)) == ["a", "shipped"]
