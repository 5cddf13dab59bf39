"""An exponential moving average of a network's weights."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import Tensor, nn


class EMA:
    r"""A copy of a network whose weights track an exponential moving average of another's.

    After every optimizer step, $\bar\theta \leftarrow d\,\bar\theta + (1 - d)\,\theta$ with
    $d = \min(\text{decay}, \frac{1 + n}{10 + n})$ at update n (the warm-up of the SEDD and
    score-SDE code: the average is usable after a few hundred steps, not only after
    ~1/(1 - decay)). Buffers are copied, not averaged. The average lives in float32 (or the
    parameters' own dtype) and is not a registered submodule of the training module, so DDP and
    FSDP never see it; `DiffusionModule` stores it in its checkpoints.

    Args:
        net: the network being trained (copied once; the copy is in eval mode, without grads).
        decay: the decay d in [0, 1).

    Example:
        >>> import torch
        >>> from ddiff.training import EMA
        >>> net = torch.nn.Linear(1, 1, bias=False)
        >>> _ = torch.nn.init.zeros_(net.weight)
        >>> ema = EMA(net, decay=0.99)
        >>> _ = torch.nn.init.ones_(net.weight)  # as if an optimizer step moved it to 1
        >>> for _ in range(3):  # d = 1/10, 2/11, 3/12 during the warm-up
        ...     ema.update(net)
        ...     round(ema.model.weight.item(), 4)
        0.9
        0.9818
        0.9955
    """

    def __init__(self, net: nn.Module, decay: float) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay!r}")
        self.decay = float(decay)
        self.model = copy.deepcopy(net).eval().requires_grad_(False)
        self.num_updates = 0

    @torch.no_grad()
    def update(self, net: nn.Module) -> None:
        """Move the average towards the current weights of `net` (same architecture)."""
        n = self.num_updates
        decay = min(self.decay, (1 + n) / (10 + n))
        averaged: list[Tensor] = list(self.model.parameters())
        current: list[Tensor] = [p.detach() for p in net.parameters()]
        if len(averaged) != len(current):
            raise ValueError("net does not have the architecture the EMA was built from")
        torch._foreach_lerp_(averaged, current, 1.0 - decay)
        for mine, theirs in zip(self.model.buffers(), net.buffers(), strict=True):
            mine.copy_(theirs)
        self.num_updates += 1

    def to(self, device: torch.device | str) -> EMA:
        """Move the averaged copy to `device` (in place); returns self."""
        self.model.to(device)
        return self

    def state_dict(self) -> dict[str, Any]:
        """Plain tensors and numbers only (loadable with `torch.load(weights_only=True)`)."""
        return {
            "decay": self.decay,
            "num_updates": self.num_updates,
            "weights": self.model.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the average written by `state_dict`."""
        self.model.load_state_dict(state["weights"])
        self.num_updates = int(state["num_updates"])
