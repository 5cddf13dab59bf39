"""Run configuration: pydantic models that build ddiff's objects from YAML or JSON.

This is the only module that knows string names such as `"absorbing"`, `"loglinear"`,
`"transformer"` or `"euler"`. Every model forbids unknown keys (a typo is an error that names
the key), is discriminated by a `kind` field where there are alternatives, and has a `build()`
that returns the plain object; core classes take typed arguments, never a configuration.

A run file::

    graph: {kind: absorbing, num_tokens: 4}
    schedule: {kind: loglinear, survival: 0.0}
    net: {kind: transformer, preset: tiny}
    optim: {kind: adamw, lr: 1.0e-3, warmup_steps: 50, ema_decay: 0.99}
    train: {max_steps: 300, batch_size: 32}
    data: {kind: markov, num_tokens: 4, length: 16}
    sampling: {kind: euler, steps: 64}

Keys renamed since earlier versions still load, with a `FutureWarning` that names the file, the
section and both keys: `schedule.eps` is now `schedule.survival`, `sampling.eps` is
`sampling.final_time` and `optim.eps` is `optim.adam_eps` ("eps" meant three things).

`RunConfig.from_yaml(path)` validates it; `RunConfig.to_json()` gives the resolved
configuration (every default filled in) that training saves next to its checkpoints.

Example:
    >>> cfg = RunConfig.model_validate({
    ...     "graph": {"kind": "absorbing", "num_tokens": 4},
    ...     "schedule": {"kind": "loglinear", "survival": 0.0},
    ...     "train": {"max_steps": 10},
    ... })
    >>> cfg.graph.build()
    AbsorbingGraph(num_tokens=4, num_states=5)
    >>> RunConfig.model_validate_json(cfg.to_json()) == cfg
    True
    >>> RunConfig.model_validate({**cfg.model_dump(), "grpah": {}})
    Traceback (most recent call last):
        ...
    pydantic_core._pydantic_core.ValidationError: 1 validation error for RunConfig
    grpah
      Extra inputs are not permitted [type=extra_forbidden, input_value={}, input_type=dict]
        ...
"""

from __future__ import annotations

import inspect
import itertools
import math
import os
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

import torch
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ddiff.graphs import (
    AbsorbingGraph,
    DenseGraph,
    Graph,
    UniformGraph,
    gtr,
    hky85,
    jc69,
    k80,
    protein_graph,
)
from ddiff.io import write_text
from ddiff.schedules import CosineSchedule, GeometricSchedule, LogLinearSchedule, NoiseSchedule

if TYPE_CHECKING:  # heavy or optional imports, needed only by build()
    from torch import nn

    from ddiff.data import MarkovSource
    from ddiff.samplers import Sampler
    from ddiff.training import OptimSettings, TokenDataModule

__all__ = [
    "AbsorbingGraphConfig",
    "AdamWConfig",
    "AnalyticSamplerConfig",
    "CosineScheduleConfig",
    "DataConfig",
    "DenseGraphConfig",
    "EulerSamplerConfig",
    "FirstHittingSamplerConfig",
    "GTRGraphConfig",
    "GeometricScheduleConfig",
    "GraphConfig",
    "HKY85GraphConfig",
    "JC69GraphConfig",
    "K80GraphConfig",
    "LogLinearScheduleConfig",
    "MarkovDataConfig",
    "NetConfig",
    "NpyDataConfig",
    "OptimConfig",
    "ProteinGraphConfig",
    "RunConfig",
    "SamplerConfig",
    "ScheduleConfig",
    "TauLeapingSamplerConfig",
    "TrainConfig",
    "TransformerNetConfig",
    "UniformGraphConfig",
]


