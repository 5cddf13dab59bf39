"""Share trained weights safely: safetensors plus the resolved configuration as JSON.

ddiff's own format: a directory with `model.safetensors` (raw tensors, no pickle; its header
records the graph the weights were trained for) and `config.json` (the `ddiff.config.RunConfig`
that builds the network, graph and schedule). `save_pretrained` writes one, `load_pretrained`
builds the objects back, and `bits_per_token_from_path` scores held-out data with a saved model
in one call (`ddiff.eval.bits_per_token` itself takes objects only).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_model, save_model
from torch import Tensor, nn

from ddiff.config import GraphConfig, RunConfig, SamplerConfig, ScheduleConfig
from ddiff.eval import LikelihoodEstimate, bits_per_token
from ddiff.graphs import Graph
from ddiff.io import atomic_path
from ddiff.samplers import Sampler
from ddiff.schedules import NoiseSchedule
from ddiff.training import DiffusionModule
from ddiff.training._signature import check_same_graph, graph_signature

__all__ = [
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "ModelConfig",
    "Pretrained",
    "bits_per_token_from_path",
    "load_pretrained",
    "save_pretrained",
]

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
_FORMAT = "ddiff-pretrained-1"


class _NetSection(Protocol):
    @property
    def kind(self) -> str: ...


class ModelConfig(Protocol):
    """What the configuration of a `Pretrained` model provides, whoever wrote the model.

    ddiff's own models carry their `RunConfig`; a loader of another code's checkpoints carries
    its record of what it read, with the same sections (`ddiff.interop.SeddConfig`).
    """

    @property
    def graph(self) -> GraphConfig:
        """Builds the graph."""
        ...

    @property
    def schedule(self) -> ScheduleConfig:
        """Builds the noise schedule."""
        ...

    @property
    def net(self) -> _NetSection:
        """The network's section; `net.kind` names the backbone."""
        ...

    @property
    def sampling(self) -> SamplerConfig:
        """Builds the default sampler (`Pretrained.sampler`)."""
        ...


@dataclass(frozen=True, eq=False)
class Pretrained:
    """A trained score network with the graph, schedule and configuration it was trained with.

    Attributes:
        net: the network in eval mode, `(x_t [B, L], sigma [B]) -> log-scores [B, L, S]`.
        graph: the forward process.
        schedule: the noise schedule.
        config: the resolved run configuration (`RunConfig`) for a model trained by ddiff; for
            a checkpoint of another code, the loader's record with the same sections (a
            `ModelConfig`, e.g. `ddiff.interop.SeddConfig` from `ddiff.interop.load_sedd`).

    Example:
        `load_pretrained` returns one, built from the directory `save_pretrained` wrote:

        >>> import tempfile, torch
        >>> from ddiff.config import RunConfig
        >>> from ddiff.pretrained import load_pretrained, save_pretrained
        >>> config = RunConfig.model_validate({
        ...     "graph": {"kind": "uniform", "num_tokens": 4}, "schedule": {"kind": "loglinear"},
        ...     "net": {"kind": "transformer", "preset": "tiny"}, "train": {"max_steps": 1},
        ... })
        >>> _ = torch.manual_seed(0)
        >>> net = config.net.build(config.graph.build())  # stands in for a trained network
        >>> with tempfile.TemporaryDirectory() as directory:
        ...     model = load_pretrained(save_pretrained(net, directory, config))
        >>> model.graph, model.schedule
        (UniformGraph(num_tokens=4, num_states=4), LogLinearSchedule(survival=0.001))
        >>> saved, loaded = net.state_dict(), model.net.state_dict()
        >>> all(torch.equal(saved[k], loaded[k]) for k in saved), model.net.training
        (True, False)
    """

    net: nn.Module
    graph: Graph
    schedule: NoiseSchedule
    config: RunConfig | ModelConfig

    def sampler(self) -> Sampler:
        """The sampler of the configuration's `sampling` section (steps: `config.sampling.steps`)."""
        return self.config.sampling.build(self.graph, self.schedule)

    @property
    def labels(self) -> tuple[str, ...]:
        """The names of the class labels the network is conditioned on (empty: none)."""
        return _label_names(self.config)

    def label_index(self, name: str) -> int:
        """The class id of the label `name`, for `net(x_t, sigma, label=...)` and guidance.

        Raises:
            ValueError: if the model was trained without labels, or does not know `name` (the
                message lists the names it knows).
        """
        labels = self.labels
        if not labels:
            raise ValueError(
                f"this model was trained without labels, so it cannot be guided to {name!r}; "
                "train a label-conditioned model (net.labels in the run configuration)"
            )
        if name not in labels:
            raise ValueError(f"unknown label {name!r}; this model knows {list(labels)}")
        return labels.index(name)


