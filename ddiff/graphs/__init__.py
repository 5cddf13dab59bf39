"""Graphs: the rate matrix `Q` of the per-token noising CTMC and its exact kernels."""

from ddiff.graphs.absorbing import AbsorbingGraph
from ddiff.graphs.base import Graph
from ddiff.graphs.dense import DenseGraph, validate_rate_matrix
from ddiff.graphs.substitution import (
    BLOSUM62,
    DNA_ALPHABET,
    PROTEIN_ALPHABET,
    gtr,
    hky85,
    jc69,
    k80,
    protein_graph,
)
from ddiff.graphs.uniform import UniformGraph

__all__ = [
    "BLOSUM62",
    "DNA_ALPHABET",
    "PROTEIN_ALPHABET",
    "AbsorbingGraph",
    "DenseGraph",
    "Graph",
    "UniformGraph",
    "gtr",
    "hky85",
    "jc69",
    "k80",
    "protein_graph",
    "validate_rate_matrix",
]