class _Config(BaseModel):
    """Immutable, and unknown keys are errors; renamed keys still load, with a warning."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    _section: ClassVar[str] = ""
    """The section of a run file this model is (`schedule`, `sampling`, ...), for messages."""
    _renamed: ClassVar[Mapping[str, str]] = {}
    """Old key -> new key: the old one is accepted with a `FutureWarning`."""

    @model_validator(mode="before")
    @classmethod
    def _rename_old_keys(cls, data: Any, info: ValidationInfo) -> Any:
        if not cls._renamed or not isinstance(data, dict):
            return data
        for old, new in cls._renamed.items():
            if old not in data:
                continue
            where = f"{cls._section}.{old}"
            if new in data:
                raise ValueError(f"{where} is the old name of {new}; give only {new}")
            source = (info.context or {}).get("source")
            # A FutureWarning, not a DeprecationWarning: Python hides the latter outside
            # __main__, and the reader of this one is whoever wrote the file.
            warnings.warn(
                f"{source + ': ' if source else ''}{where} is deprecated, use "
                f"{cls._section}.{new} (the same value)",
                FutureWarning,
                stacklevel=_caller_level(),
            )
            data = {(new if key == old else key): value for key, value in data.items()}
        return data


def _caller_level() -> int:
    """The `stacklevel` of the first frame outside pydantic and this module (for a warning
    raised in a validator: it points at the code that loaded the configuration)."""
    frame, level = inspect.currentframe(), 0
    while frame is not None and frame.f_globals.get("__name__", "").startswith(
        ("pydantic", __name__)
    ):
        frame, level = frame.f_back, level + 1
    return level


# -- graphs ----------------------------------------------------------------------------------------


class UniformGraphConfig(_Config):
    """`UniformGraph(num_tokens)`."""

    kind: Literal["uniform"] = "uniform"
    num_tokens: int = Field(ge=2, description="alphabet size S")

    def build(self) -> UniformGraph:
        return UniformGraph(self.num_tokens)


class AbsorbingGraphConfig(_Config):
    """`AbsorbingGraph(num_tokens)`: N data tokens plus MASK."""

    kind: Literal["absorbing"] = "absorbing"
    num_tokens: int = Field(ge=1, description="data alphabet size N (the graph has N + 1 states)")

    def build(self) -> AbsorbingGraph:
        return AbsorbingGraph(self.num_tokens)


class DenseGraphConfig(_Config):
    """`DenseGraph(rate_matrix, num_tokens, labels)`: any small rate matrix (column convention)."""

    kind: Literal["dense"] = "dense"
    rate_matrix: list[list[float]]
    num_tokens: int | None = None
    labels: str | list[str] | None = None

    @model_validator(mode="after")
    def _valid_matrix(self) -> DenseGraphConfig:
        self.build()  # DenseGraph's ValueError (naming the bad entry) becomes a validation error
        return self

    def build(self) -> DenseGraph:
        return DenseGraph(torch.tensor(self.rate_matrix), self.num_tokens, self.labels)


class JC69GraphConfig(_Config):
    """`jc69()`: Jukes-Cantor over A, C, G, T."""

    kind: Literal["jc69"] = "jc69"

    def build(self) -> DenseGraph:
        return jc69()


class K80GraphConfig(_Config):
    """`k80(kappa)`: Kimura's two-parameter model."""

    kind: Literal["k80"] = "k80"
    kappa: float = Field(default=2.0, gt=0)

    def build(self) -> DenseGraph:
        return k80(self.kappa)


class HKY85GraphConfig(_Config):
    """`hky85(kappa, freqs)`: transition bias plus base frequencies (A, C, G, T)."""

    kind: Literal["hky85"] = "hky85"
    kappa: float = Field(default=2.0, gt=0)
    freqs: tuple[float, float, float, float] = (0.25, 0.25, 0.25, 0.25)

    @model_validator(mode="after")
    def _valid(self) -> HKY85GraphConfig:
        self.build()
        return self

    def build(self) -> DenseGraph:
        return hky85(self.kappa, self.freqs)


class GTRGraphConfig(_Config):
    """`gtr(exchangeabilities, freqs)`: exchangeabilities for AC, AG, AT, CG, CT, GT."""

    kind: Literal["gtr"] = "gtr"
    exchangeabilities: tuple[float, float, float, float, float, float]
    freqs: tuple[float, float, float, float] = (0.25, 0.25, 0.25, 0.25)

    @model_validator(mode="after")
    def _valid(self) -> GTRGraphConfig:
        self.build()
        return self

    def build(self) -> DenseGraph:
        return gtr(self.exchangeabilities, self.freqs)


class ProteinGraphConfig(_Config):
    """`protein_graph(matrix)`: 20 amino acids, rates from a substitution score matrix."""

    kind: Literal["protein"] = "protein"
    matrix: Literal["BLOSUM62"] = "BLOSUM62"

    def build(self) -> DenseGraph:
        return protein_graph(self.matrix)


GraphConfig = Annotated[
    UniformGraphConfig
    | AbsorbingGraphConfig
    | DenseGraphConfig
    | JC69GraphConfig
    | K80GraphConfig
    | HKY85GraphConfig
    | GTRGraphConfig
    | ProteinGraphConfig,
    Field(discriminator="kind"),
]
"""Any graph configuration, chosen by `kind`."""


# -- schedules -------------------------------------------------------------------------------------


