"""Shared recipe machinery: configuration, run directories, training, sampling, likelihood.

Everything here is domain-free; `ddiff.recipes.dna` (and the protein and text recipes) add
their data, conditions and metrics. The layout of a recipe's output directory `OUT/`:

```
OUT/recipe.json              what was trained on what (recipe name, resolved recipe config, data)
OUT/checkpoints/             Lightning checkpoints (last.ckpt: resume from it) + config.json
OUT/logs/version_<n>/        metrics.csv: train/loss, val/bits_per_token ... per step
OUT/pretrained/              model.safetensors + config.json (load_pretrained)
OUT/samples.<ext>            unconditional samples      (+ samples.json: how they were drawn)
OUT/infill.<ext>             conditional samples        (+ infill.json: the fixed motifs)
OUT/metrics.json             every number of the report
OUT/report.md, OUT/figures/  the report and its PNG plots
```

Every file is written to a temporary sibling and renamed into place, so an interrupted or
failed command leaves the previous file or the new one, never a truncated file; a trained run
in `OUT` is never overwritten (training again needs `--resume` or another `--out`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import secrets
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, TypeVar

import numpy as np
import torch
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
from torch import Tensor

from ddiff.config import (
    AdamWConfig,
    GraphConfig,
    NetConfig,
    OptimConfig,
    RunConfig,
    SamplerConfig,
    ScheduleConfig,
    TrainConfig,
)

RECIPE_FILE = "recipe.json"
PRETRAINED_DIR = "pretrained"
CHECKPOINT_DIR = "checkpoints"
LOG_DIR = "logs"
FIGURE_DIR = "figures"
METRICS_FILE = "metrics.json"
REPORT_FILE = "report.md"


class RecipeError(Exception):
    """A problem with the user's input (file, option, checkpoint): one line, exit code 2."""


# -- configuration ---------------------------------------------------------------------------------


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _relative_to_config(value: Path, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base_dir")
    return value if value.is_absolute() or base is None else Path(base) / value


ConfigPath = Annotated[Path, AfterValidator(_relative_to_config)]
"""A file path; relative paths in a YAML file are relative to the file's directory."""


class RuntimeConfig(_Section):
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


class GenerateConfig(_Section):
    """Unconditional and conditional sampling.

    Attributes:
        num_samples: sequences drawn by `sample` and by `infill` (each).
        batch_size: sequences per sampler call.
        seed: seeds the sampler's generator (`sample` uses it, `infill` uses seed + 1).
    """

    num_samples: int = Field(default=256, ge=1)
    batch_size: int = Field(default=256, ge=1)
    seed: int = Field(default=0, ge=0)


class EvaluateConfig(_Section):
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


class RecipeConfig(_Section):
    """The sections of a `ddiff.config.RunConfig` (minus `data`) plus the recipe's own.

    Domain recipes subclass it with their `data` and `infill` sections and defaults. `run_config`
    gives the `RunConfig` that training saves next to the weights.
    """

    recipe: str
    graph: GraphConfig
    schedule: ScheduleConfig
    net: NetConfig
    optim: OptimConfig = AdamWConfig()
    train: TrainConfig
    sampling: SamplerConfig
    runtime: RuntimeConfig = RuntimeConfig()
    generate: GenerateConfig = GenerateConfig()
    evaluate: EvaluateConfig = EvaluateConfig()

    name: ClassVar[str] = ""  # the recipe's name, e.g. "dna"
    num_tokens: ClassVar[int | None] = None  # the data alphabet the graph must have

    @model_validator(mode="after")
    def _consistent(self) -> RecipeConfig:
        if self.recipe != self.name:
            raise ValueError(f"recipe: this is the {self.name!r} recipe, got {self.recipe!r}")
        self.run_config()  # RunConfig's own cross-field checks (absorbing needs eps = 0, ...)
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
            raise RecipeError(f"--config {path}: not valid YAML ({_one_line(str(err))})") from err
        if not isinstance(data, dict):
            raise RecipeError(f"--config {path}: a recipe file must be a mapping of sections")
        return cls.validated(data, f"--config {path}", base_dir=path.parent)

    @classmethod
    def validated(
        cls: type[_C], data: dict[str, Any], where: str, base_dir: Path | None = None
    ) -> _C:
        """`model_validate(data)`, with errors turned into one `RecipeError` line."""
        try:
            return cls.model_validate(data, context={"base_dir": base_dir})
        except ValidationError as err:
            raise RecipeError(f"{where}: {_validation_summary(err)}") from err

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


def _validation_summary(err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        parts.append(f"{loc}: {e['msg']}")
    return "; ".join(parts)


def _one_line(text: str) -> str:
    return " ".join(text.split())


# -- files ------------------------------------------------------------------------------------------


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary sibling of `path` to write; renamed onto `path` when the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: Path, text: str) -> None:
    """Write `text` to `path` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: Path, data: Any) -> None:
    """Write `data` as indented JSON atomically (NaN and inf become null)."""
    write_text(path, json.dumps(_jsonable(data), indent=2) + "\n")


def read_json(path: Path) -> Any:
    """Read a JSON file written by `write_json`; a broken file is a `RecipeError`."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RecipeError(f"{path}: cannot read it as JSON ({_one_line(str(err))})") from err


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def write_tokens(path: Path, tokens: Tensor) -> None:
    """Save sampled token rows `[N, L]` as `.npy` atomically (int16 when the ids fit)."""
    array = tokens.cpu().numpy()
    array = array.astype(np.int16 if int(array.max(initial=0)) < 2**15 else np.int32)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, array, allow_pickle=False)


