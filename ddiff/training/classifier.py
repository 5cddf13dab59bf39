"""Training a noisy classifier $p_\\phi(c \\mid x_t)$ on sequences noised by the diffusion's process."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from ddiff.graphs import Graph
from ddiff.nets import NoisyClassifierNet
from ddiff.schedules import NoiseSchedule
from ddiff.training._seeding import TRAIN_NOISE, TRAIN_TIMES, VALIDATION, keyed_generator
from ddiff.training._signature import check_same_graph, graph_signature
from ddiff.training.data import TokenBatch
from ddiff.training.module import _as_batch, _labels_of, _TrainingModule
from ddiff.training.optim import OptimSettings

__all__ = ["ClassifierModule", "accuracy_by_noise"]


class ClassifierModule(_TrainingModule):
    r"""Cross-entropy training of a `NoisyClassifierNet` on noised labelled sequences.

    Each training sequence $x_0$ with label $c$ is noised to $x_t \sim p_t(\cdot \mid x_0)$ by
    the diffusion model's own graph and schedule, at a time $t \sim \mathcal U(0, 1)$ (one per
    sequence, stratified over the batch), and the loss is

    $$\mathcal L = -\frac{1}{B} \sum_b \log p_\phi\bigl(c_b \mid x_{t_b}, \bar\sigma(t_b)\bigr),$$

    whose minimiser over all functions is the exact noisy classifier
    $p(c \mid x_t) = \sum_{x_0} p(c \mid x_0)\, p(x_0 \mid x_t)$ that classifier guidance needs
    (`ddiff.guidance.ClassifierGuidance`; Nisonoff et al. 2024, Schiff et al. 2024).

    **Validation** noises each held-out sequence at fixed times, the centres of `NUM_BINS`
    equal bins of $[0, 1]$ (0.1, 0.3, 0.5, 0.7, 0.9), and logs the held-out accuracy at each
    (`val/accuracy_t0.1`, ...), their mean `val/accuracy` and the cross-entropy `val/loss` (nats
    per sequence), all with the EMA weights. Accuracy falls with the noise, towards the
    majority label's frequency at $t = 1$: the curve says up to which noise level guidance has
    a signal to follow.

    Randomness is keyed by (seed, step, rank) like `DiffusionModule`'s; checkpoints are marked
    as classifier checkpoints and record the graph and the number of labels.

    Args:
        graph: the forward process of the diffusion model to be guided.
        schedule: its noise schedule.
        net: the classifier.
        optim: AdamW, warm-up, clipping and EMA settings.
        seed: seed of the time and noise draws.

    Example:
        >>> import torch
        >>> from ddiff import AbsorbingGraph, LogLinearSchedule
        >>> from ddiff.nets import NoisyClassifierNet
        >>> from ddiff.training import ClassifierModule, TokenBatch
        >>> graph = AbsorbingGraph(4)
        >>> net = NoisyClassifierNet.from_preset("tiny", graph.num_states, num_labels=2)
        >>> module = ClassifierModule(graph, LogLinearSchedule(survival=0.0), net)
        >>> batch = TokenBatch(torch.randint(4, (8, 16)), torch.full((8,), 16), torch.arange(8) % 2)
        >>> round(module.loss(batch, torch.rand(8), torch.Generator().manual_seed(0)).item(), 4)
        0.6931
    """

    _KIND = "classifier"
    NUM_BINS: ClassVar[int] = 5
    # Sums over the batches and ranks: cross-entropy, sequences, then correct answers per bin.
    _NUM_VAL_SUMS = 2 + NUM_BINS

    net: NoisyClassifierNet

    def __init__(
        self,
        graph: Graph,
        schedule: NoiseSchedule,
        net: NoisyClassifierNet,
        optim: OptimSettings | None = None,
        *,
        seed: int = 0,
    ) -> None:
        if not isinstance(graph, Graph):
            raise TypeError(f"graph must be a ddiff Graph, got {type(graph).__name__}")
        if not isinstance(schedule, NoiseSchedule):
            raise TypeError(f"schedule must be a NoiseSchedule, got {type(schedule).__name__}")
        if not isinstance(net, NoisyClassifierNet):
            raise TypeError(
                f"net must be a ddiff.nets.NoisyClassifierNet, got {type(net).__name__}"
            )
        if net.num_states != graph.num_states:
            raise ValueError(
                f"the classifier reads {net.num_states} states but the graph has "
                f"{graph.num_states}; build it with num_states=graph.num_states"
            )
        if isinstance(seed, bool) or int(seed) != seed or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        super().__init__(net, optim)
        self.graph, self.schedule, self.seed = graph, schedule, int(seed)

    def forward(self, x_t: Tensor, sigma: Tensor) -> Tensor:
        """Label logits `[B, C]` of the trained (not averaged) network."""
        return self.net(x_t, sigma)

    def loss(
        self, batch: TokenBatch, t: Tensor, generator: torch.Generator | None = None
    ) -> Tensor:
        """Mean cross-entropy (nats) of the labels given the batch noised at times `t` `[B]`."""
        tokens, _ = _as_batch(batch)
        labels = self._labels(batch)
        sigma = self.schedule.total(t.to(torch.float64)).to(tokens.device)
        x_t = self.graph.sample_transition(tokens, sigma, generator)
        logits = self.net(x_t, sigma)
        return F.cross_entropy(logits.to(torch.promote_types(logits.dtype, torch.float32)), labels)

    def _labels(self, batch: TokenBatch | Tensor) -> Tensor:
        labels = _labels_of(batch, self.num_labels)
        if labels is None:
            raise ValueError(
                "a classifier trains on labelled data: give TokenDataModule train_labels and "
                "val_labels"
            )
        return labels

    def _step_loss(self, batch: TokenBatch, batch_idx: int) -> Tensor:
        rank, world = (
            (0, 1) if self._trainer is None else (self.global_rank, self.trainer.world_size)
        )
        b = batch.tokens.shape[0]
        times = keyed_generator(self.seed, TRAIN_TIMES, self.global_step, batch_idx)
        # Stratified over the global batch, split like the data (as DiffusionModule does).
        strata = (torch.arange(b * world) + torch.rand(b * world, generator=times)) / (b * world)
        t = strata[torch.randperm(b * world, generator=times)][rank::world].clamp(max=1 - 1e-6)
        noise = keyed_generator(
            self.seed, TRAIN_NOISE, self.global_step, batch_idx, rank, device=self.device
        )
        return self.loss(batch, t.to(self.device), noise)

    # -- validation: accuracy per noise level -----------------------------------------------------

    @classmethod
    def bin_times(cls) -> list[float]:
        """The validation times: the centres of `NUM_BINS` equal bins of [0, 1]."""
        return [(k + 0.5) / cls.NUM_BINS for k in range(cls.NUM_BINS)]

    def validation_step(self, batch: TokenBatch | Tensor, batch_idx: int) -> None:
        tokens, _ = _as_batch(batch)
        labels = self._labels(batch)
        generator = keyed_generator(
            self.seed, VALIDATION, self.global_rank, batch_idx, device=self.device
        )
        net = self.averaged_net
        loss = torch.zeros((), dtype=torch.float64, device=tokens.device)
        correct = []
        for t in self.bin_times():
            sigma = self.schedule.total(torch.full((tokens.shape[0],), t, dtype=torch.float64))
            x_t = self.graph.sample_transition(tokens, sigma.to(tokens.device), generator)
            logits = net(x_t, sigma.to(tokens.device)).float()
            loss = loss + F.cross_entropy(logits, labels, reduction="sum").to(torch.float64)
            correct.append((logits.argmax(dim=-1) == labels).sum().to(torch.float64))
        n = torch.tensor(float(tokens.shape[0]), dtype=torch.float64, device=tokens.device)
        self._add_validation_sums(torch.stack([loss / self.NUM_BINS, n, *correct]))

    def _validation_metrics(self, sums: list[float]) -> dict[str, float]:
        loss, n, *correct = sums
        if n == 0:
            return {}
        metrics = {
            f"val/accuracy_t{t:g}": c / n for t, c in zip(self.bin_times(), correct, strict=True)
        }
        metrics["val/accuracy"] = sum(correct) / (n * self.NUM_BINS)
        metrics["val/loss"] = loss / n
        return metrics

    @torch.no_grad()
    def accuracy_by_noise(
        self,
        tokens: Tensor,
        labels: Tensor,
        times: list[float] | None = None,
        generator: torch.Generator | None = None,
    ) -> dict[float, float]:
        """Accuracy of the averaged classifier on `tokens` `[N, L]` noised at each time (default:
        `bin_times()`); for held-out data after training (`accuracy_by_noise`)."""
        net = self.averaged_net.eval()
        times = self.bin_times() if times is None else times
        return accuracy_by_noise(net, self.graph, self.schedule, tokens, labels, times, generator)

    # -- checkpoints ------------------------------------------------------------------------------

    def _checkpoint_identity(self) -> dict[str, Any]:
        return {"graph": graph_signature(self.graph), "num_labels": self.num_labels}

    def _check_checkpoint_identity(self, info: dict[str, Any]) -> None:
        check_same_graph(info["graph"], self.graph, "the checkpoint")
        self._check_checkpoint_labels(info)


@torch.no_grad()
def accuracy_by_noise(
    classifier: Any,
    graph: Graph,
    schedule: NoiseSchedule,
    tokens: Tensor,
    labels: Tensor,
    times: list[float],
    generator: torch.Generator | None = None,
) -> dict[float, float]:
    """Accuracy of `classifier(x_t, sigma) -> [N, C]` on `tokens` `[N, L]` with labels `[N]`,
    noised by `graph` at the total noise of each time of `schedule`: `{t: accuracy}`."""
    out = {}
    for t in times:
        sigma = schedule.total(torch.full((tokens.shape[0],), t, dtype=torch.float64))
        x_t = graph.sample_transition(tokens, sigma, generator)
        hits = classifier(x_t, sigma).argmax(dim=-1) == labels
        out[float(t)] = float(hits.double().mean())
    return out
