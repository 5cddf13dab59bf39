"""A recipe's configuration: the sections of a `ddiff.config.RunConfig` plus the recipe's own.

A domain's task subclasses `RecipeConfig` with its `data` and `infill` sections and its
defaults; `recipes/<name>.yaml` at the top of the repository holds exactly those defaults.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, TypeVar, get_args

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from ddiff.config import (
    AdamWConfig,
    EulerSamplerConfig,
    GraphConfig,
    LogLinearScheduleConfig,
    NetConfig,
    OptimConfig,
    RunConfig,
    SamplerConfig,
    ScheduleConfig,
    TrainConfig,
    TransformerNetConfig,
)


class RecipeError(Exception):
    """A problem with the user's input (file, option, checkpoint): one line, exit code 2."""


def one_line(text: str) -> str:
    """`text` with every run of white space folded to one space."""
    return " ".join(str(text).split())


class Section(BaseModel):
    """A configuration section: frozen, and unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _relative_to_config(value: Path, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base_dir")
    return value if value.is_absolute() or base is None else Path(base) / value


ConfigPath = Annotated[Path, AfterValidator(_relative_to_config)]
"""A file path; relative paths in a YAML file are relative to the file's directory."""


class RuntimeConfig(Section):
    """How the recipe uses the machine.

    Attributes:
        threads: torch intra-op threads. 1 is the default: on a shared 2-core machine a second
            thread waits for a busy core and training is several times slower (measured in
            `docs/recipes/dna.md`); raise it on an idle machine with more cores.
        train_time_limit_s: stop training after this many seconds even if `train.max_steps`
            is not reached (a safety net for slow or busy machines; None: no limit). The
            checkpoint, the pretrained export and the report record the steps reached.
        progress: show progress bars (training and sampling).
    """

    threads: int = Field(default=1, ge=1)
    train_time_limit_s: float | None = Field(default=None, gt=0)
    progress: bool = True


class GenerateConfig(Section):
    """Unconditional and conditional sampling.

    Attributes:
        num_samples: sequences drawn by `sample` and by `infill` (each).
        batch_size: sequences per sampler call.
        seed: seeds the sampler's generator (`sample` uses it, `infill` uses seed + 1).
    """

    num_samples: int = Field(default=256, ge=1)
    batch_size: int = Field(default=256, ge=1)
    seed: int = Field(default=0, ge=0)


class EvaluateConfig(Section):
    """The held-out likelihood bound and sample metrics.

    Attributes:
        num_t: Monte Carlo times per held-out sequence for the bound.
        max_heldout: score at most this many held-out sequences (a seeded subsample).
        batch_size: (sequence, time) pairs per network call.
        seed: seeds the bound's draws and the baselines' subsamples.
    """

    num_t: int = Field(default=16, ge=2)
    max_heldout: int = Field(default=2000, ge=1)
    batch_size: int = Field(default=256, ge=1)
    seed: int = Field(default=0, ge=0)


class ClassifierConfig(Section):
    """The noisy classifier p(c | x_t) that classifier guidance follows.

    `train` fits it after the diffusion model when the data carry labels
    (`ddiff.training.ClassifierModule`: cross-entropy on sequences noised by the model's own
    graph and schedule, the recipe's `optim` settings and seed) and saves it in
    `OUT/classifier/`.

    With `kind: markov` there is no network and no training loop: `train` fits one periodic
    Markov chain per label by counting (`ddiff.guidance.MarkovClassifier`, under a second) and
    the classifier is that model's exact noisy posterior (the forward algorithm over the
    masked or substituted positions); `order` and `period` set the chains, and the network
    fields are unused.

    Attributes:
        kind: `conv` (`ddiff.nets.ConvClassifierNet`: dilated convolutions with absolute
            positions), `transformer` (`ddiff.nets.NoisyClassifierNet`) or `markov`
            (`ddiff.guidance.MarkovClassifier`).
        order: markov only: the order k of each label's chain.
        period: markov only: the chains' transition probabilities depend on the position
            modulo `period` (3 for codon-aligned DNA windows: one chain per codon position).
        dim: width of the network.
        depth: its number of blocks.
        heads: attention heads (transformer only).
        cond_dim: width of its noise conditioning.
        positions: transformer only: learned absolute positions
            (`NoisyClassifierNet(max_length=...)` with the recipe's sequence length) besides the
            rotary ones (the convolutional classifier always has them): the DNA gene windows
            are cut in frame, so the codon phase of a position is part of the label's signal.
        max_steps: training steps (0: no classifier; `--guidance classifier` then refuses).
        batch_size: sequences per step.
    """

    kind: Literal["conv", "transformer", "markov"] = "conv"
    order: int = Field(default=2, ge=1, le=6)
    period: int = Field(default=1, ge=1)
    dim: int = Field(default=64, ge=2)
    depth: int = Field(default=4, ge=1)
    heads: int = Field(default=2, ge=1)
    cond_dim: int = Field(default=64, ge=1)
    positions: bool = True
    max_steps: int = Field(default=2000, ge=0)
    batch_size: int = Field(default=32, ge=1)


