"""Samplers: reverse diffusion from the limit distribution to data.

`Sampler` owns the loop (time grid, score calls, conditioning, NFE count, caching, corrector
steps, the final denoise step); `EulerSampler`, `TauLeapingSampler` and `AnalyticSampler`
implement a step each. `FirstHittingSampler` simulates the reverse chain of an absorbing graph
exactly, one call per unmasking event, with no grid; `RateCorrector` and `RemaskingCorrector`
are the corrector steps of predictor-corrector sampling.
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
from ddiff.samplers.correctors import Corrector, RateCorrector, RemaskingCorrector
from ddiff.samplers.euler import EulerSampler
from ddiff.samplers.first_hitting import FirstHittingSampler
from ddiff.samplers.tau_leaping import TauLeapingSampler

__all__ = [
    "AnalyticSampler",
    "Corrector",
    "EulerSampler",
    "FirstHittingSampler",
    "Interval",
    "RateCorrector",
    "RemaskingCorrector",
    "SampleResult",
    "Sampler",
    "TauLeapingSampler",
    "TimeGrid",
    "tweedie_probs",
    "uniform_time_grid",
]
