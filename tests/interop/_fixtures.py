"""Build SEDD checkpoints of both layouts from the reference's test vectors (tests/interop/data).

`make_vectors.py` ran the reference code and recorded its configurations, weights and outputs;
these helpers lay them out as the reference writes them: a Hugging Face directory
(`config.json` + `model.safetensors` or `pytorch_model.bin`) and a training run directory
(`.hydra/config.yaml` + `checkpoints-meta/checkpoint.pth` with `model`, `ema`, `optimizer`,
`step`; the EMA's `shadow_params` a list in the reference's trainable-parameter order).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

DATA = Path(__file__).resolve().parent / "data"
HF_CASES = ("absorb_loglinear_scaled", "absorb_loglinear_unscaled", "uniform_geometric")
RUN_CASE = "run_directory_ema"


@cache
def vectors() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / "cases.json").read_text())
    return data


def case(name: str) -> dict[str, Any]:
    found: dict[str, Any] = vectors()["cases"][name]
    return found


def weights(file: str) -> dict[str, Tensor]:
    """A state dict of the vectors, in float32 (stored as float16: every value is one)."""
    return {k: v.float() for k, v in load_file(str(DATA / file)).items()}


def inputs(name: str) -> tuple[Tensor, Tensor]:
    c = case(name)
    return torch.tensor(c["tokens"]), torch.tensor(c["sigma"])


def output(name: str, key: str = "output") -> Tensor:
    return torch.tensor(case(name)[key])


def build_hf(
    directory: Path, name: str, *, file: str = "model.safetensors", config: Any = None
) -> Path:
    """The Hugging Face layout of case `name` (config.json as the reference's mixin wrote it)."""
    c = case(name)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(
        json.dumps(c["config_json"] if config is None else config)
    )
    state = weights(c["weights"])
    if file.endswith(".safetensors"):
        save_file(state, str(directory / file))
    else:
        torch.save(state, directory / file)
    return directory


def optimizer_state(state: dict[str, Tensor]) -> dict[str, Any]:
    """A real AdamW state dict over the trainable parameters (one step taken)."""
    params = [torch.nn.Parameter(v.clone()) for k, v in state.items() if not k.endswith("inv_freq")]
    optimizer = torch.optim.AdamW(params, lr=1e-3)
    sum(p.square().sum() for p in params).backward()  # type: ignore[union-attr]
    optimizer.step()
    return optimizer.state_dict()


def checkpoint(
    raw: dict[str, Tensor], shadow: dict[str, Tensor], order: list[str] | None = None
) -> dict[str, Any]:
    """`utils.save_checkpoint`'s dict: the EMA's shadow params listed in `order` (default: the
    reference's trainable-parameter order)."""
    c = case(RUN_CASE)
    order = vectors()["parameter_order"] if order is None else order
    return {
        "optimizer": optimizer_state(raw),
        "model": raw,
        "ema": {
            "decay": c["ema_decay"],
            "num_updates": c["ema_num_updates"],
            "shadow_params": [shadow[name].clone() for name in order],
        },
        "step": c["step"],
    }


def build_run(directory: Path, ckpt: dict[str, Any] | None = None) -> Path:
    """The run directory of the EMA case: raw weights B, EMA weights A."""
    c = case(RUN_CASE)
    (directory / ".hydra").mkdir(parents=True, exist_ok=True)
    (directory / "checkpoints-meta").mkdir(exist_ok=True)
    (directory / ".hydra" / "config.yaml").write_text(c["config_yaml"])
    if ckpt is None:
        ckpt = checkpoint(weights(c["weights"]), weights(c["ema_weights"]))
    torch.save(ckpt, directory / "checkpoints-meta" / "checkpoint.pth")
    return directory
