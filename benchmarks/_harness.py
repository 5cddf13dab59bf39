"""Shared pieces of the likelihood benchmarks: sources, models, training, machine description.

Not a public module: the benchmark scripts import it from their own directory. Every model is
trained by the library's real path (`DiffusionModule` or `AutoregressiveModule` under a
`lightning.Trainer` with a `TokenDataModule`), with the same network size, optimiser, batch and
number of optimizer steps for the diffusion models and the autoregressive baseline, so the
comparison is at equal compute per token seen (the AR step is a little cheaper: one forward
pass, no noising).
"""

from __future__ import annotations

import logging
import os
import platform
import re
import subprocess
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

OUT = Path(__file__).resolve().parents[1] / "runs" / "benchmarks"

# The network of every model in the synthetic tables: the "tiny" preset the recipes also use
# (width 64, 2 blocks, 2 heads, ~0.1M non-embedding parameters): what trains in minutes on a CPU.
NET = {"dim": 64, "depth": 2, "heads": 2, "cond_dim": 64}
OPTIM = {"lr": 1e-3, "warmup_steps": 100, "ema_decay": 0.995}


@dataclass(frozen=True)
class Model:
    """A trained model: what to score it with and how to sample it."""

    name: str
    net: torch.nn.Module
    graph: Any = None  # None for the autoregressive model
    schedule: Any = None


def graph_of(kind: str, num_tokens: int, frequencies: torch.Tensor | None = None) -> Any:
    """absorbing, uniform, or the substitution model of the alphabet (HKY85 for 4 tokens,
    the BLOSUM62-derived protein graph for 20)."""
    from ddiff import AbsorbingGraph, UniformGraph
    from ddiff.graphs import hky85, protein_graph

    if kind == "absorbing":
        return AbsorbingGraph(num_tokens)
    if kind == "uniform":
        return UniformGraph(num_tokens)
    if kind == "substitution" and num_tokens == 4:
        freqs = (0.25,) * 4 if frequencies is None else tuple(float(f) for f in frequencies)
        return hky85(2.0, freqs)
    if kind == "substitution" and num_tokens == 20:
        return protein_graph()
    raise ValueError(f"no {kind} graph for {num_tokens} tokens")


CONV = {"dim": 64, "depth": 6, "kernel_size": 5, "cycle": 6, "cond_dim": 64}
"""`ConvScoreNet` sizes of the `*_conv` models: the DNA sweep's `conv` variant (6 blocks);
`*_convN` has N blocks (`*_conv3`: dilations 1, 2, 4, as the DNA recipe's default network)."""


def build_model(
    kind: str, num_tokens: int, seed: int, length: int = 64, **graph_kwargs: Any
) -> Model:
    """An untrained model: `kind` is "ar", a graph kind for `graph_of` (the transformer), or a
    graph kind with `_conv` or `_convN` appended (`ConvScoreNet` with absolute positions up to
    `length`, 6 or N blocks; `_convNkK`, `_convNwW`, `_convNkKwW`: kernel size K, width W;
    `_convN_nopos`: without positions); a trailing `_cos` (read by `train`)
    changes only the training."""
    from ddiff import AbsorbingGraph, LogLinearSchedule
    from ddiff.nets import (
        CausalTransformer,
        ConvScoreNet,
        ScaledAbsorbingParameterization,
        TransformerScoreNet,
    )

    name, kind = kind, kind.removesuffix("_cos")
    positions = not kind.endswith("_nopos")
    kind = kind.removesuffix("_nopos")
    match = re.fullmatch(r"(.+)_conv(\d*)(?:k(\d+))?(?:w(\d+))?", kind)
    conv = match is not None
    depth = int(match.group(2)) if match and match.group(2) else CONV["depth"]
    kernel = int(match.group(3)) if match and match.group(3) else CONV["kernel_size"]
    width = int(match.group(4)) if match and match.group(4) else CONV["dim"]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if kind == "ar":
            return Model(name, CausalTransformer(num_tokens, **NET))
        base = match.group(1) if match else kind
        graph = graph_of(base, num_tokens, **graph_kwargs)
        absorbing = isinstance(graph, AbsorbingGraph)
        param = ScaledAbsorbingParameterization(graph) if absorbing else None
        if conv:
            sizes = {**CONV, "depth": depth, "kernel_size": kernel, "dim": width}
            net = ConvScoreNet(
                graph.num_states, length, parameterization=param, positions=positions, **sizes
            )
        else:
            net = TransformerScoreNet(graph.num_states, parameterization=param, **NET)
    # Absorbing: the schedule reaches the all-MASK limit; the others stop 1e-3 short of it.
    schedule = LogLinearSchedule(survival=0.0 if absorbing else 1e-3)
    return Model(name, net, graph, schedule)