class GuidanceConfig(Section):
    """Steering a label-conditioned model towards one label (`ddiff.guidance`).

    `sample` and `infill` generate the label `label` (None: the unconditional model) with
    classifier-free guidance (`kind: free`: the conditional and unconditional scores of the
    one network mixed with `weight`) or classifier guidance (`kind: classifier`: the
    unconditional scores tilted by the trained noisy classifier). Weight 0 is the
    unconditional model, 1 the conditional law, above 1 sharper than it. `evaluate` of a
    labelled model sweeps every label, both kinds and `sweep_weights`, and judges the samples
    with a k-mer classifier trained on real data only (`ddiff.eval.KmerJudge`).

    Attributes:
        label: the label name to generate (`--label`); None: unconditional.
        kind: `free` or `classifier` (`--guidance`).
        weight: the guidance weight, >= 0 (`--guidance-weight`).
        mode: how classifier guidance evaluates the classifier's change of a single-token
            move: `first_order` (one gradient per step; the default, because `exact` calls the
            classifier on every single-token neighbour: ~40 s per step for 64 windows of 150 bp
            on one thread) or `exact`.
        sweep_weights: the weights `evaluate` compares.
        sweep_samples: sequences per label, kind and weight in that comparison.
        classifier: the classifier `train` fits on labelled data.
    """

    label: str | None = None
    kind: Literal["free", "classifier"] = "free"
    weight: float = Field(default=1.0, ge=0)
    mode: Literal["first_order", "exact"] = "first_order"
    sweep_weights: tuple[float, ...] = (0.0, 1.0, 1.5, 2.0, 4.0)
    sweep_samples: int = Field(default=256, ge=2)
    classifier: ClassifierConfig = ClassifierConfig()

    @model_validator(mode="after")
    def _valid_weights(self) -> GuidanceConfig:
        if not self.sweep_weights or any(w < 0 for w in self.sweep_weights):
            raise ValueError("sweep_weights must be a non-empty list of weights >= 0")
        if self.classifier.kind == "markov" and self.mode != "exact":
            raise ValueError(
                "classifier.kind: markov needs mode: exact (its chains have no gradient in a "
                "one-hot input; with the first-hitting sampler the exact mode is cheap)"
            )
        return self


