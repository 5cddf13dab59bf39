"""The `ScoreNet` abstraction: a network that outputs log concrete scores."""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from ddiff._checks import batch_sigma

_INTEGER_DTYPES = (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8)


class ScoreNet(nn.Module, abc.ABC):
    r"""A backbone $s_\theta(x_t, \bar\sigma)$ that estimates log concrete scores.

    For every position $i$ and every state $v$ the network estimates

    $$\log s_\theta(x_t, \bar\sigma)[i, v] \approx
      \log \frac{p_t(x_t \text{ with } x_t^i := v)}{p_t(x_t)},$$

    O(L S) numbers per sequence instead of $S^L$ (Lou, Meng & Ermon, *Discrete Diffusion
    Modeling by Estimating the Ratios of the Data Distribution*, ICML 2024). The entry at the
    current token $v = x_t^i$ is the ratio of a state to itself: every `ScoreNet` returns exactly
    0 there (a parameterisation guarantees it), and losses and samplers ignore it.

    Subclasses call `super().__init__(num_states)`, implement `forward`, and start `forward` with
    `x_t, sigma = self.check_inputs(x_t, sigma)` so that every backbone validates its arguments in
    the same way. Backbones take the total noise $\bar\sigma$ (not the time t), so that one
    network works with any `NoiseSchedule`.

    Args:
        num_states: number of token states S (>= 2) the network reads and scores; for an
            absorbing graph this includes MASK (`graph.num_states`).
    """

    def __init__(self, num_states: int) -> None:
        super().__init__()
        if isinstance(num_states, bool) or int(num_states) != num_states or num_states < 2:
            raise ValueError(f"num_states must be an integer >= 2, got {num_states!r}")
        self._num_states = int(num_states)

    @property
    def num_states(self) -> int:
        """Number of token states S: the input vocabulary and the last axis of the output."""
        return self._num_states

    @abc.abstractmethod
    def forward(self, x_t: Tensor, sigma: Tensor) -> Tensor:
        r"""Log concrete scores of `x_t` at total noise `sigma`.

        Args:
            x_t: noised tokens, an integer tensor `[batch, length]` with values in
                `[0, num_states)`.
            sigma: total noise $\bar\sigma \ge 0$, float `[batch]` (a scalar or `[batch, 1]`
                is also accepted); `inf` is allowed and treated as a large finite value.

        Returns:
            Log-scores `[batch, length, num_states]`, exactly 0 at `x_t`.

        Raises:
            ValueError: if a shape, dtype or token id is invalid.
        """

    if TYPE_CHECKING:  # `nn.Module.__call__` is untyped; say what calling a ScoreNet returns.

        def __call__(self, x_t: Tensor, sigma: Tensor) -> Tensor: ...

    def check_inputs(self, x_t: Tensor, sigma: Tensor | float) -> tuple[Tensor, Tensor]:
        """Validate the arguments of `forward`; return `x_t` as int64 and `sigma` as `[batch]`.

        Raises:
            ValueError: unless `x_t` is an integer tensor `[batch, length]` (both >= 1) with
                values in `[0, num_states)` and `sigma` is a scalar, `[batch]` or `[batch, 1]`
                with non-negative, non-NaN values.
        """
        if not isinstance(x_t, Tensor):
            raise ValueError(f"x_t must be a torch.Tensor of token ids, got {type(x_t).__name__}")
        if x_t.dtype not in _INTEGER_DTYPES:
            raise ValueError(f"x_t must hold integer token ids, got dtype {x_t.dtype}")
        if x_t.dim() != 2 or x_t.shape[0] < 1 or x_t.shape[1] < 1:
            raise ValueError(
                f"x_t must have shape [batch, length] with batch, length >= 1, got "
                f"{list(x_t.shape)}; add a batch axis with x_t[None] for a single sequence"
            )
        lo, hi = int(x_t.min()), int(x_t.max())
        if lo < 0 or hi >= self.num_states:
            b, i = ((x_t < 0) | (x_t >= self.num_states)).nonzero()[0].tolist()
            raise ValueError(
                f"x_t holds token {int(x_t[b, i])} at [batch {b}, position {i}], outside "
                f"[0, {self.num_states}) for a network with num_states = {self.num_states}"
            )
        sigma = batch_sigma(sigma, x_t)[:, 0]
        return x_t.long(), sigma
