"""docs/getting-started.md trains and samples a DNA model: run its Python code as written.

The page's numbers (200 steps, 8 samples of 32 bases) are small so that this takes about 20 s
on a loaded 2-core CPU; it checks the outcomes the page states, so the page cannot rot.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests._markdown import python_blocks


def test_getting_started_trains_and_samples_dna(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (code,) = python_blocks("getting-started.md", "Train and sample a DNA model from Python")
    monkeypatch.chdir(tmp_path)  # anything the code writes lands here
    threads = torch.get_num_threads()
    namespace: dict[str, object] = {"__name__": "getting_started"}
    try:
        with torch.random.fork_rng(devices=[]):  # the page seeds torch's global generator
            exec(compile(code, "docs/getting-started.md", "exec"), namespace)
    finally:
        torch.set_num_threads(threads)  # the page sets one thread
    samples, letters = namespace["samples"], namespace["letters"]
    assert isinstance(samples, torch.Tensor) and samples.shape == (8, 32)
    assert isinstance(letters, list) and len(letters) == 8
    assert all(len(s) == 32 and set(s) <= set("ACGT") for s in letters), letters
    before, after = namespace["before"], namespace["after"]
    assert isinstance(before, float) and isinstance(after, float)
    assert after < before, (before, after)  # training lowered the held-out bound
    assert after < 2.0  # and took it below uniform guessing (2 bits per base)
