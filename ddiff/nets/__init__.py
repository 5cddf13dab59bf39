"""Score networks: the `ScoreNet` interface, backbones, and output parameterisations.

A backbone maps noised tokens `x_t` `[B, L]` and total noise `sigma` `[B]` to log concrete scores
`[B, L, S]`, exactly 0 at the current token::

    from ddiff.nets import ScaledAbsorbingParameterization, TransformerScoreNet

    net = TransformerScoreNet.from_preset(
        "small", graph.num_states, parameterization=ScaledAbsorbingParameterization(graph)
    )

Networks built with `num_labels = C` are also conditioned on a class label
(`net(x_t, sigma, label=...)`, `net.bind_label(c)`; `NULL_LABEL` is "no label").
`NoisyClassifierNet` classifies noised sequences, for classifier guidance.
`CausalTransformer` is the autoregressive baseline of the same size (the same blocks with a causal
mask, exact likelihoods). Rotary-embedding helpers live in `ddiff.nets.rotary`.
"""

from ddiff.nets.autoregressive import CausalTransformer
from ddiff.nets.base import NULL_LABEL, LabelledScoreFn, ScoreNet
from ddiff.nets.classifier import ConvClassifierNet, NoisyClassifierNet
from ddiff.nets.conv import ConvScoreNet
from ddiff.nets.parameterization import (
    LogScoreParameterization,
    Parameterization,
    ScaledAbsorbingParameterization,
)
from ddiff.nets.transformer import PRESETS, TransformerScoreNet

__all__ = [
    "NULL_LABEL",
    "PRESETS",
    "CausalTransformer",
    "ConvClassifierNet",
    "ConvScoreNet",
    "LabelledScoreFn",
    "LogScoreParameterization",
    "NoisyClassifierNet",
    "Parameterization",
    "ScaledAbsorbingParameterization",
    "ScoreNet",
    "TransformerScoreNet",
]