def read_tokens(path: Path) -> Tensor | None:
    """Token rows saved by `write_tokens`, or None if the file does not exist."""
    if not path.is_file():
        return None
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise RecipeError(f"{path}: not a token array written by the recipe ({err})") from err
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.integer):
        raise RecipeError(f"{path}: expected a 2-D integer array, got {array.shape} {array.dtype}")
    return torch.from_numpy(array.astype(np.int64))


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# -- the output directory ---------------------------------------------------------------------------


def check_out_dir(out: Path) -> None:
    """`OUT` must be a directory or not exist yet."""
    if out.exists() and not out.is_dir():
        raise RecipeError(f"--out {out}: exists and is not a directory")


def check_fresh_for_training(out: Path, resume: bool) -> None:
    """Refuse to train into a directory that already holds a run, unless resuming."""
    check_out_dir(out)
    if resume:
        return
    for name in (PRETRAINED_DIR, CHECKPOINT_DIR):
        if (out / name).exists():
            raise RecipeError(
                f"--out {out} already holds a trained run ({out / name}); pass --resume to "
                f"continue it, --checkpoint {out} with sample/infill/evaluate to use it, or "
                "choose another --out (nothing was changed)"
            )


@dataclass(frozen=True)
class CheckpointInfo:
    """Where a trained model lives.

    Attributes:
        pretrained: the `save_pretrained` directory.
        run_dir: the recipe output directory it belongs to (None for a bare pretrained dir).
        recipe: the contents of `recipe.json` (None without one).
    """

    pretrained: Path
    run_dir: Path | None
    recipe: dict[str, Any] | None


