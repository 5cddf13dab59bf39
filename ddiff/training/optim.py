"""Optimisation settings: AdamW, linear warm-up, gradient clipping and the EMA decay."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable
from dataclasses import InitVar, dataclass
from typing import Literal

import torch
from torch import nn


@dataclass(frozen=True)
class OptimSettings:
    """How the score network is optimised (SEDD's recipe by default).

    AdamW (Loshchilov & Hutter, ICLR 2019) after a linear warm-up from `lr / warmup_steps`, at
    a constant learning rate (SEDD's choice) or decayed along a half cosine to
    `min_lr_ratio * lr` at the last training step; gradients clipped to a global norm; an
    exponential moving average of the weights (used for validation, sampling and
    `save_pretrained`). Weight decay, when
    non-zero, applies to matrices only (parameters with two or more dimensions), not to biases,
    norms or the noise-embedding vectors.

    Attributes:
        lr: peak learning rate (> 0).
        betas: AdamW's moment decays, each in [0, 1).
        adam_eps: AdamW's denominator offset (> 0). (`eps=` is still accepted, deprecated.)
        weight_decay: decoupled weight decay (>= 0).
        warmup_steps: optimizer steps of linear warm-up (0: none).
        lr_decay: "constant" after the warm-up, or "cosine": a half cosine from `lr` at the
            end of the warm-up to `min_lr_ratio * lr` at step `decay_steps`, then flat.
        decay_steps: the step at which the cosine ends; None: the Trainer's `max_steps`
            (a run stopped early by a time limit has not finished its decay; a run no longer
            than its warm-up has no decay phase; a run resumed with a larger `max_steps`
            follows the longer cosine from the step it resumes at, so its rate jumps up).
        min_lr_ratio: the final learning rate of the cosine over `lr`, in [0, 1].
        grad_clip: maximum global gradient norm, or None not to clip.
        ema_decay: decay of the weight average in [0, 1), or None for no average. The decay
            used at update n is `min(ema_decay, (1 + n) / (10 + n))`, so the average follows
            the weights closely early in training (as in the SEDD and score-SDE code).

    Example:
        >>> import torch
        >>> from ddiff.training import OptimSettings
        >>> settings = OptimSettings(lr=1e-3, warmup_steps=4, weight_decay=0.1)
        >>> [settings.lr_factor()(step) for step in range(6)]  # linear warm-up, then constant
        [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
        >>> cosine = OptimSettings(lr=1e-3, warmup_steps=2, lr_decay="cosine", decay_steps=6)
        >>> [round(cosine.lr_factor()(step), 3) for step in range(7)]  # then down to 0 at 6
        [0.5, 1.0, 0.854, 0.5, 0.146, 0.0, 0.0]
        >>> optimizer = settings.build_optimizer(torch.nn.Linear(2, 2).parameters())
        >>> [group["weight_decay"] for group in optimizer.param_groups]  # matrix, then bias
        [0.1, 0.0]
    """

    lr: float = 3e-4
    betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-8
    weight_decay: float = 0.0
    warmup_steps: int = 0
    lr_decay: Literal["constant", "cosine"] = "constant"
    decay_steps: int | None = None
    min_lr_ratio: float = 0.0
    grad_clip: float | None = 1.0
    ema_decay: float | None = 0.9999
    eps: InitVar[float | None] = None  # the old name of adam_eps

    def __post_init__(self, eps: float | None) -> None:
        if eps is not None:
            warnings.warn(
                "OptimSettings(eps=...) is deprecated, use adam_eps=... (the same value)",
                DeprecationWarning,
                stacklevel=3,
            )
            object.__setattr__(self, "adam_eps", eps)
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError(f"betas must be two numbers in [0, 1), got {self.betas!r}")
        if not self.adam_eps > 0:
            raise ValueError(f"adam_eps must be > 0, got {self.adam_eps!r}")
        if not self.weight_decay >= 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if isinstance(self.warmup_steps, bool) or int(self.warmup_steps) != self.warmup_steps:
            raise ValueError(f"warmup_steps must be an integer, got {self.warmup_steps!r}")
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {self.warmup_steps!r}")
        if self.lr_decay not in ("constant", "cosine"):
            raise ValueError(f"lr_decay must be 'constant' or 'cosine', got {self.lr_decay!r}")
        if self.decay_steps is not None and (
            isinstance(self.decay_steps, bool)
            or int(self.decay_steps) != self.decay_steps
            or self.decay_steps <= self.warmup_steps
        ):
            raise ValueError(
                f"decay_steps must be an integer above warmup_steps ({self.warmup_steps}) or "
                f"None, got {self.decay_steps!r}"
            )
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError(f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio!r}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"grad_clip must be > 0 or None (no clipping), got {self.grad_clip!r}")
        if self.ema_decay is not None and not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(
                f"ema_decay must be in [0, 1) or None (no EMA), got {self.ema_decay!r}"
            )

    def build_optimizer(self, parameters: Iterable[nn.Parameter]) -> torch.optim.AdamW:
        """AdamW over `parameters`, with weight decay on matrices only when it is non-zero."""
        params = [p for p in parameters if p.requires_grad]
        if self.weight_decay > 0:
            groups = [
                {"params": [p for p in params if p.dim() >= 2], "weight_decay": self.weight_decay},
                {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
            ]
            return torch.optim.AdamW(groups, lr=self.lr, betas=self.betas, eps=self.adam_eps)
        return torch.optim.AdamW(
            params, lr=self.lr, betas=self.betas, eps=self.adam_eps, weight_decay=0.0
        )

    def lr_factor(self, max_steps: int | None = None) -> Callable[[int], float]:
        """The multiplier of `lr` at each optimizer step (a `LambdaLR` lambda).

        Args:
            max_steps: the training run's length, where a cosine without `decay_steps` ends.
        """
        warmup = self.warmup_steps
        end = self.decay_steps if self.decay_steps is not None else max_steps
        if self.lr_decay == "cosine" and end is None:
            raise ValueError(
                "lr_decay='cosine' needs decay_steps, or a run with max_steps, to know where "
                "the cosine ends"
            )
        floor = self.min_lr_ratio

        def factor(step: int) -> float:
            if step + 1 < warmup:
                return (step + 1) / warmup
            if self.lr_decay == "constant" or end is None or end <= warmup:
                return 1.0  # a run no longer than its warm-up has no decay phase
            done = min(1.0, max(0.0, (step + 1 - warmup) / (end - warmup)))
            return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * done))

        return factor