class LogLinearScheduleConfig(_Config):
    r"""`LogLinearSchedule(survival)`; `survival: 0` reaches the limit (absorbing graphs need it).

    `survival` (formerly `eps`) is the probability $e^{-\bar\sigma(1)}$ that a token is still
    unchanged at t = 1.
    """

    kind: Literal["loglinear"] = "loglinear"
    survival: float = Field(default=1e-3, ge=0.0, lt=1.0)

    _section: ClassVar[str] = "schedule"
    _renamed: ClassVar[Mapping[str, str]] = {"eps": "survival"}

    def build(self) -> LogLinearSchedule:
        return LogLinearSchedule(survival=self.survival)


class GeometricScheduleConfig(_Config):
    """`GeometricSchedule(sigma_min, sigma_max)`."""

    kind: Literal["geometric"] = "geometric"
    sigma_min: float = Field(default=1e-4, gt=0.0)
    sigma_max: float = Field(default=20.0, gt=0.0)

    @model_validator(mode="after")
    def _ordered(self) -> GeometricScheduleConfig:
        if not self.sigma_min < self.sigma_max < math.inf:
            raise ValueError(
                f"need sigma_min < sigma_max < inf, got {self.sigma_min} and {self.sigma_max}"
            )
        return self

    def build(self) -> GeometricSchedule:
        return GeometricSchedule(self.sigma_min, self.sigma_max)


class CosineScheduleConfig(_Config):
    """`CosineSchedule(survival)`: `survival` (formerly `eps`) as in `loglinear`."""

    kind: Literal["cosine"] = "cosine"
    survival: float = Field(default=1e-3, ge=0.0, lt=1.0)

    _section: ClassVar[str] = "schedule"
    _renamed: ClassVar[Mapping[str, str]] = {"eps": "survival"}

    def build(self) -> CosineSchedule:
        return CosineSchedule(survival=self.survival)


ScheduleConfig = Annotated[
    LogLinearScheduleConfig | GeometricScheduleConfig | CosineScheduleConfig,
    Field(discriminator="kind"),
]
"""Any noise schedule configuration, chosen by `kind`."""


# -- networks --------------------------------------------------------------------------------------


