"""Helpers for the training tests: tiny networks and modules that train in milliseconds."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from ddiff import AbsorbingGraph, Graph, LogLinearSchedule
from ddiff.nets import (
    LogScoreParameterization,
    ScaledAbsorbingParameterization,
    TransformerScoreNet,
)
from ddiff.training import DiffusionModule, OptimSettings


def tiny_net(graph: Graph, dim: int = 32, depth: int = 1) -> TransformerScoreNet:
    param = (
        ScaledAbsorbingParameterization(graph)
        if isinstance(graph, AbsorbingGraph)
        else LogScoreParameterization()
    )
    return TransformerScoreNet(
        graph.num_states, dim=dim, depth=depth, heads=2, cond_dim=dim, parameterization=param
    )


def tiny_module(graph: Graph | None = None, **optim: float | None) -> DiffusionModule:
    graph = AbsorbingGraph(4) if graph is None else graph
    torch.manual_seed(0)
    settings = OptimSettings(**{"lr": 1e-3, "warmup_steps": 2, "ema_decay": 0.9, **optim})  # type: ignore[arg-type]
    return DiffusionModule(graph, LogLinearSchedule(survival=0.0), tiny_net(graph), settings)


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Training on one thread: on a busy 2-core machine two threads can be 10x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
