"""Shipped test helpers: exact oracles for tiny problems, synthetic sources, hypothesis strategies.

`ddiff.testing.strategies` needs `hypothesis` (the `test` extra); the oracle and the sources need
only torch.
"""

from ddiff.testing.oracle import ConditionalOracle, ExactOracle
from ddiff.testing.sources import MarkovSource, PlantedMotifSource

__all__ = ["ConditionalOracle", "ExactOracle", "MarkovSource", "PlantedMotifSource"]
