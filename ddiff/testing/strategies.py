"""Hypothesis strategies for graphs, rate matrices, schedules and token batches.

Use them to run ddiff's invariants against your own components, e.g.::

    from hypothesis import given
    from ddiff.testing import strategies as dst

    @given(dst.graphs())
    def test_columns_sum_to_zero(graph):
        assert graph.rate_matrix().sum(0).abs().max() < 1e-9
"""

from __future__ import annotations

import torch
from hypothesis import strategies as st

from ddiff.graphs import AbsorbingGraph, DenseGraph, Graph, UniformGraph
from ddiff.schedules import CosineSchedule, GeometricSchedule, LogLinearSchedule, NoiseSchedule

__all__ = ["graphs", "noise_levels", "rate_matrices", "schedules", "token_batches"]


@st.composite
def rate_matrices(draw: st.DrawFn, min_states: int = 2, max_states: int = 5) -> torch.Tensor:
    """Valid generators `Q` (float64, `[S, S]`): random non-negative off-diagonal rates in
    [0, 3] (some exactly 0), diagonal set so that every column sums to 0, at least one jump."""
    s = draw(st.integers(min_states, max_states))
    rates = st.one_of(st.just(0.0), st.floats(0.05, 3.0, allow_nan=False))
    off = torch.tensor(draw(st.lists(rates, min_size=s * s, max_size=s * s)), dtype=torch.float64)
    q = off.reshape(s, s).fill_diagonal_(0.0)
    if float(q.sum()) == 0.0:
        q[1, 0] = 1.0
    q.diagonal().sub_(q.sum(dim=0))
    return q


@st.composite
def graphs(draw: st.DrawFn, max_tokens: int = 5) -> Graph:
    """Uniform, absorbing and dense graphs with up to `max_tokens` data tokens."""
    kind = draw(st.sampled_from(["uniform", "absorbing", "dense"]))
    if kind == "uniform":
        return UniformGraph(draw(st.integers(2, max_tokens)))
    if kind == "absorbing":
        return AbsorbingGraph(draw(st.integers(1, max_tokens)))
    return DenseGraph(draw(rate_matrices(max_states=max_tokens)))


def schedules() -> st.SearchStrategy[NoiseSchedule]:
    """Every shipped schedule with drawn parameters."""
    return st.one_of(
        st.builds(LogLinearSchedule, survival=st.one_of(st.just(0.0), st.floats(1e-5, 0.1))),
        st.builds(
            GeometricSchedule,
            sigma_min=st.floats(1e-5, 1e-2),
            sigma_max=st.floats(1.0, 30.0),
        ),
        st.builds(CosineSchedule, survival=st.one_of(st.just(0.0), st.floats(1e-5, 0.1))),
    )


def noise_levels(min_value: float = 1e-5, max_value: float = 20.0) -> st.SearchStrategy[float]:
    """Total noise levels, log-uniformly spread between `min_value` and `max_value`."""
    import math

    lo, hi = math.log(min_value), math.log(max_value)
    return st.floats(lo, hi).map(math.exp)


@st.composite
def token_batches(
    draw: st.DrawFn,
    graph: Graph,
    max_batch: int = 4,
    max_length: int = 6,
    data_only: bool = False,
) -> torch.Tensor:
    """LongTensors `[B, L]` of states of `graph` (of data tokens only if `data_only`)."""
    b = draw(st.integers(1, max_batch))
    length = draw(st.integers(1, max_length))
    k = graph.num_tokens if data_only else graph.num_states
    values = draw(st.lists(st.integers(0, k - 1), min_size=b * length, max_size=b * length))
    return torch.tensor(values, dtype=torch.long).reshape(b, length)