class TransformerNetConfig(_Config):
    """`TransformerScoreNet`, from a named `preset` and/or explicit sizes.

    Sizes left out (None) come from the preset, or from the constructor's defaults without one.
    `parameterization: auto` picks `scaled_absorbing` for absorbing graphs (SEDD's choice: the
    network only models the clean token's distribution) and `log_score` otherwise.

    `labels` (names of the class labels, e.g. `[promoter, gene]`) makes a label-conditioned
    network with `num_labels = len(labels)`: label id k is `labels[k]`. The names are saved with
    the weights and checked when they are loaded (`ddiff.pretrained`).
    """

    kind: Literal["transformer"] = "transformer"
    preset: Literal["tiny", "small", "medium"] | None = None
    dim: int | None = Field(default=None, ge=1)
    depth: int | None = Field(default=None, ge=1)
    heads: int | None = Field(default=None, ge=1)
    cond_dim: int | None = Field(default=None, ge=1)
    mlp_ratio: float | None = Field(default=None, gt=0)
    dropout: float | None = Field(default=None, ge=0, lt=1)
    parameterization: Literal["log_score", "scaled_absorbing", "auto"] = "auto"
    labels: tuple[str, ...] | None = None
    time_conditioning: bool = True
    """False: a time-agnostic network (RADD), for which samplers' `cache=True` is exact with
    the scaled-absorbing parameterisation (`docs/samplers.md`)."""
    max_length: int | None = Field(default=None, ge=1)
    """Learned absolute positions for sequences up to this length (None: rotary only)."""

    @field_validator("labels")
    @classmethod
    def _valid_labels(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        return _check_label_names(value, "net.labels")

    @property
    def num_labels(self) -> int:
        """Number of class labels (0 without `labels`)."""
        return 0 if self.labels is None else len(self.labels)

    def build(self, graph: Graph) -> nn.Module:
        """The network for `graph` (its `num_states`, and the parameterisation chosen here)."""
        from ddiff.nets import (
            TransformerScoreNet,
        )

        param = _parameterization(self.parameterization, graph)
        sizes = {
            name: getattr(self, name)
            for name in ("dim", "depth", "heads", "cond_dim", "mlp_ratio", "dropout")
            if getattr(self, name) is not None
        }
        if self.num_labels:  # only then: configurations without labels build as before
            sizes["num_labels"] = self.num_labels
        if not self.time_conditioning:
            sizes["time_conditioning"] = False
        if self.max_length is not None:
            sizes["max_length"] = self.max_length
        if self.preset is not None:
            return TransformerScoreNet.from_preset(
                self.preset, graph.num_states, parameterization=param, **sizes
            )
        return TransformerScoreNet(graph.num_states, parameterization=param, **sizes)


def _check_label_names(value: tuple[str, ...] | None, where: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if len(value) < 1 or any(not name or name != name.strip() for name in value):
        raise ValueError(
            f"{where} must list one or more non-empty label names without surrounding spaces, "
            f"got {list(value)}"
        )
    repeated = sorted({name for name in value if value.count(name) > 1})
    if repeated:
        raise ValueError(f"{where} names each label once; repeated: {repeated}")
    return value


class ConvNetConfig(_Config):
    """`ConvScoreNet`: dilated convolutions with learned absolute positions (short sequences).

    `max_length` is the longest sequence the position table covers (the DNA recipe's windows
    are 150 bases); `positions: false` leaves the table out (translation-equivariant blocks).
    `labels` (names of the class labels) makes a label-conditioned network with
    `num_labels = len(labels)`, as for the transformer: label id k is `labels[k]`.
    """

    kind: Literal["conv"] = "conv"
    max_length: int = Field(default=512, ge=1)
    dim: int = Field(default=64, ge=1)
    depth: int = Field(default=6, ge=1)
    kernel_size: int = Field(default=5, ge=1)
    cycle: int = Field(default=6, ge=1)
    cond_dim: int = Field(default=64, ge=1)
    positions: bool = True
    parameterization: Literal["log_score", "scaled_absorbing", "auto"] = "auto"
    labels: tuple[str, ...] | None = None

    @field_validator("labels")
    @classmethod
    def _valid_labels(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        return _check_label_names(value, "net.labels")

    @property
    def num_labels(self) -> int:
        """Number of class labels (0 without `labels`)."""
        return 0 if self.labels is None else len(self.labels)

    def build(self, graph: Graph) -> nn.Module:
        """The network for `graph` (its `num_states`, and the parameterisation chosen here)."""
        from ddiff.nets import ConvScoreNet

        sizes = self.model_dump(exclude={"kind", "parameterization", "labels"})
        return ConvScoreNet(
            graph.num_states,
            parameterization=_parameterization(self.parameterization, graph),
            num_labels=self.num_labels,
            **sizes,
        )


def _parameterization(choice: str, graph: Graph) -> Any:
    """`auto` picks `scaled_absorbing` for absorbing graphs (SEDD's choice) and `log_score`
    otherwise; `scaled_absorbing` on another graph is an error that says what to use."""
    from ddiff.nets import LogScoreParameterization, ScaledAbsorbingParameterization

    if choice == "auto":
        choice = "scaled_absorbing" if isinstance(graph, AbsorbingGraph) else "log_score"
    if choice == "scaled_absorbing":
        if not isinstance(graph, AbsorbingGraph):
            raise ValueError(
                "parameterization 'scaled_absorbing' needs an absorbing graph; use "
                "'log_score' or 'auto'"
            )
        return ScaledAbsorbingParameterization(graph)
    return LogScoreParameterization()


NetConfig = Annotated[TransformerNetConfig | ConvNetConfig, Field(discriminator="kind")]
"""Any network configuration, chosen by `kind`: `transformer` or `conv`."""


# -- optimisation ----------------------------------------------------------------------------------


class AdamWConfig(_Config):
    """AdamW with linear warm-up, gradient clipping and an EMA of the weights (SEDD's defaults).

    See `ddiff.training.OptimSettings` for the meaning of each field; `adam_eps` (formerly
    `eps`) is AdamW's denominator offset.
    """

    kind: Literal["adamw"] = "adamw"
    lr: float = Field(default=3e-4, gt=0)
    betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = Field(default=1e-8, gt=0)
    weight_decay: float = Field(default=0.0, ge=0)
    warmup_steps: int = Field(default=2500, ge=0)
    lr_decay: Literal["constant", "cosine"] = "constant"
    decay_steps: int | None = Field(default=None, gt=0)
    min_lr_ratio: float = Field(default=0.0, ge=0, le=1)
    grad_clip: float | None = Field(default=1.0, gt=0)
    ema_decay: float | None = Field(default=0.9999, ge=0, lt=1)

    _section: ClassVar[str] = "optim"
    _renamed: ClassVar[Mapping[str, str]] = {"eps": "adam_eps"}

    @model_validator(mode="after")
    def _decay_after_warmup(self) -> AdamWConfig:
        if self.decay_steps is not None and self.decay_steps <= self.warmup_steps:
            raise ValueError(
                f"decay_steps ({self.decay_steps}) must be above warmup_steps "
                f"({self.warmup_steps}): the cosine starts where the warm-up ends"
            )
        return self

    def build(self) -> OptimSettings:
        from ddiff.training import OptimSettings

        return OptimSettings(
            lr=self.lr,
            betas=self.betas,
            adam_eps=self.adam_eps,
            weight_decay=self.weight_decay,
            warmup_steps=self.warmup_steps,
            lr_decay=self.lr_decay,
            decay_steps=self.decay_steps,
            min_lr_ratio=self.min_lr_ratio,
            grad_clip=self.grad_clip,
            ema_decay=self.ema_decay,
        )


OptimConfig = Annotated[AdamWConfig, Field(discriminator="kind")]
"""Any optimiser configuration, chosen by `kind` (AdamW so far)."""


# -- the training loop -----------------------------------------------------------------------------


class TrainConfig(_Config):
    """How long and where to train; maps onto `lightning.Trainer` and `DiffusionModule`.

    `batch_size` is per device: the global batch is `batch_size * devices * num_nodes *
    accumulate_grad_batches`. `strategy: ddp` runs one process per device (multi-GPU, or
    `devices: N` CPU processes with gloo); `fsdp` shards the network over devices.

    Attributes:
        seed: seeds the initial weights, the data order and every training draw.
        max_steps: optimizer steps to train for (the data stream has no epochs).
        batch_size: sequences per batch and device.
        val_batch_size: sequences per validation batch (default: `batch_size`).
        accumulate_grad_batches: micro-batches per optimizer step.
        time_sampling: how the batch's times are drawn: `stratified` (the default), or
            `importance`, stratified draws through an adaptive proposal that puts more times
            where the loss varies most, each weighted by 1 / its density
            (`ddiff.losses.ImportanceTimes`; lower variance, docs/training.md); `antithetic`
            and `uniform` have more variance than either.
        precision: `32-true`, or `bf16-mixed` / `16-mixed` autocast (the loss stays float32).
        val_every_n_steps: optimizer steps between validations (the likelihood bound).
        val_num_t: times per validation sequence.
        limit_val_batches: validate on at most this many batches per rank (default: all).
        checkpoint_every_n_steps: optimizer steps between checkpoints.
        log_every_n_steps: optimizer steps between logged training losses.
        accelerator, devices, num_nodes, strategy: where to run (Lightning's meanings).
        num_workers: DataLoader worker processes.
        deterministic: `torch.use_deterministic_algorithms` (GPU kernels; CPU is already).
        label_dropout: for labelled data: the probability of training a sequence with the null
            label (the unconditional model classifier-free guidance needs).
    """

    seed: int = Field(default=0, ge=0)
    max_steps: int = Field(ge=1)
    batch_size: int = Field(default=32, ge=1)
    val_batch_size: int | None = Field(default=None, ge=1)
    accumulate_grad_batches: int = Field(default=1, ge=1)
    time_sampling: Literal["stratified", "antithetic", "uniform", "importance"] = "stratified"
    precision: Literal["32-true", "bf16-mixed", "16-mixed"] = "32-true"
    val_every_n_steps: int = Field(default=1000, ge=1)
    val_num_t: int = Field(default=8, ge=1)
    limit_val_batches: int | None = Field(default=None, ge=1)
    checkpoint_every_n_steps: int = Field(default=1000, ge=1)
    log_every_n_steps: int = Field(default=50, ge=1)
    accelerator: Literal["auto", "cpu", "gpu", "cuda"] = "auto"
    devices: int | Literal["auto"] = "auto"
    num_nodes: int = Field(default=1, ge=1)
    strategy: Literal["auto", "ddp", "fsdp"] = "auto"
    num_workers: int = Field(default=0, ge=0)
    deterministic: bool = False
    label_dropout: float = Field(default=0.1, ge=0, le=1)


# -- data ------------------------------------------------------------------------------------------


class MarkovDataConfig(_Config):
    """Synthetic sequences from `ddiff.data.MarkovSource.random` (known entropy)."""

    kind: Literal["markov"] = "markov"
    num_tokens: int = Field(ge=1)
    length: int = Field(ge=1)
    num_train: int = Field(default=4096, ge=1)
    num_val: int = Field(default=512, ge=1)
    seed: int = Field(default=0, ge=0)
    concentration: float = Field(default=0.3, gt=0)

    def source(self) -> MarkovSource:
        """The Markov chain the data is drawn from (its exact entropy is the best bound)."""
        from ddiff.data import MarkovSource

        return MarkovSource.random(self.num_tokens, self.length, self.seed, self.concentration)

    def build(
        self,
        *,
        batch_size: int,
        val_batch_size: int | None = None,
        seed: int = 0,
        num_workers: int = 0,
    ) -> TokenDataModule:
        from ddiff.training import TokenDataModule

        source = self.source()
        g = torch.Generator().manual_seed(self.seed + 1)
        train, val = source.sample(self.num_train, g), source.sample(self.num_val, g)
        return TokenDataModule(
            train,
            val,
            batch_size=batch_size,
            val_batch_size=val_batch_size,
            num_tokens=self.num_tokens,
            seed=seed,
            num_workers=num_workers,
        )


class NpyDataConfig(_Config):
    """Token arrays stored with numpy (read with `allow_pickle=False`).

    Each of `train` and `val` is one of: a 2-D `.npy` of fixed-length windows `[N, L]`; a 1-D
    `.npy` token stream cut into windows of `window` tokens (packing); or an `.npz` holding
    `tokens` (1-D, all sequences concatenated) and `offsets` (1-D, N + 1 start positions) for
    variable-length sequences, padded with `pad_token` to `length` (see
    `ddiff.data.tokens` for the padding policy). Relative paths are relative to the YAML file.

    For label-conditioned training, `train_labels` and `val_labels` are 1-D integer `.npy`
    files with one class id per sequence (ids index `net.labels`).
    """

    kind: Literal["npy"] = "npy"
    train: Path
    val: Path | None = None
    train_labels: Path | None = None
    val_labels: Path | None = None
    window: int | None = Field(default=None, ge=1)
    length: int | None = Field(default=None, ge=1)
    pad_token: int = Field(default=0, ge=0)

    @field_validator("train", "val", "train_labels", "val_labels")
    @classmethod
    def _relative_to_file(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        base = (info.context or {}).get("base_dir")
        if value is None or value.is_absolute() or base is None:
            return value
        return (Path(base) / value).resolve()

    def _load(self, path: Path) -> Any:
        import numpy as np

        from ddiff.data import windows

        if not path.is_file():
            raise FileNotFoundError(f"token file not found: {path}")
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                if set(z.files) != {"tokens", "offsets"}:
                    raise ValueError(
                        f"{path}: an .npz must hold 'tokens' and 'offsets', got {z.files}"
                    )
                tokens, offsets = z["tokens"], z["offsets"]
            return [tokens[a:b] for a, b in itertools.pairwise(offsets)]
        array = np.load(path, allow_pickle=False)
        if array.ndim == 1:
            if self.window is None:
                raise ValueError(f"{path} is a 1-D token stream; set data.window to cut it")
            return windows(array, self.window)
        return array

    def build(
        self,
        *,
        batch_size: int,
        val_batch_size: int | None = None,
        seed: int = 0,
        num_workers: int = 0,
    ) -> TokenDataModule:
        from ddiff.training import TokenDataModule

        return TokenDataModule(
            self._load(self.train),
            None if self.val is None else self._load(self.val),
            batch_size=batch_size,
            val_batch_size=val_batch_size,
            length=self.length,
            pad_token=self.pad_token,
            train_labels=self._load_labels(self.train_labels),
            val_labels=self._load_labels(self.val_labels),
            seed=seed,
            num_workers=num_workers,
        )

    def _load_labels(self, path: Path | None) -> Any:
        import numpy as np

        if path is None:
            return None
        if not path.is_file():
            raise FileNotFoundError(f"label file not found: {path}")
        labels = np.load(path, allow_pickle=False)
        if labels.ndim != 1:
            raise ValueError(
                f"{path}: labels must be a 1-D array of class ids (one per sequence), got shape "
                f"{list(labels.shape)}"
            )
        return labels


DataConfig = Annotated[MarkovDataConfig | NpyDataConfig, Field(discriminator="kind")]
"""Any data configuration, chosen by `kind`."""


# -- sampling --------------------------------------------------------------------------------------


def _drop_other_kinds_keys(
    data: Any, keys: Mapping[str, Any], message: Callable[[dict[str, Any]], str]
) -> Any:
    """`data` without `keys` (another sampler kind's fields, left in a `sampling` section when a
    recipe's `--sampler` switches its kind): silently where they hold their defaults (`keys`'
    values), with a `UserWarning` saying `message(chosen)` for those set to something else."""
    if not isinstance(data, dict):
        return data
    chosen = {k: data[k] for k, v in keys.items() if k in data and data[k] != v}
    if chosen:
        warnings.warn(message(chosen), UserWarning, stacklevel=_caller_level())
    return {k: v for k, v in data.items() if k not in keys}


class _SamplerFields(_Config):
    steps: int = Field(
        default=128, ge=1, description="reverse steps (the denoise step adds one call)"
    )
    final_time: float = Field(
        default=1e-5, gt=0, lt=1, description="the last time of the grid (formerly `eps`)"
    )
    denoise: bool = True
    categorical_dtype: Literal["float64", "float32"] = "float64"

    _section: ClassVar[str] = "sampling"
    _renamed: ClassVar[Mapping[str, str]] = {"eps": "final_time"}
    # First-hitting's own controls, at their defaults (the values that keep its law).
    _event_keys: ClassVar[Mapping[str, Any]] = {
        "temperature": 1.0,
        "top_p": 1.0,
        "order": "random",
        "tokens_per_call": 1,
    }

    @model_validator(mode="before")
    @classmethod
    def _drop_event_keys(cls, data: Any) -> Any:
        """Drop first-hitting's controls left in a `sampling` section switched to a grid kind
        (as `--sampler euler` does to the DNA recipe's first-hitting section): silently at their
        defaults, with a `UserWarning` otherwise."""
        return _drop_other_kinds_keys(
            data,
            cls._event_keys,
            lambda chosen: (
                f"sampling.kind {data.get('kind')} does not take the first-hitting "
                f"sampler's controls: {chosen} not used"
            ),
        )

    def _kwargs(self) -> dict[str, Any]:
        return {
            "final_time": self.final_time,
            "denoise": self.denoise,
            "categorical_dtype": getattr(torch, self.categorical_dtype),
        }


class EulerSamplerConfig(_SamplerFields):
    """`EulerSampler`; `steps` is passed to `sample`, not to the constructor."""

    kind: Literal["euler"] = "euler"

    def build(self, graph: Graph, schedule: NoiseSchedule) -> Sampler:
        from ddiff.samplers import EulerSampler

        return EulerSampler(graph, schedule, **self._kwargs())


class TauLeapingSamplerConfig(_SamplerFields):
    """`TauLeapingSampler`."""

    kind: Literal["tau_leaping"] = "tau_leaping"

    def build(self, graph: Graph, schedule: NoiseSchedule) -> Sampler:
        from ddiff.samplers import TauLeapingSampler

        return TauLeapingSampler(graph, schedule, **self._kwargs())


class AnalyticSamplerConfig(_SamplerFields):
    """`AnalyticSampler` (Tweedie steps)."""

    kind: Literal["analytic"] = "analytic"

    def build(self, graph: Graph, schedule: NoiseSchedule) -> Sampler:
        from ddiff.samplers import AnalyticSampler

        return AnalyticSampler(graph, schedule, **self._kwargs())


class FirstHittingSamplerConfig(_Config):
    """`FirstHittingSampler` (absorbing graphs): one score call per unmasking event, no grid.

    It has no `steps` (the attribute reads None), `final_time` or `denoise`. Those keys, left in
    a `sampling` section by a grid kind (as when `--sampler first_hitting` switches a recipe
    whose section sets `steps: 128`), are dropped: silently when they hold the grid kinds'
    defaults (steps 128, final_time 1e-5, denoise true), with a `UserWarning` otherwise (a value
    someone chose that first-hitting cannot honour). The controls other than their defaults
    change the sampled law (see `FirstHittingSampler`).
    """

    kind: Literal["first_hitting"] = "first_hitting"
    categorical_dtype: Literal["float64", "float32"] = "float64"
    temperature: float = Field(default=1.0, gt=0, description="1 keeps the law")
    top_p: float = Field(default=1.0, gt=0, le=1, description="nucleus mass; 1 keeps the law")
    order: Literal["random", "confidence"] = "random"
    tokens_per_call: int = Field(default=1, ge=1, description="1 keeps the law")

    _section: ClassVar[str] = "sampling"
    _grid_keys: ClassVar[Mapping[str, Any]] = {"steps": 128, "final_time": 1e-5, "denoise": True}

    @model_validator(mode="before")
    @classmethod
    def _drop_grid_keys(cls, data: Any) -> Any:
        return _drop_other_kinds_keys(
            data,
            cls._grid_keys,
            lambda chosen: (
                f"sampling.kind first_hitting has no time grid: {chosen} not used "
                "(one score call per unmasking event; tokens_per_call=k unmasks k per call)"
            ),
        )

    @property
    def steps(self) -> None:
        """None: first-hitting sampling has no steps (what `Sampler.run` is given)."""
        return None

    def build(self, graph: Graph, schedule: NoiseSchedule) -> Sampler:
        from ddiff.samplers import FirstHittingSampler

        if not isinstance(graph, AbsorbingGraph):
            raise ValueError(
                f"sampling.kind first_hitting needs graph.kind absorbing, got "
                f"{type(graph).__name__}; use euler, tau_leaping or analytic"
            )
        return FirstHittingSampler(
            graph,
            schedule,
            categorical_dtype=getattr(torch, self.categorical_dtype),
            temperature=self.temperature,
            top_p=self.top_p,
            order=self.order,
            tokens_per_call=self.tokens_per_call,
        )


SamplerConfig = Annotated[
    EulerSamplerConfig
    | TauLeapingSamplerConfig
    | AnalyticSamplerConfig
    | FirstHittingSamplerConfig,
    Field(discriminator="kind"),
]
"""Any sampler configuration, chosen by `kind`."""


# -- the run ---------------------------------------------------------------------------------------


class RunConfig(_Config):
    """Everything a training run needs; `from_yaml` loads one, `to_json` saves it resolved.

    Cross-field checks: the data's alphabet matches the graph's; `scaled_absorbing` needs an
    absorbing graph; an absorbing graph needs a schedule that reaches the limit (`loglinear` or
    `cosine` with `survival: 0`), otherwise its likelihood bound is infinite.
    """

    graph: GraphConfig
    schedule: ScheduleConfig
    net: NetConfig = TransformerNetConfig()
    optim: OptimConfig = AdamWConfig()
    train: TrainConfig
    data: DataConfig | None = None
    sampling: SamplerConfig = EulerSamplerConfig()

    @model_validator(mode="after")
    def _consistent(self) -> RunConfig:
        graph = self.graph.build()
        if isinstance(self.net, TransformerNetConfig) and (
            self.net.parameterization == "scaled_absorbing"
            and not isinstance(graph, AbsorbingGraph)
        ):
            raise ValueError(
                f"net.parameterization 'scaled_absorbing' needs graph.kind 'absorbing', got "
                f"{self.graph.kind!r}; use 'auto' or 'log_score'"
            )
        if isinstance(graph, AbsorbingGraph) and math.isfinite(self.schedule.build().total_max):
            raise ValueError(
                "an absorbing graph needs a schedule that reaches the all-MASK limit, or its "
                "likelihood bound is infinite: use schedule {kind: loglinear, survival: 0} (or "
                "cosine with survival: 0)"
            )
        if isinstance(self.sampling, FirstHittingSamplerConfig) and not isinstance(
            graph, AbsorbingGraph
        ):
            raise ValueError(
                f"sampling.kind first_hitting needs graph.kind absorbing, got {self.graph.kind!r}; "
                "use euler, tau_leaping or analytic"
            )
        labelled = isinstance(self.data, NpyDataConfig) and self.data.train_labels is not None
        if labelled and self.net.num_labels == 0:
            raise ValueError(
                "data.train_labels is set but the network has no labels; list the label names "
                "in net.labels (label id k is the k-th name)"
            )
        if isinstance(self.data, MarkovDataConfig) and self.data.num_tokens != graph.num_tokens:
            raise ValueError(
                f"data.num_tokens = {self.data.num_tokens} but the graph has {graph.num_tokens} "
                "data tokens; make them equal"
            )
        return self

    # -- files --

    @classmethod
    def from_yaml(
        cls, path: str | os.PathLike[str], overrides: dict[str, Any] | None = None
    ) -> RunConfig:
        """Load and validate a YAML run file.

        Args:
            path: the YAML file; relative data paths in it are relative to its directory.
            overrides: dotted keys to set before validation, e.g. `{"train.max_steps": 400}`
                (unknown keys are errors, as in the file).

        Raises:
            ValueError: if the file is not valid YAML or not a mapping.
            pydantic.ValidationError: (a `ValueError`) naming every wrong or unknown key; its
                title is the file's path.
        """
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as e:
            raise ValueError(f"{path}: not valid YAML: {e}") from e
        if not isinstance(data, dict):
            raise ValueError(
                f"{path}: a run file must be a mapping of sections, got {type(data).__name__}"
            )
        for key, value in (overrides or {}).items():
            _set_dotted(data, key, value)
        try:
            return cls.model_validate(
                data, context={"base_dir": path.parent.resolve(), "source": str(path)}
            )
        except ValidationError as e:
            raise ValidationError.from_exception_data(str(path), e.errors()) from None  # type: ignore[arg-type]

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> RunConfig:
        """Load a configuration written by `save_json`."""
        path = Path(path)
        try:
            return cls.model_validate_json(path.read_text(), context={"source": str(path)})
        except ValidationError as e:
            raise ValidationError.from_exception_data(str(path), e.errors()) from None  # type: ignore[arg-type]

    def to_json(self) -> str:
        """The resolved configuration (defaults filled in) as indented JSON."""
        return self.model_dump_json(indent=2)

    def save_json(self, path: str | os.PathLike[str]) -> Path:
        """Write `to_json()` to `path` atomically (temporary file, then rename)."""
        path = Path(path)
        write_text(path, self.to_json() + "\n")
        return path


def _set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    """`data["a"]["b"] = value` for `key = "a.b"`, creating sections as needed."""
    *sections, last = key.split(".")
    node = data
    for section in sections:
        child = node.setdefault(section, {})
        if not isinstance(child, dict):
            raise ValueError(f"override {key!r}: {section!r} is not a section")
        node = child
    node[last] = value
