"""Evaluation: held-out likelihood (`ddiff.eval.likelihood`) and sample-quality metrics per
domain (`ddiff.eval.dna_metrics` needs biopython)."""

from ddiff.eval.likelihood import LikelihoodEstimate, bits_per_token

__all__ = ["LikelihoodEstimate", "bits_per_token"]
