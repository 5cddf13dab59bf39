"""Data below training: token sequences and batches, and synthetic sources with exact entropy.

`TokenDataset` holds fixed-length windows or variable-length sequences padded with a token
(`ddiff.data.tokens` explains why padding is data); `windows` cuts a token stream. The sources
(`MarkovSource`, `PlantedMotifSource`) know their entropy and likelihood exactly: a model's
bound on their samples is measured against a floor. Only torch and numpy are needed; the
Lightning data module that serves these to a trainer is `ddiff.training.TokenDataModule`.
"""

from ddiff.data.sources import MarkovSource, PlantedMotifSource
from ddiff.data.tokens import TokenArray, TokenBatch, TokenDataset, windows

__all__ = [
    "MarkovSource",
    "PlantedMotifSource",
    "TokenArray",
    "TokenBatch",
    "TokenDataset",
    "windows",
]
