r"""Likelihood of held-out sequences in bits per token, with standard errors.

One entry point for every kind of model, so that a diffusion model and its baselines are scored
on the same sequences with the same error bars:

- a diffusion model (a `(net, graph, schedule)` triple, or an object with those three
  attributes such as `ddiff.pretrained.Pretrained`): the likelihood **bound** (Lou, Meng &
  Ermon, ICML 2024, eq. 11), an upper bound on $-\log p_\theta(x_0)$ estimated by Monte Carlo
  over `num_t` stratified times per sequence (`ddiff.losses.likelihood_bound`);
- an autoregressive model (anything with `nll(tokens) -> [B]` nats per sequence, such as
  `ddiff.nets.CausalTransformer`): the **exact** negative log-likelihood.

Both are totals over all L positions of each sequence (padding included: a model of padded data
predicts its padding too) divided by the number of real tokens, summed over sequences first:
$\hat b = \sum_n b_n / \sum_n \ell_n$ bits per token. The standard error is the delta-method
error of that ratio over sequences, which covers both the held-out sample and the Monte Carlo
times; `mc_stderr` is the Monte Carlo part alone (the held-out set fixed). The same figures,
from the same code (`ddiff.eval.statistics`), are what `ddiff.training.AutoregressiveModule`
logs as `val/bits_per_token` and `val/stderr_bits_per_token`.

Only objects are scored here: a saved model is loaded by `ddiff.pretrained.load_pretrained`, or
scored from its directory in one call by `ddiff.pretrained.bits_per_token_from_path`.

Models are scored in eval mode (no dropout), on their own device, without gradients; each
module's previous training mode is restored afterwards. Results come back on the CPU.

From the command line: `python -m ddiff.recipes.dna evaluate --checkpoint RUN --data FILE`
(and the protein and text recipes) prints the same estimate for your own FASTA file.
"""

from __future__ import annotations

import itertools
import math
import numbers
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from os import PathLike
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ddiff._checks import check_token_batch
from ddiff.eval.statistics import ratio_estimate, ratio_sums

__all__ = ["LikelihoodEstimate", "bits_per_token"]


