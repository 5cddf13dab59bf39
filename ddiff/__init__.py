"""ddiff: discrete diffusion on sequences with score entropy (SEDD) and pluggable parts.

The core API, importable from the top level::

    from ddiff import AbsorbingGraph, LogLinearSchedule

Subpackages: `ddiff.graphs` (rate matrices, substitution models), `ddiff.schedules`,
`ddiff.losses` (score entropy, the likelihood bound), `ddiff.nets` (score networks),
`ddiff.testing` (exact oracles).
"""

from ddiff.graphs import AbsorbingGraph, DenseGraph, Graph, UniformGraph
from ddiff.nets import ScoreNet, TransformerScoreNet
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
    "CosineSchedule",
    "DenseGraph",
    "GeometricSchedule",
    "Graph",
    "LogLinearSchedule",
    "Noise",
    "NoiseSchedule",
    "ScoreNet",
    "TransformerScoreNet",
    "UniformGraph",
    "__version__",
]
