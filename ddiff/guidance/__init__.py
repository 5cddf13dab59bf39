"""Guidance: score-function combinators that steer sampling towards a label.

Each combinator is a score function `(x_t [B, L], sigma [B]) -> log-scores [B, L, S]` built from
other score functions (and a noisy classifier), so every sampler takes it in place of a network
and stays stateless; it composes with an infill `condition` like any score function.

- `ClassifierFreeGuidance(cond_fn, uncond_fn, weight)`: $w \\log s_{cond} + (1 - w) \\log s_{uncond}$.
- `ClassifierGuidance(score_fn, classifier, weight)`: adds
  $w (\\log p(c \\mid x_t^{i \\leftarrow y}) - \\log p(c \\mid x_t))$, exactly (every
  single-token neighbour) or to first order (one gradient).
- `MarkovClassifier`: the exact noisy classifier of labels whose sequences are periodic Markov
  chains (the forward algorithm; fitted by counting).
- `select_label`: a one-label classifier from a classifier of all labels.

At weight 1 with exact scores and an exact noisy classifier both sample $p(x \\mid c)$ exactly;
`ddiff.testing.LabelledOracle` gives those exact quantities on tiny problems.
"""

from ddiff.guidance.classifier import (
    ClassifierGuidance,
    GuidanceMode,
    NoisyClassifier,
    select_label,
)
from ddiff.guidance.free import ClassifierFreeGuidance
from ddiff.guidance.markov import MarkovClassifier

__all__ = [
    "ClassifierFreeGuidance",
    "ClassifierGuidance",
    "GuidanceMode",
    "MarkovClassifier",
    "NoisyClassifier",
    "select_label",
]
