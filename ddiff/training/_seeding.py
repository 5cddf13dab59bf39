"""Random streams keyed by what they are for (internal).

Every random draw of training and validation comes from a generator seeded by a hash of
(run seed, purpose, step, ...), not from a generator whose state advances: a run resumed from a
checkpoint at step k draws exactly what an uninterrupted run draws at step k, with no generator
state to save, and every rank knows the draws of every other rank.
"""

from __future__ import annotations

import numpy as np
import torch

# Purposes, mixed into every key so that streams for different uses never coincide.
TRAIN_TIMES = 1
TRAIN_NOISE = 2
VALIDATION = 3
DATA_ORDER = 4
LABEL_DROPOUT = 5


def derive_seed(*keys: int) -> int:
    """A 63-bit seed that depends on every key (non-negative integers), via numpy's SeedSequence."""
    if any(int(k) < 0 for k in keys):
        raise ValueError(f"seed keys must be non-negative integers, got {keys}")
    state = np.random.SeedSequence([int(k) for k in keys]).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


def keyed_generator(*keys: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A fresh `torch.Generator` on `device` seeded with `derive_seed(*keys)`."""
    generator = torch.Generator(device=device)
    generator.manual_seed(derive_seed(*keys))
    return generator
