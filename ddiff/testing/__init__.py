"""Shipped test helpers: exact oracles for tiny problems (labelled too, for guidance), synthetic sources, hypothesis strategies.

`ddiff.testing.strategies` needs `hypothesis` (the `test` extra); the oracle and the sources need
only torch, and so do the contract checks (`check_graph`, ... in `ddiff.testing.contracts`).
The synthetic sources live in `ddiff.data` (production code uses them, and production code never
imports `ddiff.testing`); they are re-exported here under the same names.
"""

from ddiff.data.sources import MarkovSource, PlantedMotifSource
from ddiff.testing.contracts import check_graph, check_sampler, check_schedule, check_score_net
from ddiff.testing.labelled import LabelledOracle
from ddiff.testing.oracle import ConditionalOracle, ExactOracle

__all__ = [
    "ConditionalOracle",
    "ExactOracle",
    "LabelledOracle",
    "MarkovSource",
    "PlantedMotifSource",
    "check_graph",
    "check_sampler",
    "check_schedule",
    "check_score_net",
]
