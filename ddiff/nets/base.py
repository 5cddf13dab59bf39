"""The `ScoreNet` abstraction: a network that outputs log concrete scores."""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from ddiff._checks import batch_sigma, check_token_batch

NULL_LABEL = -1
"""The label id that stands for "no label" (the null label of classifier-free guidance)."""


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

    **Labels.** A backbone built with `num_labels = C > 0` also reads a class label per
    sequence: `net(x_t, sigma, label=label)` with `label` a LongTensor `[batch]` (or an int for
    the whole batch) in `[0, C)`, or `NULL_LABEL` (-1) for "no label", the unconditional model
    of classifier-free guidance; `net(x_t, sigma)` is the unconditional model. Such a backbone
    implements the second hook `_forward_labelled(x_t, sigma, label)` too (label validated,
    int64 `[batch]`).
    `bind_label(c)` gives the score function `(x_t, sigma) -> log-scores` of one label, which
    samplers and `ddiff.guidance` take. A backbone without labels refuses a `label`.

    Args:
        num_states: number of token states S (>= 2) the network reads and scores; for an
            absorbing graph this includes MASK (`graph.num_states`).
        num_labels: number of class labels C the network is conditioned on (0: none).

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

    def __init__(self, num_states: int, num_labels: int = 0) -> None:
        super().__init__()
        if isinstance(num_states, bool) or int(num_states) != num_states or num_states < 2:
            raise ValueError(f"num_states must be an integer >= 2, got {num_states!r}")
        if isinstance(num_labels, bool) or int(num_labels) != num_labels or num_labels < 0:
            raise ValueError(
                f"num_labels must be an integer >= 0 (0: no labels), got {num_labels!r}"
            )
        self._num_states = int(num_states)
        self._num_labels = int(num_labels)

    @property
    def num_states(self) -> int:
        """Number of token states S: the input vocabulary and the last axis of the output."""
        return self._num_states

    @property
    def num_labels(self) -> int:
        """Number of class labels C the network reads (0: an unconditional network)."""
        return self._num_labels

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "forward" in vars(cls):
            raise TypeError(
                f"{cls.__name__} overrides forward: implement _forward(x_t, sigma) instead "
                "(forward validates the inputs, then calls it)"
            )

    def forward(
        self, x_t: Tensor, sigma: Tensor | float, *, label: Tensor | int | None = None
    ) -> Tensor:
        r"""Log concrete scores of `x_t` at total noise `sigma` (given `label`, if any).

        Args:
            x_t: noised tokens, an integer tensor `[batch, length]` with values in
                `[0, num_states)`.
            sigma: total noise $\bar\sigma \ge 0$, float `[batch]` (a scalar or `[batch, 1]`
                is also accepted); `inf` is allowed and treated as a large finite value.
            label: for a network with labels only: class ids `[batch]` (or one int) in
                `[0, num_labels)`, `NULL_LABEL` for none; None is the unconditional model.

        Returns:
            Log-scores `[batch, length, num_states]`, exactly 0 at `x_t`.

        Raises:
            ValueError: if a shape, dtype, token id or label is invalid, or a label is given to
                a network without labels.
        """
        x_t, sigma = self.check_inputs(x_t, sigma)
        if label is None:
            return self._forward(x_t, sigma)
        label = self.check_label(label, x_t.shape[0], x_t.device)
        return self._forward_labelled(x_t, sigma, label)

    @abc.abstractmethod
    def _forward(self, x_t: Tensor, sigma: Tensor) -> Tensor:
        """Log-scores `[batch, length, num_states]`, exactly 0 at `x_t`, from validated inputs.

        Args:
            x_t: int64 `[batch, length]` with values in `[0, num_states)`.
            sigma: float `[batch]`, every entry >= 0 (`inf` allowed).
        """

    def _forward_labelled(self, x_t: Tensor, sigma: Tensor, label: Tensor) -> Tensor:
        """Log-scores given class ids `label` (int64 `[batch]`, `NULL_LABEL` for none).

        Backbones with labels implement it; `forward` only calls it when `num_labels > 0`.
        """
        raise NotImplementedError(
            f"{type(self).__name__} has num_labels = {self.num_labels} but does not implement "
            "_forward_labelled(x_t, sigma, label)"
        )

    if TYPE_CHECKING:  # `nn.Module.__call__` is untyped; say what calling a ScoreNet returns.

        def __call__(
            self, x_t: Tensor, sigma: Tensor | float, *, label: Tensor | int | None = None
        ) -> Tensor: ...

    def check_label(
        self, label: Tensor | int, batch: int, device: torch.device | None = None
    ) -> Tensor:
        """Validate a `label` argument; return it as int64 `[batch]` (`NULL_LABEL` for none).

        Raises:
            ValueError: if the network has no labels, or the label is not an integer (tensor)
                of shape `[]` or `[batch]` with values in `[0, num_labels)` or `NULL_LABEL`.
        """
        return check_labels(label, self.num_labels, batch, device)

    def bind_label(self, label: int | None) -> LabelledScoreFn:
        """The score function `(x_t, sigma) -> log-scores` of this network given one label.

        `label` is a class id in `[0, num_labels)`, or None (or `NULL_LABEL`) for the null
        label: the unconditional model that classifier-free guidance mixes in.
        """
        if label is not None:
            check_labels(label, self.num_labels, 1)
        return LabelledScoreFn(self, NULL_LABEL if label is None else int(label))

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


