r"""Likelihood of held-out sequences in bits per token, with standard errors.

One entry point for every kind of model, so that a diffusion model and its baselines are scored
on the same sequences with the same error bars:

- a diffusion model (a `ddiff.training.Pretrained`, the directory it was saved to, or a
  `(net, graph, schedule)` triple): the likelihood **bound** (Lou, Meng & Ermon, ICML 2024,
  eq. 11), an upper bound on $-\log p_\theta(x_0)$ estimated by Monte Carlo over
  `num_t` stratified times per sequence (`ddiff.losses.likelihood_bound`);
- an autoregressive model (anything with `nll(tokens) -> [B]` nats per sequence, such as
  `ddiff.nets.CausalTransformer`): the **exact** negative log-likelihood.

Both are totals over all L positions of each sequence (padding included: a model of padded data
predicts its padding too) divided by the number of real tokens, summed over sequences first:
$\hat b = \sum_n b_n / \sum_n \ell_n$ bits per token. The standard error is the delta-method
error of that ratio over sequences, which covers both the held-out sample and the Monte Carlo
times; `mc_stderr` is the Monte Carlo part alone (the held-out set fixed).

From the command line: `python -m ddiff.recipes.dna evaluate --checkpoint RUN --data FILE`
(and the protein and text recipes) prints the same estimate for your own FASTA file.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

__all__ = ["LikelihoodEstimate", "bits_per_token"]


@dataclass(frozen=True)
class LikelihoodEstimate:
    """Bits per token of a set of sequences under a model.

    Attributes:
        bits_per_token: total bits / total real tokens.
        stderr: standard error over sequences (data and time sampling together: the error of
            `bits_per_token` as an estimate of the expected value on data like these).
        mc_stderr: Monte Carlo error over the time samples only (0 for an exact likelihood).
        per_sequence: `[N]` bits per real token of each sequence (for paired comparisons).
        num_sequences: N.
        num_t: time samples per sequence (0 for an exact likelihood).
        exact: True for an exact likelihood, False for the diffusion bound.
    """

    bits_per_token: float
    stderr: float
    mc_stderr: float
    per_sequence: np.ndarray
    num_sequences: int
    num_t: int
    exact: bool = False

    def as_dict(self) -> dict[str, Any]:
        """The summary numbers (no per-sequence array), for JSON."""
        return {
            "bits_per_token": self.bits_per_token,
            "stderr": self.stderr,
            "mc_stderr": self.mc_stderr,
            "num_sequences": self.num_sequences,
            "num_t": self.num_t,
            "exact": self.exact,
        }

    def __str__(self) -> str:
        what = "exact NLL" if self.exact else f"bound, {self.num_t} times per sequence"
        return (
            f"{self.bits_per_token:.4f} ± {self.stderr:.4f} bits/token "
            f"({what}, {self.num_sequences} sequences)"
        )


def bits_per_token(
    model: Any,
    tokens: Tensor,
    *,
    lengths: Tensor | None = None,
    num_t: int = 16,
    seed: int = 0,
    batch_size: int = 256,
) -> LikelihoodEstimate:
    """Bits per real token of `tokens` under `model`, with its standard error.

    Args:
        model: a diffusion model (a `ddiff.training.Pretrained`, a path to a `save_pretrained`
            directory, or a `(net, graph, schedule)` tuple) scored by its likelihood bound, or an
            autoregressive model with `nll(tokens) -> [B]` (nats per sequence) scored exactly.
        tokens: LongTensor `[N, L]` of token ids (padded to a common length if needed).
        lengths: `[N]` real tokens per sequence (default: L for every sequence); the total of
            each sequence is divided by these.
        num_t: time samples per sequence for the bound (>= 2 gives a Monte Carlo error).
        seed: seed of the time and noise draws of the bound.
        batch_size: sequences per forward pass.

    Returns:
        A `LikelihoodEstimate`; `print` it for a one-line summary.

    Raises:
        ValueError: if `tokens` is not `[N, L]` with N >= 1, or `lengths` does not match it.
        TypeError: if `model` is none of the supported kinds.

    Example:
        >>> import torch
        >>> from ddiff import AbsorbingGraph, LogLinearSchedule
        >>> from ddiff.testing import ExactOracle
        >>> graph, schedule = AbsorbingGraph(2), LogLinearSchedule(eps=0.0)
        >>> p0 = torch.tensor([[0.7, 0.1], [0.1, 0.1]], dtype=torch.float64)  # over {0, 1}^2
        >>> oracle = ExactOracle(graph, p0)  # the exact scores: the bound is -log2 p0(x) / 2
        >>> x = torch.tensor([[0, 0], [1, 1], [0, 0], [0, 1]])
        >>> estimate = bits_per_token((oracle, graph, schedule), x, num_t=256)
        >>> estimate.num_sequences, estimate.exact
        (4, False)
        >>> expected = float(-torch.log2(p0[x[:, 0], x[:, 1]]).mean() / 2)
        >>> abs(estimate.bits_per_token - expected) < 4 * estimate.mc_stderr
        True
    """
    tokens = _check_tokens(tokens)
    n, length = tokens.shape
    if lengths is None:
        lengths = torch.full((n,), length, dtype=torch.float64)
    lengths = torch.as_tensor(lengths, dtype=torch.float64).cpu()
    if lengths.shape != (n,) or bool((lengths <= 0).any()):
        raise ValueError(f"lengths must be [{n}] positive numbers, got shape {list(lengths.shape)}")
    if isinstance(model, (str, os.PathLike)):
        from ddiff.training import load_pretrained

        model = load_pretrained(Path(model))
    if isinstance(model, tuple) and len(model) == 3:
        net, graph, schedule = model
    elif all(hasattr(model, a) for a in ("net", "graph", "schedule")):
        net, graph, schedule = model.net, model.graph, model.schedule
    elif callable(getattr(model, "nll", None)):
        return _exact(model, tokens, lengths, batch_size)
    else:
        raise TypeError(
            "model must be a Pretrained diffusion model, its directory, a (net, graph, schedule) "
            f"tuple, or an autoregressive model with nll(tokens); got {type(model).__name__}"
        )
    from ddiff.losses import likelihood_bound

    if isinstance(net, nn.Module):
        net = net.eval()
    bound = likelihood_bound(
        net,
        graph,
        schedule,
        tokens,
        num_t=num_t,
        generator=torch.Generator().manual_seed(seed),
        batch_size=batch_size,
    )
    nats = bound.nats.to(torch.float64).cpu()
    mc_var = float((bound.stderr.to(torch.float64) ** 2).sum()) if num_t > 1 else math.nan
    mc_stderr = math.sqrt(mc_var) / float(lengths.sum()) / math.log(2.0)
    return _summary(nats, lengths, mc_stderr, num_t, exact=False)


def _exact(model: Any, tokens: Tensor, lengths: Tensor, batch_size: int) -> LikelihoodEstimate:
    if isinstance(model, nn.Module):
        model = model.eval()
    device = _device_of(model)
    with torch.no_grad():
        nats = torch.cat(
            [
                model.nll(tokens[i : i + batch_size].to(device)).to(torch.float64).cpu()
                for i in range(0, tokens.shape[0], batch_size)
            ]
        )
    return _summary(nats, lengths, 0.0, 0, exact=True)


def _summary(
    nats: Tensor, lengths: Tensor, mc_stderr: float, num_t: int, *, exact: bool
) -> LikelihoodEstimate:
    bits = nats / math.log(2.0)
    total = float(bits.sum() / lengths.sum())
    n = bits.numel()
    # Delta-method SE of the ratio estimator sum(b) / sum(l) over sequences.
    share = (bits - total * lengths).numpy()
    stderr = (
        float(np.sqrt(np.sum(share**2) / (n * (n - 1))) / float(lengths.mean()))
        if n > 1
        else math.nan
    )
    per_sequence = (bits / lengths).numpy()
    return LikelihoodEstimate(total, stderr, mc_stderr, per_sequence, n, num_t, exact)


def _device_of(model: Any) -> torch.device:
    if isinstance(model, nn.Module):
        for p in model.parameters():
            return p.device
    return torch.device("cpu")


def _check_tokens(tokens: Tensor) -> Tensor:
    if not isinstance(tokens, Tensor) or tokens.dim() != 2 or tokens.shape[0] < 1:
        shape = list(tokens.shape) if isinstance(tokens, Tensor) else type(tokens).__name__
        raise ValueError(f"tokens must be a LongTensor [N, L] with N >= 1, got {shape}")
    if tokens.dtype.is_floating_point or tokens.dtype == torch.bool:
        raise ValueError(f"tokens must hold integer token ids, got dtype {tokens.dtype}")
    return tokens.long()
