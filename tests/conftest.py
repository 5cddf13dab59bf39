"""Shared test configuration: hypothesis profiles and torch determinism."""

import os

import torch
from hypothesis import HealthCheck, settings

# `ci`: reproducible (derandomised), no per-example deadline (shared 2-core machines are noisy).
settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    max_examples=40,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.register_profile("dev", deadline=None, max_examples=25)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

torch.set_num_threads(min(2, torch.get_num_threads()))
