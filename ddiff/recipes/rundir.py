"""The one layout of a recipe's output directory, and reading and writing its files.

```
OUT/recipe.json              what was trained on what (recipe name, resolved config, data)
OUT/checkpoints/             Lightning checkpoints (last.ckpt: resume from it) + config.json
OUT/logs/version_<n>/        metrics.csv: train/loss, val/bits_per_token ... per step
OUT/pretrained/              model.safetensors + config.json (ddiff.pretrained.load_pretrained)
OUT/samples.<ext>            unconditional samples (+ samples_tokens.npy, samples.json)
OUT/infill.<ext>             conditional samples   (+ infill_tokens.npy, infill.json)
OUT/metrics.json             every number of the report
OUT/report.md, OUT/figures/  the report and its PNG plots
```

Every file is written through `ddiff.io` (a temporary sibling renamed into place), so an
interrupted command leaves the previous file or the new one, never a truncated file; a trained
run is never overwritten (training again needs `--resume` or another `--out`).
"""

from __future__ import annotations

import csv
import hashlib
import json
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ddiff.interop import is_sedd_checkpoint
from ddiff.io import atomic_path, write_json, write_text
from ddiff.recipes.config import RecipeError, one_line
from ddiff.run import CHECKPOINT_DIR, LOG_DIR, PRETRAINED_DIR

__all__ = [
    "CheckpointInfo",
    "RunDir",
    "locate_checkpoint",
    "read_json",
    "sha256_file",
    "write_json",
    "write_text",
]


