"""Every name in every `__all__` of every ddiff module imports, and the top level is curated."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import ddiff

MODULES = sorted(
    m.name
    for m in pkgutil.walk_packages(ddiff.__path__, prefix="ddiff.")
    if not m.name.split(".")[-1].startswith("_")
)


def test_modules_found() -> None:
    assert {"ddiff.graphs", "ddiff.schedules", "ddiff.losses", "ddiff.testing"} <= set(MODULES)


@pytest.mark.parametrize("name", ["ddiff", *MODULES])
def test_every_name_in_all_imports(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", [])
    assert len(exported) == len(set(exported)), "duplicate names in __all__"
    for attr in exported:
        assert hasattr(module, attr), f"{name}.__all__ lists {attr!r} but it is not defined"


def test_top_level_api() -> None:
    from ddiff import AbsorbingGraph, DenseGraph, Graph, NoiseSchedule, UniformGraph  # noqa: F401

    assert issubclass(AbsorbingGraph, Graph) and issubclass(UniformGraph, Graph)
