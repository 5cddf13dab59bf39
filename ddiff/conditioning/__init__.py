"""Conditioning: what is fixed in a sequence (tokens, spans, motifs, prompts) and its projection.

A `Condition` says what is fixed; `Condition.resolve(length, num_tokens)` validates it and gives
the `Clamp` that every sampler applies at the start and after every step.
"""

from ddiff.conditioning.clamp import Clamp, ConditionalScoreFn
from ddiff.conditioning.condition import Condition, Motif

__all__ = ["Clamp", "Condition", "ConditionalScoreFn", "Motif"]