def train(
    model: Model,
    train_data: Any,
    *,
    steps: int,
    batch_size: int,
    seed: int,
    length: int | None = None,
    pad_token: int = 0,
    lr: float | None = None,
    precision: str = "32-true",
    time_sampling: Any = "stratified",
    optim: dict[str, Any] | None = None,
) -> tuple[Model, dict[str, Any]]:
    """Train for `steps` optimizer steps; returns the model with its EMA weights and a record.
    A model whose name ends in `_cos` decays its learning rate along a cosine over the steps;
    `precision` is Lightning's ("bf16-mixed": bf16 autocast, float32 weights and loss);
    `time_sampling` is `DiffusionModule`'s (a name or an `ImportanceTimes`); `optim` overrides
    `OPTIM` (`OptimSettings` fields, such as `betas` or `min_lr_ratio`)."""
    from ddiff.training import (
        AutoregressiveModule,
        DiffusionModule,
        OptimSettings,
        TokenDataModule,
    )

    decay = "cosine" if model.name.endswith("_cos") else "constant"
    settings = OptimSettings(
        **{**OPTIM, "lr": lr or OPTIM["lr"], "lr_decay": decay, **(optim or {})}
    )
    module: Any
    if model.graph is None:
        module = AutoregressiveModule(model.net, settings)
    else:
        module = DiffusionModule(
            model.graph, model.schedule, model.net, settings, seed=seed, time_sampling=time_sampling
        )
    data = TokenDataModule(
        train_data, batch_size=batch_size, seed=seed, length=length, pad_token=pad_token
    )
    record = fit(module, data, steps=steps, seed=seed, precision=precision)
    record["batch_size"] = batch_size
    record["precision"] = precision
    if model.graph is not None:
        record["time_sampling"] = time_sampling if isinstance(time_sampling, str) else "importance"
    record["lr"] = settings.lr
    if settings.betas != OptimSettings.betas:
        record["betas"] = list(settings.betas)
    if settings.min_lr_ratio:
        record["min_lr_ratio"] = settings.min_lr_ratio
    return Model(model.name, module.averaged_net.eval(), model.graph, model.schedule), record


def fit(
    module: Any, datamodule: Any, *, steps: int, seed: int, precision: str = "32-true"
) -> dict[str, Any]:
    """`lightning.Trainer.fit` for `steps` optimizer steps, no validation, no checkpoints."""
    import lightning as L

    quiet()
    trainer = L.Trainer(
        max_steps=steps,
        accelerator="cpu",
        precision=precision,  # type: ignore[arg-type]
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
    )
    L.seed_everything(seed, verbose=False)
    start = time.perf_counter()
    trainer.fit(module, datamodule=datamodule)
    return {
        "steps": int(trainer.global_step),
        "train_seconds": time.perf_counter() - start,
        "parameters": sum(p.numel() for p in module.net.parameters()),
    }


def score(model: Model, tokens: torch.Tensor, *, lengths: Any = None, num_t: int, seed: int) -> Any:
    """`ddiff.eval.bits_per_token`: the bound of a diffusion model, the exact NLL of the AR."""
    from ddiff.eval import bits_per_token

    target: Any = model.net if model.graph is None else (model.net, model.graph, model.schedule)
    return bits_per_token(target, tokens, lengths=lengths, num_t=num_t, seed=seed)


def save(model: Model, path: Path) -> None:
    """The network's weights, written atomically."""
    from ddiff.io import atomic_path

    with atomic_path(path) as tmp:
        torch.save(model.net.state_dict(), tmp)


def load(kind: str, num_tokens: int, path: Path, **graph_kwargs: Any) -> Model:
    model = build_model(kind, num_tokens, seed=0, **graph_kwargs)
    model.net.load_state_dict(torch.load(path, weights_only=True))
    model.net.eval()
    return model


def quiet() -> None:
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*isinstance\\(treespec, LeafSpec\\).*")
    warnings.filterwarnings("ignore", message=".*`IterableDataset` has `__len__` defined.*")


def machine(threads: int | None = None) -> str:
    """One line: CPU model, cores, torch version and threads (`threads` if the measurements ran
    in child processes with that many), load average."""
    cpu = platform.processor() or "cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} with "
        f"{threads or torch.get_num_threads()} thread(s), Python {platform.python_version()}, "
        f"load average {load:.1f}"
    )


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def markdown_table(header: list[str], rows: list[list[Any]], right: Callable[[int], bool]) -> str:
    """A markdown table; columns for which `right(i)` is true are right-aligned."""
    align = ["---:" if right(i) else "---" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
