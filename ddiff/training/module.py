"""The LightningModule that trains a score network with denoising score entropy.

`_TrainingModule` holds what it shares with `ddiff.training.AutoregressiveModule`.
"""

from __future__ import annotations

import abc
import math
from typing import Any, ClassVar, Literal

import lightning as L
import torch
from torch import Tensor, nn

from ddiff.graphs import Graph
from ddiff.losses import bound_integrand, likelihood_bound, sample_times
from ddiff.losses.likelihood import TimeSampling
from ddiff.losses.times import ImportanceTimes
from ddiff.schedules import NoiseSchedule
from ddiff.training._seeding import (
    LABEL_DROPOUT,
    TRAIN_NOISE,
    TRAIN_TIMES,
    VALIDATION,
    keyed_generator,
)
from ddiff.training._signature import check_same_graph, graph_signature
from ddiff.training.data import TokenBatch
from ddiff.training.ema import EMA
from ddiff.training.optim import OptimSettings

_CHECKPOINT_KEY = "ddiff"
_CHECKPOINT_FORMAT = 1
# What each kind of checkpoint is loaded with. DiffusionModule checkpoints predate the kind marker
# and carry none: a checkpoint without one is a diffusion checkpoint.
_MODULE_OF_KIND = {
    "diffusion": "DiffusionModule",
    "autoregressive": "AutoregressiveModule",
    "classifier": "ClassifierModule",
}
_UNMARKED_KIND = "diffusion"


