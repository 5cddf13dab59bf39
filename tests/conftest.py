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

# One torch thread unless DDIFF_TEST_THREADS says otherwise: the tests' tensors are small, and on
# a shared 2-core machine a second thread waits for a busy core at every parallel region
# (measured: tests/samplers and tests/graphs took 59 s with 1 thread, over 10 minutes with 2
# while another process used one core).
torch.set_num_threads(int(os.environ.get("DDIFF_TEST_THREADS", "1")))
