"""The implementations a contract suite runs over, found from `__subclasses__()`, not listed.

Each contract suite (`tests/{graphs,schedules,nets,samplers}/test_contract.py`) keeps examples
per concrete class and runs over `implementations(Base, EXAMPLES)`: every concrete subclass of
`Base` defined in ddiff, with its examples. A class without examples is not silently skipped:
each suite has a test that fails naming it (`missing`).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import sys
from collections.abc import Mapping
from functools import cache
from typing import TypeVar

import ddiff

V = TypeVar("V")


@cache
def _import_ddiff() -> None:
    """Import every module of ddiff, so that every class defined in it is a known subclass."""
    for module in pkgutil.walk_packages(ddiff.__path__, prefix="ddiff."):
        if module.name.rsplit(".", 1)[-1] != "__main__":  # running it would start a program
            importlib.import_module(module.name)


def concrete_subclasses(base: type) -> list[type]:
    """Every concrete (non-abstract) subclass of `base` defined in ddiff, at any depth, by name.

    Classes defined elsewhere (tests, doctests, documentation examples, user code) are left out.
    """
    _import_ddiff()
    found: set[type] = set()
    stack = [base]
    while stack:
        for sub in stack.pop().__subclasses__():
            if sub not in found:
                found.add(sub)
                stack.append(sub)
    return sorted((c for c in found if _shipped(c)), key=lambda c: c.__qualname__)


def _shipped(cls: type) -> bool:
    """Concrete and defined at the top level of a ddiff module; a class from a doctest claims
    its module's name but is not an attribute of it."""
    module = sys.modules.get(cls.__module__)
    return (
        cls.__module__.split(".")[0] == "ddiff"
        and getattr(module, cls.__qualname__, None) is cls
        and not inspect.isabstract(cls)
    )


def implementations(base: type, examples: Mapping[type, Mapping[str, V]]) -> dict[str, V]:
    """The examples of every concrete subclass of `base` in ddiff, name -> example."""
    out: dict[str, V] = {}
    for cls in concrete_subclasses(base):
        for name, example in examples.get(cls, {}).items():
            if name in out:
                raise ValueError(f"example name {name!r} is used twice")
            out[name] = example
    return out


def missing(base: type, examples: Mapping[type, Mapping[str, object]]) -> list[str]:
    """The concrete subclasses of `base` in ddiff that have no examples (should be none)."""
    return [
        f"{c.__module__}.{c.__qualname__}" for c in concrete_subclasses(base) if not examples.get(c)
    ]
