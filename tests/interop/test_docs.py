"""docs/interop.md: its example runs as written (on a checkpoint it builds, nothing downloaded)."""

from __future__ import annotations

import math

import pytest

from tests._markdown import python_blocks


def test_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    namespace: dict[str, object] = {"__name__": "interop_docs"}
    for block in python_blocks("interop.md", "Example"):
        exec(compile(block, "docs/interop.md", "exec"), namespace)
    first, second = capsys.readouterr().out.splitlines()
    assert first == (
        "AbsorbingGraph(num_tokens=7, num_states=8) LogLinearSchedule(survival=0.001) "
        "AnalyticSampler"
    )
    assert second.endswith("bits/token (bound, 8 times per sequence, 4 sequences)"), second
    estimate = namespace["estimate"]
    assert math.isfinite(estimate.bits_per_token)  # type: ignore[attr-defined]
    x = namespace["x"]
    assert x.shape == (4, 16) and bool((x < 7).all())  # type: ignore[attr-defined]