def save_pretrained(
    model: DiffusionModule | nn.Module, directory: str | os.PathLike[str], config: RunConfig
) -> Path:
    """Write `model.safetensors` and `config.json` to `directory` (created if needed).

    From a `DiffusionModule` the EMA weights are saved (the network used for validation and
    sampling); from a plain network, its own weights. The safetensors header records the graph
    the weights were trained for, so that `load_pretrained` refuses a mismatched configuration.
    Both files are written atomically (temporary file, then rename).

    Args:
        model: a trained `DiffusionModule`, or a score network.
        directory: where to write.
        config: the run configuration that builds this network (`RunConfig`).

    Returns:
        The directory.

    The label names of a label-conditioned network (`config.net.labels`) are recorded in the
    header too, and must match the network's number of labels.

    Raises:
        ValueError: if the configuration builds a different graph than the module's, or a
            network with another number of states or labels.
    """
    graph = config.graph.build()
    if isinstance(model, DiffusionModule):
        check_same_graph(graph_signature(model.graph), graph, "the module")
        net = model.averaged_net
    else:
        net = model
    states = getattr(net, "num_states", graph.num_states)
    if states != graph.num_states:
        raise ValueError(
            f"the network scores {states} states but the configuration's graph has "
            f"{graph.num_states}; save it with the configuration it was built from"
        )
    labels = _label_names(config)
    if int(getattr(net, "num_labels", 0)) != len(labels):
        raise ValueError(
            f"the network has {int(getattr(net, 'num_labels', 0))} labels but the configuration "
            f"names {len(labels)} ({list(labels)}); save it with the configuration it was built "
            "from (net.labels)"
        )
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    metadata = {
        "format": _FORMAT,
        "graph": json.dumps(graph_signature(graph), sort_keys=True),
        "net": type(net).__qualname__,
    }
    if labels:  # only then: unconditional models keep their header
        metadata["labels"] = json.dumps(list(labels))
    was_training = net.training
    try:
        with atomic_path(directory / WEIGHTS_NAME) as tmp:
            save_model(net.eval(), str(tmp), metadata=metadata)
    finally:
        net.train(was_training)
    config.save_json(directory / CONFIG_NAME)
    return directory


