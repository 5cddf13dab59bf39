"""The autoregressive baseline: next-token training, validated with the exact likelihood.

The comparison the SEDD paper makes (its bound against GPT-2's perplexity), on equal terms: a
`CausalTransformer` of the same size as the diffusion network, trained by the same Lightning
machinery (`build_trainer`, `TokenDataModule`, `OptimSettings`, EMA, clipping, atomic
checkpoints) on the same data, and scored in the same unit: bits per real token of the padded
sequences (see `ddiff.training.data`). `ddiff.eval.bits_per_token` scores a trained network on
any held-out set, with the figures validation logs.
"""

from __future__ import annotations

import math
from typing import Any, cast

from torch import Tensor

from ddiff.eval.statistics import ratio_estimate, ratio_sums
from ddiff.nets import CausalTransformer
from ddiff.training._seeding import LABEL_DROPOUT
from ddiff.training.data import TokenBatch
from ddiff.training.module import _as_batch, _labels_of, _TrainingModule
from ddiff.training.optim import OptimSettings

__all__ = ["AutoregressiveModule"]


class AutoregressiveModule(_TrainingModule):
    r"""Next-token training of a `CausalTransformer`, validated with its exact likelihood.

    The training loss is the negative log-likelihood of the batch per real token,

    $$\mathcal{L} = \frac{1}{\#\text{real tokens}} \sum_b \sum_{i=1}^{L}
      -\log p_\theta\bigl(x_b^i \mid x_b^{<i}\bigr) \quad \text{nats per token},$$

    summed over all L positions, pads included, exactly as `DiffusionModule`'s bound counts
    them (the pads are data: the model learns where sequences end), divided by the real
    tokens (`TokenBatch.lengths`); computed in float32 or wider, also under bf16 autocast.
    Validation uses the weights' exponential moving average (`ema`) and logs `val/bits_per_token`
    as `DiffusionModule` does, so that the same log readers compare the two, with an error of
    another kind under another name:

    - `val/bits_per_token`: $\sum_b -\log_2 p_\theta(x_b) / \sum_b \ell_b$, exact (no bound,
      no Monte Carlo), with $\ell_b$ the real tokens of sequence b;
    - `val/stderr_bits_per_token`: the standard error of that ratio over the validation
      sequences (delta method: $\sqrt{\frac{B}{B - 1} \sum_b (n_b - \hat r \ell_b)^2} /
      \sum_b \ell_b$, with $n_b$ the bits of sequence b and $\hat r$ the ratio). Unlike the
      diffusion module's `val/mc_stderr_bits_per_token`, a Monte Carlo error over time samples
      with the data held fixed, this one measures how far the validation set's figure is from
      the model's expected NLL on the source.

    Both are what `ddiff.eval.bits_per_token(module.averaged_net, val_tokens, lengths=...)`
    returns as `bits_per_token` and `stderr` (the same code computes them), so a held-out set
    is scored after training exactly as validation scored it.

    Everything else is `DiffusionModule`'s: AdamW, warm-up, clipping and EMA from
    `OptimSettings`, the training loss logged as `train/loss`, checkpoints carrying the EMA.
    Checkpoints are marked as autoregressive and record the vocabulary: a `DiffusionModule`
    refuses them and this module refuses diffusion checkpoints, with a message that says so.
    Training draws no random numbers (unless the network has dropout), so a resumed run
    continues exactly as an uninterrupted one.

    **Labels.** With labelled batches (`TokenBatch.labels`) and a network with labels, the loss
    and the validation NLL are those of $p_\theta(x \mid c)$: the conditional baseline of a
    label-conditioned diffusion model. Checkpoints then record the number of labels.

    Args:
        net: the autoregressive network.
        optim: AdamW, warm-up, clipping and EMA settings.
        label_dropout: probability of training a sequence with the null label (0 by default:
            the baseline is a conditional model; it has no use for guidance).

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
    # The sums of `ddiff.eval.statistics.ratio_sums`, over the batches and ranks: sequences,
    # nats, real tokens, nats^2, nats*tokens, tokens^2.
    _NUM_VAL_SUMS = 6

    net: CausalTransformer

    def __init__(
        self,
        net: CausalTransformer,
        optim: OptimSettings | None = None,
        *,
        label_dropout: float = 0.0,
    ) -> None:
        if not isinstance(net, CausalTransformer):
            raise TypeError(
                f"net must be a ddiff.nets.CausalTransformer, got {type(net).__name__}; "
                "score networks train with DiffusionModule"
            )
        super().__init__(net, optim, label_dropout)

    def forward(self, tokens: Tensor, label: Tensor | None = None) -> Tensor:
        """Next-token logits `[B, L, N]` of the trained (not averaged) network."""
        return self.net(tokens, label=label)

    def loss(self, batch: TokenBatch | Tensor) -> Tensor:
        """The training loss of a batch: nats per real token, float32 or wider."""
        tokens, lengths = _as_batch(batch)
        labels = _labels_of(batch, self.num_labels)
        return self.net.nll(tokens, label=labels).sum() / lengths.sum()

    def _step_loss(self, batch: TokenBatch, batch_idx: int) -> Tensor:
        if batch.labels is not None and self.label_dropout > 0.0:
            rank = self.global_rank if self._trainer is not None else 0
            keys = (0, LABEL_DROPOUT, self.global_step, batch_idx, rank)
            batch = batch._replace(labels=self._drop_labels(batch.labels, *keys))
        return self.loss(batch)

    # -- validation: the exact likelihood with the averaged weights -------------------------------

    def validation_step(self, batch: TokenBatch | Tensor, batch_idx: int) -> None:
        tokens, lengths = _as_batch(batch)
        labels = _labels_of(batch, self.num_labels)
        nats = cast(CausalTransformer, self.averaged_net).nll(tokens, label=labels)
        self._add_validation_sums(ratio_sums(nats, lengths))

    def _validation_metrics(self, sums: list[float]) -> dict[str, float]:
        if sums[2] == 0:
            return {}
        nats, stderr = ratio_estimate(sums)
        return {
            "val/bits_per_token": nats / math.log(2.0),
            "val/stderr_bits_per_token": stderr / math.log(2.0),
        }

    # -- checkpoints: the vocabulary --------------------------------------------------------------

    def _checkpoint_identity(self) -> dict[str, Any]:
        return {"num_tokens": self.net.num_tokens, **self._checkpoint_labels()}

    def _check_checkpoint_identity(self, info: dict[str, Any]) -> None:
        saved = info.get("num_tokens")
        if saved != self.net.num_tokens:
            raise ValueError(
                f"the checkpoint was trained for {saved} tokens, but the model here predicts "
                f"{self.net.num_tokens}; build the network with the checkpoint's vocabulary"
            )
        self._check_checkpoint_labels(info)
