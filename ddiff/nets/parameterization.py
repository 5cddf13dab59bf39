"""Parameterisations: how a backbone's raw outputs become log concrete scores."""

from __future__ import annotations

import abc
import math

import torch
from torch import Tensor

from ddiff.graphs import AbsorbingGraph
from ddiff.nets._sigma import clamp_sigma, log_expm1


class Parameterization(abc.ABC):
    r"""Maps raw network outputs `[B, L, S]` to log concrete scores with 0 at the current token.

    $$\log s_\theta[i, v] = \begin{cases} f(\mathrm{raw}, \bar\sigma)[i, v] & v \ne x_t^i \\
      0 & v = x_t^i \end{cases}$$

    Subclasses implement `transform` (the map $f$); `__call__` validates the shapes, applies it
    and sets the current-token entry to exactly 0, so no parameterisation can forget it. The entry
    at the current token is the ratio of a state to itself (Lou, Meng & Ermon, ICML 2024); losses
    and samplers ignore it.

    Example:
        A subclass gives $f$ only; the base class puts the 0 at the current token:

        >>> import torch
        >>> from ddiff.nets import Parameterization
        >>> class MinusSigma(Parameterization):  # f(raw, sigma) = raw - sigma
        ...     def transform(self, raw, x_t, sigma):
        ...         return raw - sigma[:, None, None]
        >>> MinusSigma()(torch.ones(1, 2, 3), torch.tensor([[0, 2]]), torch.tensor([0.25]))
        tensor([[[0.0000, 0.7500, 0.7500],
                 [0.7500, 0.7500, 0.0000]]])
    """

    @property
    def num_states(self) -> int | None:
        """The number of states S this parameterisation requires, or None if it accepts any."""
        return None

    @abc.abstractmethod
    def transform(self, raw: Tensor, x_t: Tensor, sigma: Tensor) -> Tensor:
        """Log-scores `[B, L, S]` from raw outputs; the entry at `x_t` is overwritten with 0.

        Called with validated arguments: `raw` `[B, L, S]`, `x_t` int64 `[B, L]`, `sigma` `[B]`.
        """

    def __call__(self, raw: Tensor, x_t: Tensor, sigma: Tensor) -> Tensor:
        """Log-scores `[B, L, S]` with exactly 0 at `x_t`.

        Args:
            raw: raw network outputs `[batch, length, states]` (any float dtype).
            x_t: current tokens `[batch, length]`, integers in `[0, states)`.
            sigma: total noise `[batch]`.

        Raises:
            ValueError: on inconsistent shapes.
        """
        if raw.dim() != 3:
            raise ValueError(f"raw must have shape [batch, length, states], got {list(raw.shape)}")
        if x_t.shape != raw.shape[:2]:
            raise ValueError(
                f"x_t must have shape [batch, length] = {list(raw.shape[:2])} to match raw "
                f"{list(raw.shape)}, got {list(x_t.shape)}"
            )
        if sigma.shape != raw.shape[:1]:
            raise ValueError(
                f"sigma must have shape [batch] = [{raw.shape[0]}], got {list(sigma.shape)}"
            )
        if self.num_states is not None and raw.shape[-1] != self.num_states:
            raise ValueError(
                f"{type(self).__name__} expects {self.num_states} states in the last axis of "
                f"raw, got {raw.shape[-1]}"
            )
        out = self.transform(raw, x_t.long(), sigma)
        return out.scatter(-1, x_t.long().unsqueeze(-1), 0.0)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class LogScoreParameterization(Parameterization):
    r"""The raw output is the log-score: $\log s_\theta = \mathrm{raw}$, 0 at the current token.

    Suits any graph. The output keeps the raw dtype (bf16 under autocast; the losses upcast).

    Example:
        >>> import torch
        >>> from ddiff.nets import LogScoreParameterization
        >>> LogScoreParameterization()(torch.ones(1, 2, 3), torch.tensor([[0, 2]]), torch.ones(1))
        tensor([[[0., 1., 1.],
                 [1., 1., 0.]]])
    """

    def transform(self, raw: Tensor, x_t: Tensor, sigma: Tensor) -> Tensor:
        return raw


