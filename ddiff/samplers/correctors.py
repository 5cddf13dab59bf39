"""Corrector steps: Markov kernels that leave the marginal $p_t$ invariant (predictor-corrector)."""

from __future__ import annotations

import abc
import math

import torch
from torch import Tensor

from ddiff.graphs import AbsorbingGraph, Graph
from ddiff.samplers._draw import draw_categorical


class Corrector(abc.ABC):
    r"""A Markov kernel on one position at a fixed noise level that leaves $p_t$ invariant.

    A sampler given `corrector=` runs `corrector_steps` corrector steps after every predictor
    step but the last, at the predictor's new noise level, one score evaluation each
    (Campbell et al., *A Continuous Time Framework for Discrete Denoising Models*, NeurIPS 2022,
    section 4.2). With the exact score, the kernel of one position given the others leaves
    $p_t$ invariant. Then:

    - `one_position=True`: each step updates **one** position per sequence, uniformly chosen
      among the free ones. The step's kernel is the average of invariant kernels, so it leaves
      $p_t$ exactly invariant (tested against the exact oracle).
    - `one_position=False` (default, as Campbell et al.): every free position is updated in
      parallel from the same scores. Exact for one position; for a sequence the joint step
      neglects the interaction of simultaneous moves, an error of second order in the step's
      move probabilities.

    Subclasses implement `step` on positions laid out as one row, like `Sampler.step`.

    Args:
        one_position: update one uniformly chosen free position per sequence per step.
    """

    def __init__(self, *, one_position: bool = False) -> None:
        self.one_position = bool(one_position)

    def check_graph(self, graph: Graph) -> None:  # noqa: B027 (a hook: any graph by default)
        """Raise a `TypeError` if the corrector cannot run on `graph` (default: any graph runs)."""

    @abc.abstractmethod
    def step(
        self,
        graph: Graph,
        x: Tensor,
        score: Tensor,
        sigma: float,
        generator: torch.Generator | None,
        categorical_dtype: torch.dtype,
    ) -> Tensor:
        r"""One corrector step of the positions in `x` at total noise `sigma`.

        Args:
            graph: the forward process.
            x: tokens `[1, N]` of the positions to update (all free positions, or one per
                sequence).
            score: `[1, N, S]` concrete scores at `(x, sigma)`, a workspace the step may
                overwrite.
            sigma: total noise $\bar\sigma(t)$ at which $p_t$ is to be kept.
            generator: source of randomness.
            categorical_dtype: floating type of the categorical draws.

        Returns:
            The new tokens `[1, N]`.
        """


class RateCorrector(Corrector):
    r"""The forward-plus-reverse-rate corrector of Campbell et al. (NeurIPS 2022), for any graph.

    The chain with rates $Q + \bar Q_t / \sigma(t)$ (forward rates plus the reverse chain's)
    leaves $p_t$ invariant: $\bar Q_t$ carries $p_t$ back exactly as fast as $Q$ carries it
    forward ($\bar Q_t p_t = -Q p_t \sigma(t)$, term by term for each position). One step of
    size $h$ (in total noise) at a position holding $x$, the others fixed:

    $$p(y \mid x) = \delta_x(y) + h\,\bigl(Q[y, x] + s_y\, Q[x, y]\bigr) \quad (y \ne x),$$

    `graph.rates_out(x)` plus `graph.reverse_rates(x, score)`, with $s$ the concrete score. By
    the balance of the two chains, the kernel of one position given the rest leaves $p_t$
    exactly invariant as long as every stay probability $1 - h \cdot$ (rate out of $x$) is
    non-negative; where it would be negative it is clamped to 0, which breaks the invariance.
    The step scales with the noise, $h = $ `size` $\cdot (1 - e^{-\bar\sigma})$, so that it
    shrinks with the exit rates of the reverse chain, which grow like $1/\bar\sigma$ at small
    noise. For an absorbing graph with the exact score this never clamps for `size <= 1`: a
    data token is remasked with probability $h$ and MASK is unmasked with probability
    `size` $\cdot e^{-\bar\sigma}$.

    Args:
        size: the step in units of $1 - e^{-\bar\sigma}$ (> 0).
        one_position: see `Corrector`.

    Example:
        >>> import torch
        >>> from ddiff import UniformGraph
        >>> from ddiff.samplers import AnalyticSampler, RateCorrector
        >>> from ddiff.schedules import LogLinearSchedule
        >>> from ddiff.testing import ExactOracle
        >>> graph = UniformGraph(3)
        >>> oracle = ExactOracle.random(graph, length=2, seed=0)
        >>> sampler = AnalyticSampler(graph, LogLinearSchedule(), corrector=RateCorrector(0.5))
        >>> result = sampler.run(oracle, 4000, 2, 16, generator=torch.Generator().manual_seed(0))
        >>> result.nfe  # 16 predictor steps, 15 corrector steps, the denoise step
        32
        >>> oracle.total_variation(result.tokens) < 0.05
        True
    """

    def __init__(self, size: float = 0.5, *, one_position: bool = False) -> None:
        super().__init__(one_position=one_position)
        size = float(size)
        if not (size > 0 and math.isfinite(size)):
            raise ValueError(f"size must be a positive number (about 0.1 to 1), got {size!r}")
        self.size = size

    def step(
        self,
        graph: Graph,
        x: Tensor,
        score: Tensor,
        sigma: float,
        generator: torch.Generator | None,
        categorical_dtype: torch.dtype,
    ) -> Tensor:
        h = self.size * -math.expm1(-sigma)
        probs = graph.reverse_rates(x, score, scale=h, out=score)
        probs.add_(graph.rates_out(x, dtype=probs.dtype), alpha=h)
        probs.scatter_add_(-1, x.unsqueeze(-1), torch.ones_like(probs[..., :1]))
        return draw_categorical(probs.clamp_min_(0.0), generator, categorical_dtype)

    def __repr__(self) -> str:
        return f"RateCorrector(size={self.size}, one_position={self.one_position})"