class RecipeConfig(Section):
    """The sections of a `ddiff.config.RunConfig` (minus `data`) plus the recipe's own.

    A task subclasses it with its `data` and `infill` sections, its graph and training
    defaults, and sets the class variables `name` and `num_tokens`; the other defaults (an
    absorbing-graph schedule, a small transformer, AdamW, 128 Euler steps, one thread and five
    minutes of training) suit every shipped domain on a laptop CPU. `run_config` gives the
    `RunConfig` that training saves next to the weights.
    """

    recipe: str
    graph: GraphConfig
    schedule: ScheduleConfig = LogLinearScheduleConfig(survival=0.0)
    net: NetConfig = TransformerNetConfig(dim=64, depth=2, heads=2, cond_dim=64)
    optim: OptimConfig = AdamWConfig(lr=1e-3, warmup_steps=100, ema_decay=0.995)
    train: TrainConfig
    sampling: SamplerConfig = EulerSamplerConfig(steps=128)
    runtime: RuntimeConfig = RuntimeConfig(threads=1, train_time_limit_s=300.0)
    generate: GenerateConfig = GenerateConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    guidance: GuidanceConfig = GuidanceConfig()

    name: ClassVar[str] = ""  # the recipe's name, e.g. "dna"
    num_tokens: ClassVar[int | None] = None  # the data alphabet the graph must have

    @model_validator(mode="after")
    def _consistent(self) -> RecipeConfig:
        if self.recipe != self.name:
            raise ValueError(f"recipe: this is the {self.name!r} recipe, got {self.recipe!r}")
        self.run_config()  # RunConfig's own cross-field checks (absorbing needs a limit, ...)
        graph = self.graph.build()
        if self.num_tokens is not None and graph.num_tokens != self.num_tokens:
            raise ValueError(
                f"graph: the {self.name} recipe needs {self.num_tokens} data tokens, but "
                f"graph.kind {self.graph.kind!r} has {graph.num_tokens}"
            )
        return self

    @property
    def data_path(self) -> Path | None:
        """The user's data file of the domain's `data` section (None: the shipped data)."""
        return getattr(getattr(self, "data", None), "path", None)

    def run_config(self) -> RunConfig:
        """The `RunConfig` of the model (saved as `config.json` next to checkpoints and weights)."""
        return RunConfig(
            graph=self.graph,
            schedule=self.schedule,
            net=self.net,
            optim=self.optim,
            train=self.train,
            sampling=self.sampling,
        )

    @classmethod
    def from_yaml(cls: type[_C], path: str | os.PathLike[str]) -> _C:
        """Load and validate a recipe YAML file (unknown keys are errors naming the key)."""
        path = Path(path)
        if not path.is_file():
            raise RecipeError(f"--config {path}: no such file")
        try:
            data = yaml.safe_load(path.read_text())
        except (yaml.YAMLError, UnicodeDecodeError) as err:
            raise RecipeError(f"--config {path}: not valid YAML ({one_line(str(err))})") from err
        if not isinstance(data, dict):
            raise RecipeError(f"--config {path}: a recipe file must be a mapping of sections")
        other = data.get("recipe")
        if isinstance(other, str) and other != cls.name:
            raise RecipeError(
                f"--config {path} is a configuration of the {other!r} recipe (recipe: {other}); "
                f"run it with python -m ddiff.recipes.{other}, or start from recipes/"
                f"{cls.name}.yaml for the {cls.name} recipe"
            )
        return cls.validated(data, f"--config {path}", base_dir=path.parent, source=str(path))

    @classmethod
    def validated(
        cls: type[_C],
        data: dict[str, Any],
        where: str,
        base_dir: Path | None = None,
        source: str | None = None,
    ) -> _C:
        """`model_validate(data)`, with errors turned into one `RecipeError` line; `source`
        names the file in the warnings about renamed keys."""
        try:
            return cls.model_validate(data, context={"base_dir": base_dir, "source": source})
        except ValidationError as err:
            raise RecipeError(f"{where}: {_validation_summary(err, cls)}") from err

    def with_overrides(self: _C, overrides: dict[str, Any], where: str = "option") -> _C:
        """A copy with dotted keys set (`{"train.max_steps": 10}`), validated."""
        data = self.model_dump(mode="json")
        for key, value in overrides.items():
            *sections, last = key.split(".")
            node = data
            for section in sections:
                child = node.get(section)
                if not isinstance(child, dict):
                    raise RecipeError(f"{where} {key}: {section!r} is not a section of the recipe")
                node = child
            node[last] = value
        return self.validated(data, where)

    def to_yaml(self) -> str:
        """The resolved configuration as YAML (what `recipes/<name>.yaml` holds)."""
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False, width=100)


_C = TypeVar("_C", bound=RecipeConfig)


def cpu_training(max_steps: int, every: int, **options: Any) -> TrainConfig:
    """The recipes' training section: batches of 32 on one CPU, a held-out bound (2 times per
    sequence) and a checkpoint every `every` steps, the loss logged every 10."""
    return TrainConfig(
        max_steps=max_steps,
        batch_size=32,
        val_batch_size=128,
        val_every_n_steps=every,
        val_num_t=2,
        checkpoint_every_n_steps=every,
        log_every_n_steps=10,
        accelerator="cpu",
        devices=1,
        **options,
    )


def _validation_summary(err: ValidationError, model: type[BaseModel]) -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"])
        message = e["msg"].removeprefix("Value error, ")  # a validator's own message
        if e["type"] == "union_tag_not_found":  # pydantic's "Unable to extract tag ..."
            kinds = ", ".join(_kinds(model, e["loc"])) or "see the docs"
            message = f"the section needs a kind, one of: {kinds}"
        parts.append(f"{loc}: {message}" if loc else message)
    return "; ".join(parts)


def _kinds(model: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    """The `kind` names a discriminated section at `loc` accepts."""
    annotation: Any = model
    for part in loc:
        fields = getattr(annotation, "model_fields", None)
        if not isinstance(part, str) or fields is None or part not in fields:
            return []
        annotation = fields[part].annotation
    members = get_args(annotation)
    return [str(m.model_fields["kind"].default) for m in members if hasattr(m, "model_fields")]
