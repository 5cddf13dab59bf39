"""Score networks: the `ScoreNet` interface, backbones, and output parameterisations.

A backbone maps noised tokens `x_t` `[B, L]` and total noise `sigma` `[B]` to log concrete scores
`[B, L, S]`, exactly 0 at the current token::

    from ddiff.nets import ScaledAbsorbingParameterization, TransformerScoreNet

    net = TransformerScoreNet.from_preset(
        "small", graph.num_states, parameterization=ScaledAbsorbingParameterization(graph)
    )

`CausalTransformer` is the autoregressive baseline of the same size (the same blocks with a causal
mask, exact likelihoods). Rotary-embedding helpers live in `ddiff.nets.rotary`.
"""

from ddiff.nets.autoregressive import CausalTransformer
from ddiff.nets.base import ScoreNet
from ddiff.nets.parameterization import (
    LogScoreParameterization,
    Parameterization,
    ScaledAbsorbingParameterization,
)
from ddiff.nets.transformer import PRESETS, TransformerScoreNet

__all__ = [
    "PRESETS",
    "CausalTransformer",
    "LogScoreParameterization",
    "Parameterization",
    "ScaledAbsorbingParameterization",
    "ScoreNet",
    "TransformerScoreNet",
]