@dataclass(frozen=True)
class RunDir:
    """The paths of one recipe output directory.

    Attributes:
        root: the directory (`--out`).
        sample_suffix: the extension of the domain's sample files (`.fasta`, `.txt`).
    """

    root: Path
    sample_suffix: str = ".fasta"

    recipe_file = "recipe.json"
    pretrained_name = PRETRAINED_DIR  # ddiff.run's training layout, extended by the recipe's files
    checkpoint_name = CHECKPOINT_DIR
    log_name = LOG_DIR
    figure_name = "figures"

    @property
    def recipe(self) -> Path:
        return self.root / self.recipe_file

    @property
    def pretrained(self) -> Path:
        return self.root / self.pretrained_name

    @property
    def checkpoints(self) -> Path:
        return self.root / self.checkpoint_name

    @property
    def figures(self) -> Path:
        return self.root / self.figure_name

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.json"

    @property
    def report(self) -> Path:
        return self.root / "report.md"

    def samples(self, stage: str) -> Path:
        """The readable sample file of `stage` (`sample` -> samples.fasta, `infill` -> ...)."""
        return self.root / f"{_stem(stage)}{self.sample_suffix}"

    def tokens(self, stage: str) -> Path:
        """The token rows of `stage` (`samples_tokens.npy`, `infill_tokens.npy`)."""
        return self.root / f"{_stem(stage)}_tokens.npy"

    def record(self, stage: str) -> Path:
        """How the samples of `stage` were drawn (`samples.json`, `infill.json`)."""
        return self.root / f"{_stem(stage)}.json"

    # -- checks --

    def check_usable(self, option: str = "--out") -> None:
        """The directory must be a directory or not exist yet, below directories only."""
        if self.root.exists() and not self.root.is_dir():
            raise RecipeError(f"{option} {self.root}: exists and is not a directory")
        for parent in self.root.parents:
            if parent.exists() and not parent.is_dir():
                raise RecipeError(
                    f"{option} {self.root}: {parent} is a file, so no directory can be made "
                    "below it; choose another --out"
                )

    def check_writable(self, option: str = "--out") -> None:
        """Create the directory if needed and write (and remove) a probe file in it, so that an
        unwritable output fails before any work, with the reason."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=self.root):
                pass
        except OSError as err:
            raise RecipeError(
                f"{option} {self.root}: cannot write there ({err.strerror or err}); choose "
                "another --out"
            ) from err

    def check_no_samples(self, stage: str, overwrite: bool) -> None:
        """Refuse to replace the samples of `stage` unless `overwrite`; with it, warn that the
        report and metrics describe the previous samples."""
        existing = [p for p in (self.samples(stage), self.tokens(stage)) if p.exists()]
        if existing and not overwrite:
            raise RecipeError(
                f"--out {self.root} already holds the samples of {stage} ({existing[0].name}); "
                "pass --overwrite to replace them, or choose another --out (nothing was changed)"
            )
        stale = [p.name for p in (self.metrics, self.report) if p.exists()]
        if existing and stale:
            warnings.warn(
                f"{' and '.join(stale)} in {self.root} describe the previous samples until "
                "evaluate runs again",
                stacklevel=2,
            )

    def check_fresh_for_training(self, resume: bool) -> None:
        """Refuse to train into a directory that already holds a run, unless resuming."""
        self.check_usable()
        if resume:
            return
        for path in (self.pretrained, self.checkpoints):
            if path.exists():
                raise RecipeError(
                    f"--out {self.root} already holds a trained run ({path}); pass --resume to "
                    f"continue it, --checkpoint {self.root} with sample/infill/evaluate to use "
                    "it, or choose another --out (nothing was changed)"
                )

    # -- files --

    def read_record(self, stage: str) -> dict[str, Any] | None:
        """The JSON record of `stage`, or None when there is none."""
        path = self.record(stage)
        return read_json(path) if path.is_file() else None

    def write_tokens(self, stage: str, tokens: Tensor) -> None:
        """Save sampled token rows `[N, L]` as `.npy` (int16 when the ids fit)."""
        array = tokens.cpu().numpy()
        array = array.astype(np.int16 if int(array.max(initial=0)) < 2**15 else np.int32)
        with atomic_path(self.tokens(stage)) as tmp, open(tmp, "wb") as f:
            np.save(f, array, allow_pickle=False)

    def read_tokens(self, stage: str) -> Tensor | None:
        """Token rows saved by `write_tokens`, or None if there are none."""
        path = self.tokens(stage)
        if not path.is_file():
            return None
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise RecipeError(f"{path}: not a token array written by the recipe ({err})") from err
        if array.ndim != 2 or not np.issubdtype(array.dtype, np.integer):
            raise RecipeError(
                f"{path}: expected a 2-D integer array, got {array.shape} {array.dtype}"
            )
        return torch.from_numpy(array.astype(np.int64))

    def training_logs(self) -> dict[str, list[tuple[int, float]]]:
        """Per metric, `(step, value)` pairs from every `logs/version_*/metrics.csv` (resumed
        runs write a new version; later versions win at equal steps)."""
        series: dict[str, dict[int, float]] = {}
        versions = sorted(
            (self.root / self.log_name).glob("version_*/metrics.csv"),
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


def _stem(stage: str) -> str:
    return {"sample": "samples", "infill": "infill"}[stage]


def read_json(path: Path) -> Any:
    """Read a JSON file the recipe wrote; a broken file is a `RecipeError`."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RecipeError(f"{path}: cannot read it as JSON ({one_line(str(err))})") from err


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
    """Resolve a recipe output directory, a `save_pretrained` directory, or a checkpoint of the
    SEDD reference code (`ddiff.interop`: either of its layouts)."""
    if not path.exists():
        raise RecipeError(f"{option} {path}: no such directory")
    if not path.is_dir():
        raise RecipeError(
            f"{option} {path}: not a directory; give a recipe output directory or a "
            "save_pretrained directory"
        )
    layout = RunDir(path)
    if (path / "model.safetensors").is_file() or is_sedd_checkpoint(path):
        pretrained, run_dir = path, None
        if path.name == RunDir.pretrained_name and (path.parent / RunDir.recipe_file).is_file():
            run_dir = path.parent
    elif (layout.pretrained / "model.safetensors").is_file():
        pretrained, run_dir = layout.pretrained, path
    else:
        raise RecipeError(
            f"{option} {path}: no trained model here (expected {layout.pretrained}/"
            "model.safetensors); train first, or point at a save_pretrained directory"
        )
    recipe = None
    if run_dir is not None and RunDir(run_dir).recipe.is_file():
        recipe = read_json(RunDir(run_dir).recipe)
        if not isinstance(recipe, dict):
            raise RecipeError(f"{RunDir(run_dir).recipe}: not a recipe record")
    return CheckpointInfo(pretrained=pretrained, run_dir=run_dir, recipe=recipe)
