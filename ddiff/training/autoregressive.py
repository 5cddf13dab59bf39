"""The autoregressive baseline: next-token training and exact held-out likelihood.

The comparison the SEDD paper makes (its bound against GPT-2's perplexity), on equal terms: a
`CausalTransformer` of the same size as the diffusion network, trained by the same Lightning
machinery (`build_trainer`, `TokenDataModule`, `OptimSettings`, EMA, clipping, atomic
checkpoints) on the same data, and scored in the same unit: bits per real token of the padded
sequences (see `ddiff.training.data`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import Tensor

from ddiff._checks import check_token_batch
from ddiff.nets import CausalTransformer
from ddiff.training.data import TokenBatch
from ddiff.training.module import _as_batch, _TrainingModule
from ddiff.training.optim import OptimSettings

__all__ = ["AutoregressiveModule", "ExactNLL", "heldout_nll"]


class AutoregressiveModule(_TrainingModule):
    r"""Next-token training of a `CausalTransformer`, validated with its exact likelihood.

    The training loss is the negative log-likelihood of the batch per real token,

    $$\mathcal{L} = \frac{1}{\#\text{real tokens}} \sum_b \sum_{i=1}^{L}
      -\log p_\theta\bigl(x_b^i \mid x_b^{<i}\bigr) \quad \text{nats per token},$$

    summed over all L positions, pads included, exactly as `DiffusionModule`'s bound counts
    them (the pads are data: the model learns where sequences end), divided by the real
    tokens (`TokenBatch.lengths`); computed in float32 or wider, also under bf16 autocast.
    Validation uses the weights' exponential moving average (`ema`) and logs the same keys as
    `DiffusionModule`, so that the same log readers compare the two:

    - `val/bits_per_token`: $\sum_b -\log_2 p_\theta(x_b) / \sum_b \ell_b$, exact (no bound,
      no Monte Carlo), with $\ell_b$ the real tokens of sequence b;
    - `val/stderr_bits_per_token`: the standard error of that ratio over the validation
      sequences (delta method: $\sqrt{\frac{B}{B - 1} \sum_b (n_b - \hat r \ell_b)^2} /
      \sum_b \ell_b$, with $n_b$ the bits of sequence b and $\hat r$ the ratio). Unlike the
      diffusion module's, whose standard error is over time samples with the data held
      fixed, this one measures how far the validation set's figure is from the model's
      expected NLL on the source.

    Everything else is `DiffusionModule`'s: AdamW, warm-up, clipping and EMA from
    `OptimSettings`, the training loss logged as `train/loss`, checkpoints carrying the EMA.
    Checkpoints are marked as autoregressive and record the vocabulary: a `DiffusionModule`
    refuses them and this module refuses diffusion checkpoints, with a message that says so.
    Training draws no random numbers (unless the network has dropout), so a resumed run
    continues exactly as an uninterrupted one.

    Args:
        net: the autoregressive network.
        optim: AdamW, warm-up, clipping and EMA settings.

    Example:
        >>> import torch
        >>> from ddiff.nets import CausalTransformer
        >>> from ddiff.training import AutoregressiveModule, TokenBatch
        >>> module = AutoregressiveModule(CausalTransformer.from_preset("tiny", num_tokens=4))
        >>> tokens = torch.randint(4, (8, 16), generator=torch.Generator().manual_seed(0))
        >>> loss = module.loss(tokens)  # an untrained net is uniform: log 4 nats per token
        >>> loss.dtype, round(loss.item(), 4)
        (torch.float32, 1.3863)
        >>> padded = TokenBatch(tokens, torch.full((8,), 12))  # 4 pads per sequence
        >>> round(module.loss(padded).item() / loss.item(), 4)  # 16 scored / 12 real
        1.3333
    """

    _KIND = "autoregressive"
    # Sums over the batches and ranks: sequences, nats, real tokens, nats^2, nats*tokens, tokens^2.
    _NUM_VAL_SUMS = 6

    net: CausalTransformer

    def __init__(self, net: CausalTransformer, optim: OptimSettings | None = None) -> None:
        if not isinstance(net, CausalTransformer):
            raise TypeError(
                f"net must be a ddiff.nets.CausalTransformer, got {type(net).__name__}; "
                "score networks train with DiffusionModule"
            )
        super().__init__(net, optim)

    def forward(self, tokens: Tensor) -> Tensor:
        """Next-token logits `[B, L, N]` of the trained (not averaged) network."""
        return self.net(tokens)

    def loss(self, batch: TokenBatch | Tensor) -> Tensor:
        """The training loss of a batch: nats per real token, float32 or wider."""
        tokens, lengths = _as_batch(batch)
        return self.net.nll(tokens).sum() / lengths.sum()

    def _step_loss(self, batch: TokenBatch, batch_idx: int) -> Tensor:
        return self.loss(batch)

    # -- validation: the exact likelihood with the averaged weights -------------------------------

    def validation_step(self, batch: TokenBatch | Tensor, batch_idx: int) -> None:
        tokens, lengths = _as_batch(batch)
        nats = cast(CausalTransformer, self.averaged_net).nll(tokens)
        self._add_validation_sums(_ratio_sums(nats, lengths))

    def _validation_metrics(self, sums: list[float]) -> dict[str, float]:
        if sums[2] == 0:
            return {}
        nats, stderr = _ratio_estimate(sums)
        return {
            "val/bits_per_token": nats / math.log(2.0),
            "val/stderr_bits_per_token": stderr / math.log(2.0),
        }

    # -- checkpoints: the vocabulary --------------------------------------------------------------

    def _checkpoint_identity(self) -> dict[str, Any]:
        return {"num_tokens": self.net.num_tokens}

    def _check_checkpoint_identity(self, info: dict[str, Any]) -> None:
        saved = info.get("num_tokens")
        if saved != self.net.num_tokens:
            raise ValueError(
                f"the checkpoint was trained for {saved} tokens, but the model here predicts "
                f"{self.net.num_tokens}; build the network with the checkpoint's vocabulary"
            )


@dataclass(frozen=True)
class ExactNLL:
    r"""The exact negative log-likelihood of a set of sequences under an autoregressive model.

    Attributes:
        nats: `[N]` float64, $-\log p_\theta(x_n)$ of each (padded) sequence, nats.
        num_tokens: `[N]` the real tokens of each sequence (the per-token denominator).
    """

    nats: Tensor
    num_tokens: Tensor

    @property
    def bits(self) -> Tensor:
        """`[N]` NLL per sequence, bits."""
        return self.nats / math.log(2.0)

    @property
    def sequence_bits_per_token(self) -> Tensor:
        """`[N]` NLL of each sequence per real token, bits."""
        return self.bits / self.num_tokens

    @property
    def bits_per_token(self) -> float:
        """Total NLL over total real tokens, bits: the figure `val/bits_per_token` logs."""
        return _ratio_estimate(_ratio_sums(self.nats, self.num_tokens).tolist())[0] / math.log(2)

    @property
    def stderr_bits_per_token(self) -> float:
        """Standard error of `bits_per_token` over the sequences (delta method for a ratio of
        sums); NaN for a single sequence. Bounds how far `bits_per_token` is from the model's
        expected NLL on the source the sequences were drawn from."""
        return _ratio_estimate(_ratio_sums(self.nats, self.num_tokens).tolist())[1] / math.log(2)


@torch.no_grad()
def heldout_nll(
    net: CausalTransformer,
    tokens: Tensor,
    lengths: Tensor | None = None,
    batch_size: int = 256,
) -> ExactNLL:
    """The exact NLL of held-out sequences under an autoregressive network.

    The network is evaluated in eval mode (no dropout; its previous mode is restored), in
    batches, on its own device; results come back on the CPU. Summarise with
    `.bits_per_token` and `.stderr_bits_per_token`.

    Args:
        net: the network (for a trained module, its `averaged_net`).
        tokens: integer tensor `[N, L]`, padded sequences.
        lengths: `[N]` real tokens per sequence, in `[1, L]` (default: L each).
        batch_size: sequences per forward pass.

    Returns:
        An `ExactNLL`.

    Raises:
        ValueError: if `lengths` does not match `tokens`, or a token is invalid (the message
            names its `[batch n, position i]` in `tokens`).

    Example:
        >>> import torch
        >>> from ddiff.nets import CausalTransformer
        >>> from ddiff.training import heldout_nll
        >>> net = CausalTransformer.from_preset("tiny", num_tokens=4)  # untrained: uniform
        >>> result = heldout_nll(net, torch.randint(4, (10, 6)))
        >>> round(result.bits_per_token, 6), round(result.stderr_bits_per_token, 6)
        (2.0, 0.0)
    """
    if not isinstance(net, CausalTransformer):
        raise TypeError(f"net must be a ddiff.nets.CausalTransformer, got {type(net).__name__}")
    tokens = check_token_batch(tokens, net.num_tokens, "tokens", "num_tokens")
    if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    n, length = tokens.shape
    if lengths is None:
        lengths = torch.full((n,), length, dtype=torch.long)
    lengths = torch.as_tensor(lengths).cpu()
    if lengths.shape != (n,) or lengths.dtype.is_floating_point:
        raise ValueError(
            f"lengths must be integers of shape [{n}] (one per sequence), got "
            f"{lengths.dtype} of shape {list(lengths.shape)}"
        )
    if not (int(lengths.min()) >= 1 and int(lengths.max()) <= length):
        raise ValueError(f"lengths must be in [1, {length}] (the padded length)")
    device = net.embedding.weight.device
    was_training = net.training
    net.eval()
    try:
        nats = [
            net.nll(tokens[i : i + batch_size].to(device)).double().cpu()
            for i in range(0, n, int(batch_size))
        ]
    finally:
        net.train(was_training)
    return ExactNLL(torch.cat(nats), lengths)


def _ratio_sums(nats: Tensor, lengths: Tensor) -> Tensor:
    """The float64 sums the ratio estimator and its standard error need; they add over batches
    and ranks: sequences, sum n, sum l, sum n^2, sum n l, sum l^2."""
    n = nats.detach().double()
    ell = lengths.to(device=n.device, dtype=torch.float64)
    count = torch.tensor(float(n.numel()), dtype=torch.float64, device=n.device)
    return torch.stack(
        [count, n.sum(), ell.sum(), (n * n).sum(), (n * ell).sum(), (ell * ell).sum()]
    )


def _ratio_estimate(sums: list[float]) -> tuple[float, float]:
    """(sum n / sum l, its delta-method standard error) from `_ratio_sums`; NaN stderr for one
    sequence."""
    count, n, ell, nn, nl, ll = sums
    ratio = n / ell
    # sum_b (n_b - ratio l_b)^2, expanded; cancellation is harmless at float64 for these sums.
    residual = max(nn - 2.0 * ratio * nl + ratio * ratio * ll, 0.0)
    if count < 2:
        return ratio, math.nan
    return ratio, math.sqrt(count / (count - 1.0) * residual) / ell