def load_pretrained(
    directory: str | os.PathLike[str], device: torch.device | str = "cpu"
) -> Pretrained:
    """Build the network from `config.json` and load `model.safetensors` into it (no pickle).

    Nothing in the directory can execute code: the configuration is JSON validated by
    `RunConfig`, the weights are raw tensors. Works offline.

    Args:
        directory: a directory written by `save_pretrained` (or by training, `run_dir/pretrained`).
        device: where to put the weights.

    Raises:
        FileNotFoundError: if a file is missing.
        ValueError: if the weights were trained for another graph or vocabulary than the one
            `config.json` builds (the message names both sizes), or a tensor's shape differs.
    """
    directory = Path(directory)
    weights, config_file = directory / WEIGHTS_NAME, directory / CONFIG_NAME
    for path in (weights, config_file):
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} not found; is {directory} a save_pretrained directory?"
            )
    config = RunConfig.from_json(config_file)
    graph, schedule = config.graph.build(), config.schedule.build()
    net = config.net.build(graph)
    try:
        with safe_open(str(weights), framework="pt") as f:
            metadata = f.metadata() or {}
            shapes = {key: list(f.get_slice(key).get_shape()) for key in f.keys()}  # noqa: SIM118
    except (SafetensorError, OSError) as err:
        size = weights.stat().st_size
        raise ValueError(
            f"{weights}: not a readable safetensors file ({size:,} bytes; {err}): truncated by an "
            "interrupted copy or save? Copy it again, or export the run again from its checkpoint"
        ) from err
    if metadata.get("format") != _FORMAT or "graph" not in metadata:
        raise ValueError(f"{weights} was not written by ddiff's save_pretrained")
    check_same_graph(json.loads(metadata["graph"]), graph, str(weights))
    saved_labels = tuple(json.loads(metadata.get("labels", "[]")))
    if saved_labels != _label_names(config):
        raise ValueError(
            f"{weights} was trained with the labels {list(saved_labels)} but "
            f"{config_file.name} names {list(_label_names(config))} (net.labels); use the "
            "configuration the weights were saved with"
        )
    expected = {k: list(v.shape) for k, v in net.state_dict().items()}
    for key, shape in shapes.items():
        if key in expected and expected[key] != shape:
            raise ValueError(
                f"{weights}: tensor {key!r} has shape {shape} but the network that "
                f"{config_file.name} builds expects {expected[key]}"
            )
    try:
        load_model(net, str(weights), strict=True, device=str(device))
    except RuntimeError as e:
        raise ValueError(f"{weights} does not fit the network of {config_file.name}: {e}") from e
    return Pretrained(net=net.to(device).eval(), graph=graph, schedule=schedule, config=config)


def _label_names(config: RunConfig | ModelConfig) -> tuple[str, ...]:
    """`config.net.labels` as a tuple (empty without labels, or for other codes' configs)."""
    labels = getattr(config.net, "labels", None)
    return tuple(labels) if labels else ()


def bits_per_token_from_path(
    directory: str | os.PathLike[str],
    tokens: Tensor,
    *,
    lengths: Tensor | None = None,
    num_t: int = 16,
    seed: int = 0,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
) -> LikelihoodEstimate:
    """Bits per real token of `tokens` under the model saved in `directory` (its bound).

    `bits_per_token(load_pretrained(directory, device), tokens, ...)`: the same estimate, the
    same arguments, for a `save_pretrained` directory (or a run's `run_dir/pretrained`).

    Args:
        directory: a directory written by `save_pretrained`.
        tokens: `[N, L]` token ids, padded to a common length if needed.
        lengths: `[N]` real tokens of each sequence (default: L each).
        num_t: time samples per sequence for the Monte Carlo bound.
        seed: seed of the bound's time and noise draws.
        batch_size: (sequence, time) pairs per forward pass.
        device: where to load the weights and run the network.

    Raises:
        FileNotFoundError, ValueError: as `load_pretrained` and `ddiff.eval.bits_per_token`.

    Example:
        >>> import tempfile, torch
        >>> from ddiff.config import RunConfig
        >>> config = RunConfig.model_validate({
        ...     "graph": {"kind": "uniform", "num_tokens": 4}, "schedule": {"kind": "loglinear"},
        ...     "net": {"kind": "transformer", "preset": "tiny"}, "train": {"max_steps": 1},
        ... })
        >>> _ = torch.manual_seed(0)
        >>> net = config.net.build(config.graph.build())
        >>> x = torch.randint(4, (8, 6))
        >>> with tempfile.TemporaryDirectory() as directory:
        ...     _ = save_pretrained(net, directory, config)
        ...     from_path = bits_per_token_from_path(directory, x, num_t=4)
        ...     loaded = bits_per_token(load_pretrained(directory), x, num_t=4)
        >>> from_path.bits_per_token == loaded.bits_per_token, from_path.num_sequences
        (True, 8)
    """
    model = load_pretrained(directory, device)
    return bits_per_token(
        model, tokens, lengths=lengths, num_t=num_t, seed=seed, batch_size=batch_size
    )