@dataclass(frozen=True)
class LikelihoodEstimate:
    r"""Bits per token of a set of sequences under a model.

    Attributes:
        bits_per_token: total bits / total real tokens.
        stderr: standard error over sequences (data and time sampling together: the error of
            `bits_per_token` as an estimate of the expected value on data like these).
        mc_stderr: Monte Carlo error over the time samples only (0 for an exact likelihood).
        per_sequence: `[N]` bits per real token of each sequence (for paired comparisons).
        num_sequences: N.
        num_t: time samples per sequence (0 for an exact likelihood).
        exact: True for an exact likelihood, False for the diffusion bound.

    Example:
        `bits_per_token` returns one; here for exact scores, where the bound of a sequence x is
        close to $-\log_2 p_0(x) / 2$ (0.26 bits per token for 00, 1.66 for 11 and 01):

        >>> import torch
        >>> from ddiff import AbsorbingGraph, LogLinearSchedule
        >>> from ddiff.eval import bits_per_token
        >>> from ddiff.testing import ExactOracle
        >>> graph, schedule = AbsorbingGraph(2), LogLinearSchedule(survival=0.0)
        >>> oracle = ExactOracle(graph, torch.tensor([[0.7, 0.1], [0.1, 0.1]]))  # p0 on {0, 1}^2
        >>> x = torch.tensor([[0, 0], [1, 1], [0, 1]])
        >>> estimate = bits_per_token((oracle, graph, schedule), x, num_t=64, seed=0)
        >>> print(estimate)
        1.1577 ± 0.4530 bits/token (bound, 64 times per sequence, 3 sequences)
        >>> estimate.per_sequence.round(2), round(estimate.mc_stderr, 2)
        (array([0.26, 1.53, 1.69]), 0.18)
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
        model: a diffusion model, a `(net, graph, schedule)` tuple or an object with `net`,
            `graph` and `schedule` attributes (a `ddiff.pretrained.Pretrained`), scored by its
            likelihood bound; or an autoregressive model with `nll(tokens) -> [B]` (nats per
            sequence) scored exactly, such as a `ddiff.nets.CausalTransformer` (for a trained
            `AutoregressiveModule`, its `averaged_net`).
        tokens: integer tensor `[N, L]` of token ids (padded to a common length if needed).
        lengths: `[N]` integers in `[1, L]`, the real tokens of each sequence (default: L for
            every sequence); the total of each sequence is divided by these.
        num_t: time samples per sequence for the bound (>= 2 gives a Monte Carlo error);
            unused for an exact likelihood.
        seed: seed of the time and noise draws of the bound (a generator on the network's
            device).
        batch_size: sequences per forward pass (for the bound: (sequence, time) pairs).

    Returns:
        A `LikelihoodEstimate`; `print` it for a one-line summary.

    Raises:
        ValueError: if `tokens` is not an integer tensor `[N, L]` with N, L >= 1, holds a token
            outside the model's vocabulary (the message names its `[batch n, position i]`),
            `lengths` are not `[N]` integers in `[1, L]` (the first bad one is named), or
            `batch_size` is not a positive integer.
        TypeError: if `model` is none of the supported kinds (a path is not: load it with
            `ddiff.pretrained.load_pretrained`, or use
            `ddiff.pretrained.bits_per_token_from_path`).

    Example:
        >>> import torch
        >>> from ddiff import AbsorbingGraph, LogLinearSchedule
        >>> from ddiff.testing import ExactOracle
        >>> graph, schedule = AbsorbingGraph(2), LogLinearSchedule(survival=0.0)
        >>> p0 = torch.tensor([[0.7, 0.1], [0.1, 0.1]], dtype=torch.float64)  # over {0, 1}^2
        >>> oracle = ExactOracle(graph, p0)  # the exact scores: the bound is -log2 p0(x) / 2
        >>> x = torch.tensor([[0, 0], [1, 1], [0, 0], [0, 1]])
        >>> estimate = bits_per_token((oracle, graph, schedule), x, num_t=256)
        >>> estimate.num_sequences, estimate.exact
        (4, False)
        >>> expected = float(-torch.log2(p0[x[:, 0], x[:, 1]]).mean() / 2)
        >>> abs(estimate.bits_per_token - expected) < 4 * estimate.mc_stderr
        True

        An autoregressive network is scored exactly; an untrained one is uniform:

        >>> from ddiff.nets import CausalTransformer
        >>> net = CausalTransformer.from_preset("tiny", num_tokens=4)
        >>> exact = bits_per_token(net, torch.randint(4, (10, 6)))
        >>> exact.exact, round(exact.bits_per_token, 6), round(exact.stderr, 6)
        (True, 2.0, 0.0)
    """
    tokens = _check_tokens(tokens)
    integral = isinstance(batch_size, numbers.Integral) and not isinstance(batch_size, bool)
    if not integral or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    batch_size = int(batch_size)
    lengths = _check_lengths(lengths, tokens)
    if isinstance(model, tuple) and len(model) == 3:
        net, graph, schedule = model
    elif all(hasattr(model, a) for a in ("net", "graph", "schedule")):
        net, graph, schedule = model.net, model.graph, model.schedule
    elif callable(getattr(model, "nll", None)):
        return _exact(model, tokens, lengths, batch_size)
    else:
        hint = ""
        if isinstance(model, str | PathLike):
            hint = (
                "; to score a saved model, use ddiff.pretrained.bits_per_token_from_path(path, "
                "tokens) or bits_per_token(load_pretrained(path), tokens)"
            )
        raise TypeError(
            "model must be a Pretrained (or another object with net, graph and schedule), a "
            "(net, graph, schedule) tuple, or an autoregressive model with nll(tokens); got "
            f"{type(model).__name__}{hint}"
        )
    return _bound(net, graph, schedule, tokens, lengths, num_t, seed, batch_size)


