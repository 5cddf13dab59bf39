"""docs/extending.md: its examples run as written and pass (or, where the page says so, fail)
the shipped contract checks of `ddiff.testing`."""

from __future__ import annotations

import pytest
import torch

from ddiff import LogLinearSchedule
from ddiff.testing import check_sampler
from ddiff.testing.contracts import tiny_graphs
from tests._markdown import python_blocks

PAGE = "extending.md"


def run(blocks: list[str]) -> dict[str, object]:
    namespace: dict[str, object] = {"__name__": "extending"}
    for code in blocks:
        exec(compile(code, f"docs/{PAGE}", "exec"), namespace)
    return namespace


def test_cyclic_graph_passes_the_graph_contract(capsys: pytest.CaptureFixture[str]) -> None:
    ns = run(python_blocks(PAGE, "Example: a cyclic graph"))  # check_graph(CyclicGraph(4)) runs
    printed = capsys.readouterr().out.splitlines()
    # The broken variant is caught, with the message the page shows.
    assert printed[0].startswith("rate matrix check failed for NoDiagonal(num_tokens=4"), printed
    assert "column 0 of Q sums to 1, not 0" in printed[0]
    # The sampler converges on the new graph: TV after 4 and after 64 steps.
    (steps_4, tv_4), (steps_64, tv_64) = (line.split() for line in printed[1:3])
    assert (steps_4, steps_64) == ("4", "64")
    assert float(tv_64) < 0.03 < float(tv_4), printed
    limit = ns["graph"].limit_distribution()  # type: ignore[attr-defined]
    assert torch.allclose(limit, torch.full((4,), 0.25, dtype=torch.float64))  # "uniform"


def test_power_schedule_passes_the_schedule_contract() -> None:
    ns = run(python_blocks(PAGE, "A noise schedule"))  # the class, then check_schedule(...)
    with pytest.raises(ValueError, match="power >= 1"):
        ns["PowerSchedule"](power=0.5)  # type: ignore[operator]


def test_bag_of_tokens_net_passes_the_score_net_contract() -> None:
    run(python_blocks(PAGE, "A score network"))  # the class, then check_score_net(...)


def test_plain_euler_sampler_passes_the_sampler_contract() -> None:
    signature, sampler_class, check = python_blocks(PAGE, "A sampler")
    assert signature.startswith("def step(")  # the signature alone, not runnable
    assert check.strip().startswith("from ddiff.testing import check_sampler")
    ns = run([sampler_class])
    # The page's check_sampler(PlainEulerSampler) takes ~40 s on three graphs at 128 steps and
    # 10,000 samples; here the non-reversible dense graph only, fewer samples and steps, and a
    # tolerance above their Monte Carlo floor (about 0.03 for 2,000 samples of 9 sequences).
    sampler = ns["PlainEulerSampler"](tiny_graphs()["dense"], LogLinearSchedule())  # type: ignore[operator]
    check_sampler(sampler, steps=32, num_samples=2000, tolerance=0.08)
