"""Shipped test helpers: exact oracles for tiny problems and hypothesis strategies.

`ddiff.testing.strategies` needs `hypothesis` (the `test` extra); the oracle needs only torch.
"""

from ddiff.testing.oracle import ExactOracle

__all__ = ["ExactOracle"]