def locate_checkpoint(path: Path, option: str = "--checkpoint") -> CheckpointInfo:
    """Resolve a recipe output directory or a `save_pretrained` directory."""
    if not path.exists():
        raise RecipeError(f"{option} {path}: no such directory")
    if not path.is_dir():
        raise RecipeError(
            f"{option} {path}: not a directory; give a recipe output directory or a "
            "save_pretrained directory"
        )
    if (path / "model.safetensors").is_file():
        pretrained, run_dir = path, None
        if path.name == PRETRAINED_DIR and (path.parent / RECIPE_FILE).is_file():
            run_dir = path.parent
    elif (path / PRETRAINED_DIR / "model.safetensors").is_file():
        pretrained, run_dir = path / PRETRAINED_DIR, path
    else:
        raise RecipeError(
            f"{option} {path}: no trained model here (expected {path / PRETRAINED_DIR}/"
            "model.safetensors); train first, or point at a save_pretrained directory"
        )
    recipe = None
    if run_dir is not None and (run_dir / RECIPE_FILE).is_file():
        recipe = read_json(run_dir / RECIPE_FILE)
        if not isinstance(recipe, dict):
            raise RecipeError(f"{run_dir / RECIPE_FILE}: not a recipe record")
    return CheckpointInfo(pretrained=pretrained, run_dir=run_dir, recipe=recipe)


def load_model(
    info: CheckpointInfo, recipe: str, num_tokens: int, option: str = "--checkpoint"
) -> Any:
    """`load_pretrained` of a checkpoint, refused unless it is a model of this recipe's domain.

    Returns:
        A `ddiff.training.Pretrained`.
    """
    from ddiff.training import load_pretrained

    if info.recipe is not None and info.recipe.get("recipe") != recipe:
        raise RecipeError(
            f"{option} {info.run_dir}: this run was trained by the "
            f"{info.recipe.get('recipe')!r} recipe, not {recipe!r}; use "
            f"python -m ddiff.recipes.{info.recipe.get('recipe')} for it"
        )
    try:
        pre = load_pretrained(info.pretrained)
    except (ValueError, FileNotFoundError) as err:
        raise RecipeError(f"{option} {info.pretrained}: {_one_line(str(err))}") from err
    if pre.graph.num_tokens != num_tokens:
        raise RecipeError(
            f"{option} {info.pretrained}: the model has {pre.graph.num_tokens} data tokens but "
            f"the {recipe} recipe needs {num_tokens}; it was trained for another domain"
        )
    return pre


# -- training ---------------------------------------------------------------------------------------


def set_threads(threads: int) -> None:
    """torch intra-op threads for this process."""
    torch.set_num_threads(threads)


def quiet_lightning() -> None:
    """Keep Lightning's console output to the progress bar and real warnings."""
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for pattern in (
        ".*does not have many workers.*",
        ".*Checkpoint directory .* exists and is not empty.*",
        ".*LightningModule.*has parameters that were not used.*",
        ".*GPU available but not used.*",
        ".*`IterableDataset` has `__len__` defined.*",
        ".*isinstance\\(treespec, LeafSpec\\)` is deprecated.*",
    ):
        warnings.filterwarnings("ignore", message=pattern)


def train_model(
    config: RecipeConfig,
    out: Path,
    datamodule: Any,
    *,
    resume: bool,
) -> dict[str, Any]:
    """Train with `ddiff.training.train` into `out`; returns what `recipe.json` records of it."""
    from lightning.pytorch.callbacks import TQDMProgressBar

    from ddiff.training import train

    quiet_lightning()
    overrides: dict[str, Any] = {
        "enable_model_summary": False,
        "num_sanity_val_steps": 0,
        "enable_progress_bar": config.runtime.progress,
    }
    callbacks = [TQDMProgressBar(refresh_rate=10)] if config.runtime.progress else []
    if config.runtime.train_time_limit_s is not None:
        overrides["max_time"] = {"seconds": config.runtime.train_time_limit_s}
    start = time.perf_counter()
    module = train(
        config.run_config(),
        out,
        resume=resume,
        datamodule=datamodule,
        callbacks=callbacks,
        **overrides,
    )
    seconds = time.perf_counter() - start
    steps = int(module.global_step)
    return {
        "steps": steps,
        "max_steps": config.train.max_steps,
        "stopped_by_time_limit": steps < config.train.max_steps,
        "seconds": seconds,
        "num_parameters": sum(p.numel() for p in module.net.parameters()),
    }


