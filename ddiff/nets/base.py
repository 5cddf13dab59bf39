"""The `ScoreNet` abstraction: a network that outputs log concrete scores."""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any

from torch import Tensor, nn

from ddiff._checks import batch_sigma, check_token_batch


class ScoreNet(nn.Module, abc.ABC):
    r"""A backbone $s_\theta(x_t, \bar\sigma)$ that estimates log concrete scores.

    For every position $i$ and every state $v$ the network estimates

    $$\log s_\theta(x_t, \bar\sigma)[i, v] \approx
      \log \frac{p_t(x_t \text{ with } x_t^i := v)}{p_t(x_t)},$$

    O(L S) numbers per sequence instead of $S^L$ (Lou, Meng & Ermon, *Discrete Diffusion
    Modeling by Estimating the Ratios of the Data Distribution*, ICML 2024). The entry at the
    current token $v = x_t^i$ is the ratio of a state to itself: every `ScoreNet` returns exactly
    0 there (a parameterisation guarantees it), and losses and samplers ignore it.

    `forward` validates its arguments (`check_inputs`) and then calls the hook `_forward`, so
    every backbone validates them in the same way and none can skip it. Subclasses call
    `super().__init__(num_states)` and implement `_forward` (overriding `forward` is a
    `TypeError`); calling the module runs torch's hooks around `forward` as usual. Backbones take
    the total noise $\bar\sigma$ (not the time t), so that one network works with any
    `NoiseSchedule`.

    Args:
        num_states: number of token states S (>= 2) the network reads and scores; for an
            absorbing graph this includes MASK (`graph.num_states`).

    Example:
        The smallest backbone: log-scores 0 everywhere, the exact answer when $p_t$ is uniform
        (e.g. a uniform graph at its limit):

        >>> import torch
        >>> from ddiff.nets import ScoreNet
        >>> class UniformScore(ScoreNet):
        ...     def _forward(self, x_t, sigma):  # x_t and sigma are validated
        ...         return torch.zeros(*x_t.shape, self.num_states)
        >>> net = UniformScore(num_states=3)
        >>> x_t = torch.tensor([[0, 2]])
        >>> log_score = net(x_t, torch.tensor([0.5]))
        >>> log_score.shape  # [batch, length, states]
        torch.Size([1, 2, 3])
        >>> log_score.gather(-1, x_t[..., None])  # exactly 0 at the current token
        tensor([[[0.],
                 [0.]]])
        >>> net(torch.tensor([[0, 3]]), 0.5)  # check_inputs names the bad token
        Traceback (most recent call last):
            ...
        ValueError: x_t holds token 3 at [batch 0, position 1], outside [0, 3) ...
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

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "forward" in vars(cls):
            raise TypeError(
                f"{cls.__name__} overrides forward: implement _forward(x_t, sigma) instead "
                "(forward validates the inputs, then calls it)"
            )

    def forward(self, x_t: Tensor, sigma: Tensor | float) -> Tensor:
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
        x_t, sigma = self.check_inputs(x_t, sigma)
        return self._forward(x_t, sigma)

    @abc.abstractmethod
    def _forward(self, x_t: Tensor, sigma: Tensor) -> Tensor:
        """Log-scores `[batch, length, num_states]`, exactly 0 at `x_t`, from validated inputs.

        Args:
            x_t: int64 `[batch, length]` with values in `[0, num_states)`.
            sigma: float `[batch]`, every entry >= 0 (`inf` allowed).
        """

    if TYPE_CHECKING:  # `nn.Module.__call__` is untyped; say what calling a ScoreNet returns.

        def __call__(self, x_t: Tensor, sigma: Tensor | float) -> Tensor: ...

    def check_inputs(self, x_t: Tensor, sigma: Tensor | float) -> tuple[Tensor, Tensor]:
        """Validate the arguments of `forward`; return `x_t` as int64 and `sigma` as `[batch]`.

        Raises:
            ValueError: unless `x_t` is an integer tensor `[batch, length]` (both >= 1) with
                values in `[0, num_states)` and `sigma` is a scalar, `[batch]` or `[batch, 1]`
                with non-negative, non-NaN values.
        """
        x_t = check_token_batch(x_t, self.num_states, "x_t", "num_states")
        sigma = batch_sigma(sigma, x_t)[:, 0]
        return x_t, sigma
