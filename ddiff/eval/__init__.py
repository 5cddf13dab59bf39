"""Evaluation from objects: held-out likelihood (`ddiff.eval.likelihood`), its statistics
(`ddiff.eval.statistics`), baselines (`ddiff.eval.baselines`), an independent judge of labelled
samples (`ddiff.eval.judge`) and sample-quality metrics per domain (`ddiff.eval.dna_metrics`
needs biopython).

Nothing here reads a checkpoint: pass the model. To score a saved model, load it first
(`ddiff.pretrained.load_pretrained`) or use `ddiff.pretrained.bits_per_token_from_path`.
"""

from ddiff.eval.baselines import MarkovChain
from ddiff.eval.judge import KmerJudge
from ddiff.eval.likelihood import LikelihoodEstimate, bits_per_token
from ddiff.eval.statistics import paired_difference, ratio_estimate, ratio_sums, subsample

__all__ = [
    "KmerJudge",
    "LikelihoodEstimate",
    "MarkovChain",
    "bits_per_token",
    "paired_difference",
    "ratio_estimate",
    "ratio_sums",
    "subsample",
]