def read_training_logs(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Per metric, `(step, value)` pairs from every `logs/version_*/metrics.csv` (resumed runs
    write a new version; later versions win at equal steps)."""
    import csv

    series: dict[str, dict[int, float]] = {}
    versions = sorted(
        (run_dir / LOG_DIR).glob("version_*/metrics.csv"),
        key=lambda p: int(p.parent.name.split("_")[-1]),
    )
    for path in versions:
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                step = row.get("step")
                if not step:
                    continue
                for key, value in row.items():
                    if key in ("step", "epoch") or value in (None, ""):
                        continue
                    series.setdefault(key, {})[int(float(step))] = float(value)
    return {k: sorted(v.items()) for k, v in series.items()}


# -- sampling ---------------------------------------------------------------------------------------


SAMPLER_KINDS = {"euler": "euler", "tau-leaping": "tau_leaping", "analytic": "analytic"}
"""Command-line sampler names -> `SamplerConfig` kinds."""


def draw_samples(
    pre: Any,
    sampling: SamplerConfig,
    num: int,
    length: int,
    *,
    batch_size: int,
    seed: int,
    condition: Any = None,
    progress: bool = True,
    label: str = "sampling",
) -> tuple[Tensor, dict[str, Any]]:
    """`num` samples `[num, length]` from a `Pretrained` model with the configured sampler.

    Returns:
        The tokens, and a record of how they were drawn (sampler, steps, seed, nfe, seconds).
    """
    sampler = sampling.build(pre.graph, pre.schedule)
    generator = torch.Generator().manual_seed(seed)
    net = pre.net.eval()
    rows, nfe = [], 0
    start = time.perf_counter()
    chunks = range(0, num, batch_size)
    for k, first in enumerate(chunks):
        batch = min(batch_size, num - first)
        if progress and len(chunks) > 1:
            print(f"{label}: batch {k + 1}/{len(chunks)}", flush=True)
        result = sampler.run(
            net,
            batch,
            length,
            sampling.steps,
            condition=condition,
            generator=generator,
            progress=progress,
        )
        rows.append(result.tokens)
        nfe += result.nfe
    seconds = time.perf_counter() - start
    record = {
        "sampler": sampling.kind,
        "steps": sampling.steps,
        "num_samples": num,
        "length": length,
        "seed": seed,
        "nfe_per_batch": nfe // max(len(chunks), 1),
        "seconds": seconds,
    }
    return torch.cat(rows), record


# -- likelihood -------------------------------------------------------------------------------------


def paired_difference(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Mean of `a - b` over paired sequences and its standard error."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    se = float(d.std(ddof=1) / math.sqrt(d.size)) if d.size > 1 else math.nan
    return float(d.mean()), se


# -- an n-gram (Markov chain) baseline ---------------------------------------------------------------


class MarkovChain:
    r"""An order-k Markov chain over `num_tokens` symbols, smoothed towards lower orders.

    Position i >= k of a sequence is predicted from the previous k tokens; the first k positions
    have their own tables, fitted on the starts of the training sequences only (position i from
    the i tokens before it), so the chain also learns how sequences begin (e.g. never with a
    padding token). Every table is smoothed towards a shorter context (a Dirichlet prior of total
    mass $\alpha S$ centred on it):

    $$p_j(b \mid c) = \frac{n(c, b) + \alpha S\, p_{j-1}(b \mid c')}{n(c) + \alpha S},$$

    with $c'$ the context without its oldest token and $p_{-1}$ uniform (order 0 is add-$\alpha$
    smoothing); a start table for position i is centred on the all-positions table of context
    length i. The likelihood is exact: `nll_bits` is the negative log-likelihood of each
    sequence in bits, the number to compare with a diffusion model's bound.

    Args:
        num_tokens: alphabet size S.
        order: k >= 0 (tables have S^(k+1) entries: keep it small for large alphabets).
        alpha: prior strength per symbol, > 0.
    """

    def __init__(self, num_tokens: int, order: int, alpha: float = 0.5) -> None:
        if order < 0 or num_tokens < 1 or alpha <= 0:
            raise ValueError("need num_tokens >= 1, order >= 0 and alpha > 0")
        self.num_tokens, self.order, self.alpha = num_tokens, order, alpha
        self.log_probs: list[np.ndarray] = []  # position i < k: [S^i, S]; then k: [S^k, S]

    def fit(self, sequences: Sequence[np.ndarray]) -> MarkovChain:
        """Count (j+1)-grams over all positions and at the sequence starts."""
        s, mass = self.num_tokens, self.alpha * self.num_tokens
        seqs = [np.asarray(seq, dtype=np.int64) for seq in sequences]
        prior = np.full((1, s), 1.0 / s)
        general = []  # context length j, every position >= j
        for j in range(self.order + 1):
            counts = np.zeros((s**j, s), dtype=np.float64)
            for seq in seqs:
                if seq.size > j:
                    np.add.at(counts, (_context_codes(seq, j, s), seq[j:]), 1.0)
            lower = prior[np.arange(s**j) % prior.shape[0]]  # p_{j-1}(. | context suffix)
            prior = (counts + mass * lower) / (counts.sum(axis=1, keepdims=True) + mass)
            general.append(prior)
        self.log_probs = []
        for i in range(self.order):  # position i, from the sequence start
            counts = np.zeros((s**i, s), dtype=np.float64)
            for seq in seqs:
                if seq.size > i:
                    counts[_code(seq[:i], s), seq[i]] += 1.0
            start = (counts + mass * general[i]) / (counts.sum(axis=1, keepdims=True) + mass)
            self.log_probs.append(np.log(start))
        self.log_probs.append(np.log(general[self.order]))
        return self

    def nll_bits(self, sequences: Sequence[np.ndarray]) -> np.ndarray:
        """`[N]` exact negative log-likelihood of each sequence, bits."""
        out = np.zeros(len(sequences))
        for n, seq in enumerate(sequences):
            seq = np.asarray(seq, dtype=np.int64)
            total = 0.0
            for i in range(min(self.order, seq.size)):  # the start tables
                total += self.log_probs[i][_code(seq[:i], self.num_tokens), seq[i]]
            if seq.size > self.order:
                ctx = _context_codes(seq, self.order, self.num_tokens)
                total += self.log_probs[self.order][ctx, seq[self.order :]].sum()
            out[n] = -total / math.log(2.0)
        return out

    def sample(self, num: int, length: int, generator: np.random.Generator) -> np.ndarray:
        """`[num, length]` sequences drawn from the chain."""
        s, k = self.num_tokens, self.order
        out = np.zeros((num, length), dtype=np.int64)
        for i in range(length):
            j = min(i, k)
            ctx = np.zeros(num, dtype=np.int64)
            for col in range(i - j, i):
                ctx = ctx * s + out[:, col]
            cdf = np.exp(self.log_probs[j][ctx]).cumsum(axis=1)
            u = generator.random((num, 1)) * cdf[:, -1:]
            out[:, i] = np.minimum((cdf < u).sum(axis=1), s - 1)
        return out


def _code(tokens: np.ndarray, base: int) -> int:
    value = 0
    for t in tokens.tolist():
        value = value * base + int(t)
    return value


def _context_codes(seq: np.ndarray, j: int, base: int) -> np.ndarray:
    """Codes of the j tokens before each position j..len-1 (0 for j = 0)."""
    n = seq.size - j
    codes = np.zeros(n, dtype=np.int64)
    for offset in range(j):
        codes = codes * base + seq[offset : offset + n]
    return codes


# -- misc -------------------------------------------------------------------------------------------


def subsample(n: int, k: int, seed: int) -> np.ndarray:
    """`min(k, n)` distinct indices of `range(n)`, seeded, in increasing order."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=min(k, n), replace=False))
