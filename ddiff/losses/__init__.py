"""Losses: score entropy, denoising score entropy, and the likelihood bound."""

from ddiff.losses.likelihood import (
    LikelihoodBound,
    ScoreFn,
    bound_integrand,
    likelihood_bound,
    prior_kl,
    sample_times,
)
from ddiff.losses.score_entropy import denoising_score_entropy, score_entropy
from ddiff.losses.times import ImportanceTimes

__all__ = [
    "ImportanceTimes",
    "LikelihoodBound",
    "ScoreFn",
    "bound_integrand",
    "denoising_score_entropy",
    "likelihood_bound",
    "prior_kl",
    "sample_times",
    "score_entropy",
]
