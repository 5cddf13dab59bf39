"""ddiff: discrete diffusion on sequences with score entropy (SEDD) and pluggable parts.

The core API, importable from the top level::

    from ddiff import AbsorbingGraph, LogLinearSchedule

Subpackages: `ddiff.graphs` (rate matrices, substitution models), `ddiff.schedules`,
`ddiff.losses` (score entropy, the likelihood bound), `ddiff.nets` (score networks),
`ddiff.samplers` and `ddiff.conditioning` (reverse diffusion, infill),
`ddiff.testing` (exact oracles).
"""

from ddiff.conditioning import Condition
from ddiff.graphs import AbsorbingGraph, DenseGraph, Graph, UniformGraph
from ddiff.nets import ScoreNet, TransformerScoreNet
from ddiff.samplers import (
    AnalyticSampler,
    EulerSampler,
    FirstHittingSampler,
    Sampler,
    TauLeapingSampler,
)
from ddiff.schedules import (
    CosineSchedule,
    GeometricSchedule,
    LogLinearSchedule,
    Noise,
    NoiseSchedule,
)

__version__ = "0.1.0.dev0"

__all__ = [
    "AbsorbingGraph",
    "AnalyticSampler",
    "Condition",
    "CosineSchedule",
    "DenseGraph",
    "EulerSampler",
    "FirstHittingSampler",
    "GeometricSchedule",
    "Graph",
    "LogLinearSchedule",
    "Noise",
    "NoiseSchedule",
    "Sampler",
    "ScoreNet",
    "TauLeapingSampler",
    "TransformerScoreNet",
    "UniformGraph",
    "__version__",
]