class _TrainingModule(L.LightningModule, abc.ABC):
    """What every ddiff training module shares (internal).

    AdamW with warm-up (`OptimSettings`), gradient clipping, the weight EMA (updated after every
    optimizer step, moved to the module's device, refused under FSDP), the logging of the
    training loss, the reduction of validation sums over batches and ranks, and checkpoint
    entries that record the kind of model, its identity and the EMA.

    Subclasses set `_KIND` and `_NUM_VAL_SUMS`, and implement `_step_loss` (the loss of one
    training batch), `_validation_metrics` (metrics from the reduced validation sums),
    `_checkpoint_identity` and `_check_checkpoint_identity`. Their `validation_step` adds its
    sums with `_add_validation_sums`.
    """

    _KIND: ClassVar[str]
    _NUM_VAL_SUMS: ClassVar[int]

    def __init__(
        self, net: nn.Module, optim: OptimSettings | None, label_dropout: float = 0.0
    ) -> None:
        super().__init__()
        if not isinstance(net, nn.Module):
            raise TypeError(f"net must be a torch.nn.Module, got {type(net).__name__}")
        if not 0.0 <= float(label_dropout) <= 1.0:
            raise ValueError(f"label_dropout must be in [0, 1], got {label_dropout!r}")
        self.net = net
        self.label_dropout = float(label_dropout)
        self.optim = optim if optim is not None else OptimSettings()
        decay = self.optim.ema_decay
        self.ema = None if decay is None else EMA(net, decay)
        self._val_sums: Tensor | None = None

    @property
    def num_labels(self) -> int:
        """Number of class labels the network is conditioned on (0: unconditional)."""
        return int(getattr(self.net, "num_labels", 0))

    def _drop_labels(self, labels: Tensor, *keys: int) -> Tensor:
        """Labels with each replaced by the null label (-1) with probability `label_dropout`.

        Classifier-free guidance needs one network that is both conditional and unconditional
        (Ho & Salimans, *Classifier-Free Diffusion Guidance*, 2022): training on the null label
        for a fraction of the sequences teaches the unconditional model. The draw is keyed by
        (seed, step, micro-batch, rank), so a resumed run drops the same labels.
        """
        if self.label_dropout == 0.0:
            return labels
        g = keyed_generator(*keys)
        drop = torch.rand(labels.shape[0], generator=g) < self.label_dropout
        return torch.where(drop.to(labels.device), -1, labels)

    def _checkpoint_labels(self) -> dict[str, Any]:
        """The label count a checkpoint records (nothing for unconditional models)."""
        return {"num_labels": self.num_labels} if self.num_labels else {}

    def _check_checkpoint_labels(self, info: dict[str, Any]) -> None:
        saved = int(info.get("num_labels", 0))
        if saved != self.num_labels:
            what = "without labels" if saved == 0 else f"with {saved} labels"
            here = "no labels" if self.num_labels == 0 else f"{self.num_labels} labels"
            raise ValueError(
                f"the checkpoint was trained {what}, but the network here has {here}; build the "
                "network with the checkpoint's label set (net.labels in its configuration)"
            )

    @property
    def averaged_net(self) -> nn.Module:
        """The network used for validation and sampling: the EMA copy (or `net` without EMA)."""
        return self.net if self.ema is None else self.ema.model

    # -- training ---------------------------------------------------------------------------------

    @abc.abstractmethod
    def _step_loss(self, batch: TokenBatch, batch_idx: int) -> Tensor:
        """The loss of training batch `batch_idx` (a scalar, float32 or wider)."""

    def training_step(self, batch: TokenBatch | Tensor, batch_idx: int) -> Tensor:
        tokens, lengths = _as_batch(batch)
        labels = _labels_of(batch, self.num_labels)
        loss = self._step_loss(TokenBatch(tokens, lengths, labels), batch_idx)
        self.log("train/loss", loss, prog_bar=True, sync_dist=True, batch_size=tokens.shape[0])
        return loss

    # -- validation sums --------------------------------------------------------------------------

    @abc.abstractmethod
    def _validation_metrics(self, sums: list[float]) -> dict[str, float]:
        """Logged metrics from this epoch's validation sums, reduced over batches and ranks."""

    def on_validation_epoch_start(self) -> None:
        self._ema_to_device()
        self._val_sums = torch.zeros(self._NUM_VAL_SUMS, dtype=torch.float64, device=self.device)

    def _add_validation_sums(self, sums: Tensor) -> None:
        if self._val_sums is None:
            self._val_sums = torch.zeros(
                self._NUM_VAL_SUMS, dtype=torch.float64, device=self.device
            )
        self._val_sums += sums.to(self._val_sums.device, torch.float64)

    def on_validation_epoch_end(self) -> None:
        if self._val_sums is None:
            return
        sums = self.trainer.strategy.reduce(self._val_sums, reduce_op="sum")
        self._val_sums = None
        for name, value in self._validation_metrics(sums.tolist()).items():
            self.log(name, value, prog_bar=name == "val/bits_per_token", sync_dist=True)

    # -- optimisation -----------------------------------------------------------------------------

    def configure_optimizers(self) -> Any:
        optimizer = self.optim.build_optimizer(self.net.parameters())
        max_steps = self.trainer.max_steps if self.trainer.max_steps > 0 else None
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, self.optim.lr_factor(max_steps))
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }

    def configure_gradient_clipping(
        self,
        optimizer: torch.optim.Optimizer,
        gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str | None = None,
    ) -> None:
        # The Trainer's gradient_clip_val, if given, wins over the module's own setting.
        clip = gradient_clip_val if gradient_clip_val is not None else self.optim.grad_clip
        if clip:
            self.clip_gradients(
                optimizer,
                gradient_clip_val=clip,
                gradient_clip_algorithm=gradient_clip_algorithm or "norm",
            )

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        super().optimizer_step(*args, **kwargs)
        if self.ema is not None:
            self.ema.update(self.net)

    def on_fit_start(self) -> None:
        from lightning.pytorch.strategies import FSDPStrategy

        if self.ema is not None and isinstance(self.trainer.strategy, FSDPStrategy):
            raise ValueError(
                "the weight EMA keeps an unsharded copy of the network and does not support "
                "FSDP yet; set optim.ema_decay to None (null in YAML) to train with FSDP"
            )
        self._ema_to_device()

    def _ema_to_device(self) -> None:
        if self.ema is not None:
            self.ema.to(self.device)

    # -- checkpoints ------------------------------------------------------------------------------

    @abc.abstractmethod
    def _checkpoint_identity(self) -> dict[str, Any]:
        """What a checkpoint must match to be loaded (besides its kind); plain values only."""

    @abc.abstractmethod
    def _check_checkpoint_identity(self, info: dict[str, Any]) -> None:
        """Raise `ValueError` unless `info` (a checkpoint's entry) fits this module."""

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        identity = self._checkpoint_identity()
        if self._KIND != _UNMARKED_KIND:  # diffusion checkpoints keep their original format
            identity = {"kind": self._KIND, **identity}
        checkpoint[_CHECKPOINT_KEY] = {
            "format": _CHECKPOINT_FORMAT,
            **identity,
            "ema": None if self.ema is None else self.ema.state_dict(),
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        mine = _MODULE_OF_KIND[self._KIND]
        info = checkpoint.get(_CHECKPOINT_KEY)
        if not isinstance(info, dict):
            raise ValueError(
                f"this checkpoint was not written by ddiff's {mine} (no 'ddiff' entry); "
                "only resume from checkpoints of your own runs"
            )
        kind = info.get("kind", _UNMARKED_KIND)
        if kind != self._KIND:
            writer = _MODULE_OF_KIND.get(kind, f"an unknown module (kind {kind!r})")
            raise ValueError(
                f"this checkpoint holds a {kind} model written by {writer}, and cannot be "
                f"loaded into a {mine} ({self._KIND}); resume it with {writer}, or start this "
                "run from a fresh directory"
            )
        self._check_checkpoint_identity(info)
        if self.ema is not None and info.get("ema") is not None:
            self.ema.load_state_dict(info["ema"])


class DiffusionModule(_TrainingModule):
    r"""Score-entropy training of a score network, validated with the likelihood bound.

    The training loss is the denoising score entropy weighted by the noise rate, the integrand
    of the likelihood bound (Lou, Meng & Ermon, *Discrete Diffusion Modeling by Estimating the
    Ratios of the Data Distribution*, ICML 2024, eq. 11):

    $$\mathcal{L} = \frac{1}{\#\text{real tokens}} \sum_{b} \sigma(t_b)
      \sum_i \ell_{\mathrm{DSE}}\bigl(x_{t_b}^i, x_0^i\bigr) \quad \text{nats per token},$$

    one time per sequence, stratified over the (global) batch: the k-th of K sequences gets
    $t \in [k/K, (k+1)/K)$, which lowers the variance of the loss without biasing it. Validation
    reports the full bound (integral plus prior term) in bits per real token, with the weights'
    exponential moving average (`ema`), over `val_num_t` stratified times per sequence: it logs
    `val/bits_per_token`, `val/prior_bits_per_token` and `val/mc_stderr_bits_per_token`, the
    Monte Carlo error over those times with the validation set held fixed (what
    `ddiff.eval.LikelihoodEstimate` calls `mc_stderr`).

    Randomness (times and noised tokens) comes from generators keyed by the seed, the optimizer
    step and the rank (see `ddiff.training._seeding`): a run resumed from a checkpoint continues
    exactly as an uninterrupted one. Times are drawn for the global batch and every rank takes
    its rows `rank::world_size`, like the data, so a distributed run sees the times that a single
    process with the same global batch would see. (Dropout, if the network uses it, draws from
    torch's global generator and is not reproduced exactly on resume.)

    The module takes objects, not a configuration: build them yourself or with `ddiff.config`.
    Train it with a `lightning.Trainer` and a `TokenDataModule` (or any loader of `TokenBatch`
    or LongTensor `[B, L]` batches). Checkpoints record the graph and are refused by a module
    built for another graph or vocabulary.

    Args:
        graph: the forward process.
        schedule: the noise schedule.
        net: the score network, `(x_t [B, L], sigma [B]) -> log-scores [B, L, S]`.
        optim: AdamW, warm-up, clipping and EMA settings.
        seed: seed of the time and noise draws (>= 0).
        time_sampling: `"stratified"` (default), `"antithetic"`, `"uniform"`, or
            `"importance"`: stratified draws mapped through an adaptive proposal that puts
            more times where the loss varies most, each weighted by 1 / its density
            (`ddiff.losses.ImportanceTimes` with its defaults; pass an instance for other
            settings). Its estimates are module buffers, kept in checkpoints.
        val_num_t: times per validation sequence (>= 2 for a standard error).
        label_dropout: for labelled data and a network with labels (`num_labels > 0`): the
            probability of training a sequence with the null label instead of its own, which
            trains the unconditional model that classifier-free guidance needs (0.1 by default;
            0 trains a purely conditional model). Validation uses the true labels: its bound is
            then one on $-\log p_\theta(x \mid c)$.

    **Labels.** Batches that carry labels (`TokenBatch.labels`, from `TokenDataModule(...,
    train_labels=...)`) train `net(x_t, sigma, label=...)`; they need a network with labels, and
    checkpoints record the number of labels.

    Example:
        >>> import torch
        >>> from ddiff import AbsorbingGraph, LogLinearSchedule
        >>> from ddiff.nets import ScaledAbsorbingParameterization, TransformerScoreNet
        >>> graph = AbsorbingGraph(4)
        >>> net = TransformerScoreNet.from_preset(
        ...     "tiny", graph.num_states, parameterization=ScaledAbsorbingParameterization(graph)
        ... )
        >>> module = DiffusionModule(graph, LogLinearSchedule(survival=0.0), net)
        >>> x_0 = torch.randint(4, (8, 16))
        >>> t = torch.rand(8, dtype=torch.float64)
        >>> loss = module.loss(x_0, t, torch.Generator().manual_seed(0))
        >>> loss.dtype, loss.dim()
        (torch.float32, 0)
    """

    def __init__(
        self,
        graph: Graph,
        schedule: NoiseSchedule,
        net: nn.Module,
        optim: OptimSettings | None = None,
        *,
        seed: int = 0,
        time_sampling: TimeSampling | Literal["importance"] | ImportanceTimes = "stratified",
        val_num_t: int = 8,
        label_dropout: float = 0.1,
    ) -> None:
        if not isinstance(graph, Graph):
            raise TypeError(f"graph must be a ddiff Graph, got {type(graph).__name__}")
        if not isinstance(schedule, NoiseSchedule):
            raise TypeError(f"schedule must be a NoiseSchedule, got {type(schedule).__name__}")
        super().__init__(net, optim, label_dropout)
        states = getattr(net, "num_states", graph.num_states)
        if states != graph.num_states:
            raise ValueError(
                f"the network scores {states} states but the graph has {graph.num_states}; "
                "build the network with num_states=graph.num_states"
            )
        importance: ImportanceTimes | None = None
        if isinstance(time_sampling, ImportanceTimes):
            importance, time_sampling = time_sampling, "importance"
        elif time_sampling == "importance":
            importance = ImportanceTimes()
        elif time_sampling not in ("stratified", "antithetic", "uniform"):
            raise ValueError(
                f"time_sampling must be 'stratified', 'antithetic', 'uniform', 'importance' or "
                f"an ImportanceTimes, got {time_sampling!r}"
            )
        if isinstance(seed, bool) or int(seed) != seed or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        if val_num_t < 1:
            raise ValueError(f"val_num_t must be >= 1, got {val_num_t}")
        self.graph = graph
        self.schedule = schedule
        self.seed = int(seed)
        self.time_sampling: TimeSampling | Literal["importance"] = time_sampling
        # A submodule, so that its running estimates are buffers saved in checkpoints.
        self.importance = importance
        self.val_num_t = int(val_num_t)

    # -- the objective ----------------------------------------------------------------------------

    def forward(self, x_t: Tensor, sigma: Tensor, label: Tensor | None = None) -> Tensor:
        """Log-scores of the trained (not averaged) network (given `label`, if any)."""
        return self.net(x_t, sigma) if label is None else self.net(x_t, sigma, label=label)

    def loss(
        self,
        batch: TokenBatch | Tensor,
        t: Tensor,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """The training loss of a batch at times `t` `[B]`: nats per real token, float32 or wider.

        The score entropy is computed in float32 or wider even when the network runs in bf16
        under autocast. A batch with labels is scored with them (no label dropout here).
        """
        integrand, lengths = self._integrand(batch, t, generator)
        return integrand.sum() / lengths.sum()

    def _integrand(
        self, batch: TokenBatch | Tensor, t: Tensor, generator: torch.Generator | None
    ) -> tuple[Tensor, Tensor]:
        """The bound's integrand per sequence `[B]` and the real lengths."""
        tokens, lengths = _as_batch(batch)
        labels = _labels_of(batch, self.num_labels)
        net = self.net
        score_fn = net if labels is None else (lambda x, s: net(x, s, label=labels))
        integrand = bound_integrand(score_fn, self.graph, self.schedule, tokens, t, generator)
        return integrand, lengths

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        # A run resumed with another `time_sampling`: drop the importance sampler's estimates,
        # or start them afresh, instead of failing on unexpected or missing state_dict keys.
        state = checkpoint.get("state_dict")
        if isinstance(state, dict):
            saved = [key for key in state if key.startswith("importance.")]
            if self.importance is None:
                for key in saved:
                    del state[key]
            elif not saved:
                fresh = self.importance.state_dict()
                state.update({f"importance.{key}": value for key, value in fresh.items()})

    def _step_loss(self, batch: TokenBatch, batch_idx: int) -> Tensor:
        t, generator = self._training_draws(batch.tokens.shape[0], batch_idx)
        if batch.labels is not None:
            rank, micro = self._rank_and_micro(batch_idx)
            keys = (self.seed, LABEL_DROPOUT, self.global_step, micro, rank)
            batch = batch._replace(labels=self._drop_labels(batch.labels, *keys))
        if self.importance is None:
            return self.loss(batch, t, generator)
        t, weight = self.importance.draw(t)
        integrand, lengths = self._integrand(batch, t, generator)
        self.importance.update(t, integrand)
        return (weight.to(integrand.dtype) * integrand).sum() / lengths.sum()

    def _rank_and_micro(self, batch_idx: int) -> tuple[int, int]:
        if self._trainer is None:
            return 0, batch_idx
        return self.global_rank, batch_idx % self.trainer.accumulate_grad_batches

    def _training_draws(self, batch: int, batch_idx: int) -> tuple[Tensor, torch.Generator]:
        rank, world, accumulate = 0, 1, 1
        if self._trainer is not None:
            rank, world = self.global_rank, self.trainer.world_size
            accumulate = self.trainer.accumulate_grad_batches
        step, micro = self.global_step, batch_idx % accumulate
        times = keyed_generator(self.seed, TRAIN_TIMES, step, micro)
        # Importance sampling maps stratified uniforms through its proposal (`_step_loss`).
        method = "stratified" if self.time_sampling == "importance" else self.time_sampling
        t = sample_times((1, batch * world), method, times).reshape(-1)
        noise = keyed_generator(self.seed, TRAIN_NOISE, step, micro, rank, device=self.device)
        return t[rank::world].to(self.device), noise

    # -- validation: the likelihood bound with the averaged weights -------------------------------

    # Sums over the batches and ranks: bound (nats), prior (nats), real tokens, variance.
    _NUM_VAL_SUMS = 4

    def validation_step(self, batch: TokenBatch | Tensor, batch_idx: int) -> None:
        tokens, lengths = _as_batch(batch)
        labels = _labels_of(batch, self.num_labels)
        generator = keyed_generator(
            self.seed, VALIDATION, self.global_rank, batch_idx, device=self.device
        )
        net = self.averaged_net
        # One group per label (the bound's score calls see sub-batches of the rows).
        groups: list[tuple[Any, Tensor]] = [(net, tokens)]
        if labels is not None:
            groups = [
                (_Bound(net, int(c)), tokens[labels == c]) for c in torch.unique(labels).tolist()
            ]
        nats = prior = variance = torch.zeros((), dtype=torch.float64, device=tokens.device)
        for score_fn, rows in groups:
            bound = likelihood_bound(
                score_fn,
                self.graph,
                self.schedule,
                rows,
                num_t=self.val_num_t,
                generator=generator,
                batch_size=tokens.shape[0],
            )
            nats = nats + bound.nats.sum().to(torch.float64)
            prior = prior + bound.prior.sum().to(torch.float64)
            if self.val_num_t > 1:
                variance = variance + (bound.stderr**2).sum().to(torch.float64)
        sums = torch.stack([nats, prior, lengths.sum().to(torch.float64).to(nats.device), variance])
        self._add_validation_sums(sums)

    def _validation_metrics(self, sums: list[float]) -> dict[str, float]:
        nats, prior, tokens, variance = sums
        if tokens == 0:
            return {}
        to_bits = 1.0 / (tokens * math.log(2.0))
        return {
            "val/bits_per_token": nats * to_bits,
            "val/prior_bits_per_token": prior * to_bits,
            "val/mc_stderr_bits_per_token": math.sqrt(variance) * to_bits,
        }

    # -- checkpoints: the graph -------------------------------------------------------------------

    _KIND = "diffusion"

    def _checkpoint_identity(self) -> dict[str, Any]:
        return {"graph": graph_signature(self.graph), **self._checkpoint_labels()}

    def _check_checkpoint_identity(self, info: dict[str, Any]) -> None:
        check_same_graph(info["graph"], self.graph, "the checkpoint")
        self._check_checkpoint_labels(info)


class _Bound:
    """`net(x_t, sigma, label=c)` for a whole (sub-)batch: one label, any number of rows."""

    def __init__(self, net: nn.Module, label: int) -> None:
        self.net, self.label = net, label

    def __call__(self, x_t: Tensor, sigma: Tensor) -> Tensor:
        return self.net(x_t, sigma, label=self.label)


def _labels_of(batch: TokenBatch | Tensor, num_labels: int) -> Tensor | None:
    """The batch's labels (None for unlabelled batches), refused by a network without labels."""
    labels = batch.labels if isinstance(batch, TokenBatch) else None
    if labels is not None and num_labels == 0:
        raise ValueError(
            "the data carry labels but the network was built without them; build it with "
            "num_labels = C (net.labels in a run configuration), or train on unlabelled data"
        )
    return labels


def _as_batch(batch: TokenBatch | Tensor) -> tuple[Tensor, Tensor]:
    """(tokens [B, L], real tokens per sequence [B]) from a `TokenBatch` or a plain LongTensor."""
    if isinstance(batch, TokenBatch):
        return batch.tokens, batch.lengths
    if isinstance(batch, Tensor):
        if batch.dim() != 2:
            raise ValueError(
                f"a batch of tokens must have shape [batch, length], got {list(batch.shape)}"
            )
        lengths = torch.full((batch.shape[0],), batch.shape[1], device=batch.device)
        return batch, lengths
    raise TypeError(
        f"expected a TokenBatch or a LongTensor [B, L] batch, got {type(batch).__name__}"
    )
