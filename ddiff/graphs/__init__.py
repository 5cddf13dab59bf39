"""Graphs: the rate matrix `Q` of the per-token noising CTMC and its exact kernels."""

from ddiff.graphs.absorbing import AbsorbingGraph
from ddiff.graphs.base import Graph
from ddiff.graphs.dense import DenseGraph, validate_rate_matrix
from ddiff.graphs.uniform import UniformGraph

__all__ = ["AbsorbingGraph", "DenseGraph", "Graph", "UniformGraph", "validate_rate_matrix"]