class LabelledScoreFn:
    """`ScoreNet.bind_label(c)`: the score function `(x_t, sigma) -> net(x_t, sigma, label=c)`.

    A plain callable (not a module: the network's parameters stay the network's), for samplers
    and `ddiff.guidance`.

    Attributes:
        net: the labelled network.
        label: the class id, or `NULL_LABEL` for the unconditional model.
    """

    def __init__(self, net: ScoreNet, label: int) -> None:
        self.net = net
        self.label = label

    def __call__(self, x_t: Tensor, sigma: Tensor | float) -> Tensor:
        return self.net(x_t, sigma, label=self.label)

    def __repr__(self) -> str:
        which = "null label" if self.label == NULL_LABEL else f"label {self.label}"
        return f"{type(self.net).__name__}(...).bind_label({which})"


def check_labels(
    label: Tensor | int, num_labels: int, batch: int, device: torch.device | None = None
) -> Tensor:
    """A `label` argument as int64 `[batch]`, checked against `num_labels` (see `ScoreNet`)."""
    if num_labels == 0:
        raise ValueError(
            "this network was built without labels (num_labels = 0) and cannot be given a "
            "label; build it with num_labels = C (net.labels in a run configuration), or call it "
            "without label="
        )
    if isinstance(label, bool):
        raise ValueError(f"label must be a class id (int) or a LongTensor [batch], got {label!r}")
    if isinstance(label, int):
        label = torch.full((batch,), label, dtype=torch.long, device=device)
    if not isinstance(label, Tensor) or label.is_floating_point() or label.dtype == torch.bool:
        kind = label.dtype if isinstance(label, Tensor) else type(label).__name__
        raise ValueError(f"label must be a class id (int) or a LongTensor [batch], got {kind}")
    if label.dim() == 0:
        label = label.expand(batch)
    if list(label.shape) != [batch]:
        raise ValueError(
            f"label must have shape [batch] = [{batch}] (one class id per sequence), got "
            f"{list(label.shape)}"
        )
    bad = (label < NULL_LABEL) | (label >= num_labels)
    if bool(bad.any()):
        b = int(bad.nonzero()[0, 0])
        raise ValueError(
            f"label {int(label[b])} of sequence {b} is outside [0, {num_labels}) (and not "
            f"NULL_LABEL = {NULL_LABEL}, no label) for a network with num_labels = {num_labels}"
        )
    return label.long().to(device) if device is not None else label.long()
