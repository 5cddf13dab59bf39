"""Samplers: reverse diffusion from the limit distribution to data.

`Sampler` owns the loop (time grid, score calls, conditioning, NFE count, the final denoise
step); `EulerSampler`, `TauLeapingSampler` and `AnalyticSampler` implement a step each.
"""

from ddiff.samplers.analytic import AnalyticSampler
from ddiff.samplers.base import (
    Interval,
    Sampler,
    SampleResult,
    TimeGrid,
    tweedie_probs,
    uniform_time_grid,
)
from ddiff.samplers.euler import EulerSampler
from ddiff.samplers.tau_leaping import TauLeapingSampler

__all__ = [
    "AnalyticSampler",
    "EulerSampler",
    "Interval",
    "SampleResult",
    "Sampler",
    "TauLeapingSampler",
    "TimeGrid",
    "tweedie_probs",
    "uniform_time_grid",
]
