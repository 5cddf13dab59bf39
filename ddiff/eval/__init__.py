"""Evaluation: sample-quality metrics per domain (`ddiff.eval.dna_metrics` needs biopython)."""

__all__: list[str] = []
