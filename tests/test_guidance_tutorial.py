"""docs/concepts/guidance.md: the tutorial runs as written, and guidance steers the samples."""

from __future__ import annotations

import re

import pytest
import torch

from tests._markdown import python_blocks

PAGE = "concepts/guidance.md"


def test_tutorial_trains_and_guides(capsys: pytest.CaptureFixture[str]) -> None:
    (code,) = python_blocks(PAGE, "Tutorial: train a conditional model and guide it")
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # faster than two threads on a shared 2-core machine
    try:
        exec(compile(code, f"docs/{PAGE}", "exec"), {"__name__": "tutorial"})
    finally:
        torch.set_num_threads(before)
    printed = capsys.readouterr().out
    print(printed)
    rates = [float(r) for r in re.findall(r"weight \S+: ([0-9.]+) of the samples", printed)]
    assert len(rates) == 3, printed
    # Weight 1 steers towards label 1 clearly; weight 2 at least as much.
    assert rates[1] > rates[0] + 0.1 and rates[2] >= rates[1] - 0.02, rates