class ScaledAbsorbingParameterization(Parameterization):
    r"""SEDD's "scale by sigma" for an absorbing graph with N data tokens and MASK $= N$.

    $$\log s_\theta[i, v] = \mathrm{raw}[i, v] - \log\bigl(e^{\bar\sigma} - 1\bigr) - \log N,
      \qquad v \ne x_t^i, \quad \log s_\theta[i, x_t^i] = 0.$$

    At a masked position the exact score for a data token y is
    $p_0(x^i = y \mid \text{unmasked context}) / (e^{\bar\sigma} - 1)$, so the network only
    has to model the conditional distribution of the clean token: with raw outputs 0 (an
    untrained, zero-initialised head) it predicts the uniform $1/N$, and the loss at
    initialisation does not depend on $\bar\sigma$ (Lou, Meng & Ermon, ICML 2024, the
    `scale_by_sigma` option of their code; the same factorisation underlies Ou et al.'s RADD,
    2024, and Sahoo et al.'s MDLM, NeurIPS 2024). This is $\log N = \log(S - 1)$ with
    S = N + 1 states, the constant of the reference code, and never $\log 0$.

    $\log(e^{\bar\sigma} - 1)$ is computed stably for small and large $\bar\sigma$, in float32
    or wider whatever the raw dtype (a bf16 shift near 11.5 at $\bar\sigma = 10^{-5}$ would be
    off by 0.03), so the output is float32 or wider. $\bar\sigma$ is clamped to
    $[10^{-8}, 10^4]$: 0 and inf give finite log-scores.

    Only the entries at masked positions matter: at a data position the reverse of an absorbing
    chain has no jumps, and the MASK column ($v = $ MASK at a data position) is never a valid
    target. Those entries are left finite (not $-\infty$, which would produce NaN gradients);
    the losses and samplers give them zero weight.

    Args:
        graph: the absorbing graph whose reverse process the scores describe.

    Raises:
        TypeError: if `graph` is not an `AbsorbingGraph` (use `LogScoreParameterization`).

    Example:
        >>> import math, torch
        >>> from ddiff import AbsorbingGraph
        >>> from ddiff.nets import ScaledAbsorbingParameterization
        >>> param = ScaledAbsorbingParameterization(AbsorbingGraph(3))
        >>> x_t = torch.tensor([[3, 0]])  # MASK, then token 0
        >>> sigma = torch.tensor([math.log(2.0)])  # e^sigma - 1 = 1: the shift is log 3
        >>> param(torch.zeros(1, 2, 4), x_t, sigma)
        tensor([[[-1.0986, -1.0986, -1.0986,  0.0000],
                 [ 0.0000, -1.0986, -1.0986, -1.0986]]])
    """

    def __init__(self, graph: AbsorbingGraph) -> None:
        if not isinstance(graph, AbsorbingGraph):
            raise TypeError(
                f"ScaledAbsorbingParameterization needs an AbsorbingGraph, got "
                f"{type(graph).__name__}; use LogScoreParameterization for other graphs"
            )
        self.graph = graph

    @property
    def num_states(self) -> int:
        return self.graph.num_states

    def transform(self, raw: Tensor, x_t: Tensor, sigma: Tensor) -> Tensor:
        dtype = torch.promote_types(raw.dtype, torch.float32)
        sig = clamp_sigma(sigma.to(torch.promote_types(sigma.dtype, dtype)))
        shift = log_expm1(sig) + math.log(self.graph.num_tokens)
        return raw.to(dtype) - shift.to(dtype)[:, None, None]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(AbsorbingGraph({self.graph.num_tokens}))"


def checked_parameterization(
    parameterization: Parameterization | None, num_states: int
) -> Parameterization:
    """A backbone's parameterisation: the default log-scores for None, else `parameterization`
    after checking that it is one and that it scores `num_states` states (the one check every
    backbone makes, written once)."""
    if parameterization is None:
        return LogScoreParameterization()
    if not isinstance(parameterization, Parameterization):
        raise TypeError(
            f"parameterization must be a Parameterization, got {type(parameterization).__name__}"
        )
    if parameterization.num_states not in (None, num_states):
        raise ValueError(
            f"{parameterization!r} scores {parameterization.num_states} states but the network "
            f"has num_states = {num_states}; build both from the same graph"
        )
    return parameterization