class RemaskingCorrector(Corrector):
    r"""Remasking for absorbing graphs: data tokens are masked again, MASK is unmasked.

    At total noise $\bar\sigma$ a position is MASK with probability $m = 1 - e^{-\bar\sigma}$
    whatever the other positions hold, and otherwise holds a token drawn from
    $p_0(\cdot \mid$ unmasked context$)$, which the normalised scores of a masked position
    give. The step, with `strength` $\rho \in (0, 1]$:

    - a data token becomes MASK with probability $a = \rho \min(1, m / (1 - m))$;
    - MASK becomes a data token with probability $b = \rho \min(1, (1 - m) / m)$, the token
      drawn from the scores normalised over the data tokens.

    $(1 - m)\, a = m\, b$ is detailed balance for one position given the others, so with the
    exact score the kernel leaves $p_t$ invariant; $\rho = 1$ is the largest such step (one of
    the two moves is certain). This is the forward-plus-reverse chain of `RateCorrector` at its
    largest step, with the scores normalised (a learned network's total unmasking rate then
    does not matter), in the spirit of ReMDM's remasking (Wang et al., *Remasking Discrete
    Diffusion Models with Inference-Time Scaling*, 2025).

    Args:
        strength: $\rho \in (0, 1]$.
        one_position: see `Corrector`.

    Raises:
        TypeError: when the sampler's graph is not an `AbsorbingGraph` (use `RateCorrector`).

    Example:
        >>> import torch
        >>> from ddiff import AbsorbingGraph
        >>> from ddiff.samplers import EulerSampler, RemaskingCorrector
        >>> from ddiff.schedules import LogLinearSchedule
        >>> from ddiff.testing import ExactOracle
        >>> graph = AbsorbingGraph(3)
        >>> oracle = ExactOracle.random(graph, length=2, seed=0)
        >>> sampler = EulerSampler(
        ...     graph, LogLinearSchedule(), corrector=RemaskingCorrector(), corrector_steps=2
        ... )
        >>> result = sampler.run(oracle, 4000, 2, 8, generator=torch.Generator().manual_seed(0))
        >>> result.nfe  # 8 predictor steps, 2 x 7 corrector steps, the denoise step
        23
        >>> oracle.total_variation(result.tokens) < 0.05
        True
    """

    def __init__(self, strength: float = 1.0, *, one_position: bool = False) -> None:
        super().__init__(one_position=one_position)
        strength = float(strength)
        if not 0.0 < strength <= 1.0:
            raise ValueError(f"strength must be in (0, 1], got {strength!r}")
        self.strength = strength

    def check_graph(self, graph: Graph) -> None:
        if not isinstance(graph, AbsorbingGraph):
            raise TypeError(
                f"RemaskingCorrector needs an AbsorbingGraph, got {type(graph).__name__}; use "
                "RateCorrector for other graphs"
            )

    def step(
        self,
        graph: Graph,
        x: Tensor,
        score: Tensor,
        sigma: float,
        generator: torch.Generator | None,
        categorical_dtype: torch.dtype,
    ) -> Tensor:
        n = graph.num_tokens
        masked_fraction = -math.expm1(-sigma)  # m
        odds = masked_fraction / max(1.0 - masked_fraction, 1e-300)
        remask = self.strength * min(1.0, odds)
        unmask = self.strength * min(1.0, 1.0 / odds)
        masked = x == n
        u = torch.rand(x.shape, dtype=torch.float64, device=x.device, generator=generator)
        out = torch.where(~masked & (u < remask), n, x)
        moves = masked & (u < unmask)
        if bool(moves.any()):
            out[moves] = draw_categorical(score[moves][:, :n], generator, categorical_dtype)
        return out

    def __repr__(self) -> str:
        return f"RemaskingCorrector(strength={self.strength}, one_position={self.one_position})"