def _bound(
    net: Any,
    graph: Any,
    schedule: Any,
    tokens: Tensor,
    lengths: Tensor,
    num_t: int,
    seed: int,
    batch_size: int,
) -> LikelihoodEstimate:
    from ddiff.losses import likelihood_bound

    tokens = check_token_batch(tokens, graph.num_tokens, "tokens", "num_tokens", "the graph")
    device = _device_of(net, tokens.device)
    with _eval_mode(net), torch.no_grad():
        bound = likelihood_bound(
            net,
            graph,
            schedule,
            tokens.to(device),
            num_t=num_t,
            generator=torch.Generator(device).manual_seed(seed),
            batch_size=batch_size,
        )
    nats = bound.nats.to(torch.float64).cpu()
    mc_var = float((bound.stderr.to(torch.float64) ** 2).sum()) if num_t > 1 else math.nan
    mc_stderr = math.sqrt(mc_var) / float(lengths.sum()) / math.log(2.0)
    return _summary(nats, lengths, mc_stderr, num_t, exact=False)


def _exact(model: Any, tokens: Tensor, lengths: Tensor, batch_size: int) -> LikelihoodEstimate:
    # Check the whole set up front: the network's own check would name a position in a batch.
    num_tokens = getattr(model, "num_tokens", None)
    if isinstance(num_tokens, int):
        tokens = check_token_batch(tokens, num_tokens, "tokens", "num_tokens")
    device = _device_of(model, tokens.device)
    n = tokens.shape[0]
    with _eval_mode(model), torch.no_grad():
        nats = torch.cat(
            [
                model.nll(tokens[i : i + batch_size].to(device)).to(torch.float64).cpu()
                for i in range(0, n, batch_size)
            ]
        )
    if nats.shape != (n,):
        raise ValueError(
            f"model.nll must return [batch] nats per sequence; got {nats.numel()} values for "
            f"{n} sequences"
        )
    return _summary(nats, lengths, 0.0, 0, exact=True)


def _summary(
    nats: Tensor, lengths: Tensor, mc_stderr: float, num_t: int, *, exact: bool
) -> LikelihoodEstimate:
    ratio, stderr = ratio_estimate(ratio_sums(nats, lengths).tolist())
    per_sequence = (nats / lengths.to(torch.float64) / math.log(2.0)).numpy()
    return LikelihoodEstimate(
        ratio / math.log(2.0),
        stderr / math.log(2.0),
        mc_stderr,
        per_sequence,
        nats.numel(),
        num_t,
        exact,
    )


@contextmanager
def _eval_mode(model: Any) -> Iterator[None]:
    """Every submodule of `model` in eval mode (no dropout), and back to its own mode after."""
    if not isinstance(model, nn.Module):
        yield
        return
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training


def _device_of(model: Any, default: torch.device) -> torch.device:
    """The device of the module's first parameter or buffer; `default` for anything else."""
    if isinstance(model, nn.Module):
        for t in itertools.chain(model.parameters(), model.buffers()):
            return t.device
    return default


_INTEGER_DTYPES = (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8)


def _check_tokens(tokens: Tensor) -> Tensor:
    if not isinstance(tokens, Tensor) or tokens.dim() != 2 or min(tokens.shape) < 1:
        shape = list(tokens.shape) if isinstance(tokens, Tensor) else type(tokens).__name__
        raise ValueError(f"tokens must be an integer tensor [N, L] with N, L >= 1, got {shape}")
    if tokens.dtype not in _INTEGER_DTYPES:
        raise ValueError(f"tokens must hold integer token ids, got dtype {tokens.dtype}")
    return tokens.long()


def _check_lengths(lengths: Tensor | None, tokens: Tensor) -> Tensor:
    """`lengths` as int64 on the CPU, if they are `[N]` integers in `[1, L]` for `tokens`."""
    n, length = tokens.shape
    if lengths is None:
        return torch.full((n,), length, dtype=torch.long)
    lengths = torch.as_tensor(lengths).cpu()
    if lengths.shape != (n,) or lengths.dtype not in _INTEGER_DTYPES:
        raise ValueError(
            f"lengths must be [{n}] integers, the real tokens of each sequence of tokens; got "
            f"{lengths.dtype} of shape {list(lengths.shape)}"
        )
    bad = ((lengths < 1) | (lengths > length)).nonzero()
    if bad.numel() > 0:
        i = int(bad[0, 0])
        raise ValueError(
            f"lengths must be in [1, {length}] (tokens has {length} positions per sequence); "
            f"lengths[{i}] = {int(lengths[i])}"
        )
    return lengths.long()
