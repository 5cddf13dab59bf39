"""Sampling with a GPT-2 sized vocabulary (S = 50,257) never builds an S x S matrix."""

from __future__ import annotations

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from ddiff import AbsorbingGraph, Graph, UniformGraph
from ddiff.conditioning import Condition
from ddiff.samplers import AnalyticSampler, EulerSampler, Sampler, TauLeapingSampler
from ddiff.schedules import LogLinearSchedule

S = 50_257


@pytest.mark.parametrize("sampler_cls", [EulerSampler, TauLeapingSampler, AnalyticSampler])
@pytest.mark.parametrize(
    "graph", [UniformGraph(S), AbsorbingGraph(S - 1)], ids=["uniform", "absorbing"]
)
def test_no_dense_matrix_with_a_large_vocabulary(
    sampler_cls: type[Sampler], graph: Graph, monkeypatch: pytest.MonkeyPatch
) -> None:
    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("a dense S x S member was called")

    monkeypatch.setattr(graph, "rate_matrix", forbidden)
    monkeypatch.setattr(graph, "kernel", forbidden)
    batch, length = 2, 6
    g = torch.Generator().manual_seed(0)
    table = torch.randn(length, S, generator=g) - 8.0  # small scores: a few tokens move per step

    def score_fn(x_t: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return table.expand(x_t.shape[0], length, S)

    sampler = sampler_cls(graph, LogLinearSchedule())
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        x = sampler.sample(score_fn, batch, length, 3, condition=Condition.at({0: 7}), generator=g)
    assert x.shape == (batch, length) and int(x.max()) < graph.num_tokens
    largest = max(event.cpu_memory_usage for event in prof.events())
    # One [B, L, S] float64 tensor is 4.8 MB; an S x S float32 matrix would be 10 GB.
    assert largest < 64 * batch * length * S, largest
