"""ddiff: discrete diffusion on sequences with score entropy (SEDD) and pluggable parts."""

from ddiff.graphs import AbsorbingGraph, DenseGraph, Graph, UniformGraph

__version__ = "0.1.0.dev0"

__all__ = [
    "AbsorbingGraph",
    "DenseGraph",
    "Graph",
    "UniformGraph",
    "__version__",
]
