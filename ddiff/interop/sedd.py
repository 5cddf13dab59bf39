"""Load SEDD checkpoints (the reference code's two layouts) into ddiff objects."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import torch
import yaml
from pydantic import BaseModel, ConfigDict, Field
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor

from ddiff.config import (
    AbsorbingGraphConfig,
    AnalyticSamplerConfig,
    EulerSamplerConfig,
    GeometricScheduleConfig,
    LogLinearScheduleConfig,
    UniformGraphConfig,
)
from ddiff.graphs import AbsorbingGraph, Graph
from ddiff.interop.sedd_net import SeddScoreNet
from ddiff.nets import LogScoreParameterization, Parameterization, ScaledAbsorbingParameterization
from ddiff.pretrained import Pretrained
from ddiff.schedules import NoiseSchedule

__all__ = [
    "HF_CONFIG",
    "HF_WEIGHTS",
    "LOGLINEAR_SURVIVAL",
    "RUN_CHECKPOINT",
    "RUN_CONFIG",
    "SeddConfig",
    "SeddNetConfig",
    "is_sedd_checkpoint",
    "load_sedd",
    "sedd_schedule",
]

HF_CONFIG = "config.json"
"""The Hugging Face layout's configuration: the whole run configuration as JSON."""
HF_WEIGHTS = ("model.safetensors", "pytorch_model.bin")
"""The Hugging Face layout's weights, in the order they are looked for (the second is written
by older versions of the hub library)."""
RUN_CONFIG = os.path.join(".hydra", "config.yaml")
"""A training run directory's configuration (written by hydra)."""
RUN_CHECKPOINT = os.path.join("checkpoints-meta", "checkpoint.pth")
"""A training run directory's latest checkpoint (the one the reference's loader reads)."""

LOGLINEAR_SURVIVAL = 1e-3
"""The reference's `LogLinearNoise(eps=1e-3)`: its configuration has no key for it."""

_GRAPHS = ("absorb", "uniform")
_NOISES = ("loglinear", "geometric")
_PREDICTORS = {"euler": EulerSamplerConfig, "analytic": AnalyticSamplerConfig}


class SeddNetConfig(BaseModel):
    """The reference's `model` section, in ddiff's names: what builds a `SeddScoreNet`.

    Attributes:
        kind: always `"sedd"` (what `Pretrained.config.net.kind` reports).
        dim: `model.hidden_size`.
        depth: `model.n_blocks`.
        heads: `model.n_heads`.
        cond_dim: `model.cond_dim`.
        dropout: `model.dropout` (training mode only).
        scale_by_sigma: `model.scale_by_sigma` (absorbing graphs only).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["sedd"] = "sedd"
    dim: int = Field(ge=1)
    depth: int = Field(ge=1)
    heads: int = Field(ge=1)
    cond_dim: int = Field(ge=1)
    dropout: float = Field(default=0.1, ge=0.0, lt=1.0)
    scale_by_sigma: bool = True

    def build(self, graph: Graph) -> SeddScoreNet:
        """The network for `graph`, with the reference's initialisation."""
        param: Parameterization = LogScoreParameterization()
        if self.scale_by_sigma:
            if not isinstance(graph, AbsorbingGraph):
                raise ValueError(
                    "scale_by_sigma needs an absorbing graph (the reference asserts it too)"
                )
            param = ScaledAbsorbingParameterization(graph)
        return SeddScoreNet(
            graph.num_states,
            dim=self.dim,
            depth=self.depth,
            heads=self.heads,
            cond_dim=self.cond_dim,
            dropout=self.dropout,
            parameterization=param,
        )


class SeddConfig(BaseModel):
    """What ddiff read from a SEDD configuration, as the sections of a `ddiff.config.RunConfig`.

    `graph`, `schedule` and `sampling` are ddiff's own configuration models, so
    `config.graph.build()` and `Pretrained.sampler()` work as for a model trained by ddiff; the
    reference's configuration itself is kept whole in `reference`.

    Attributes:
        source: the configuration file read.
        graph: `graph.type` absorb -> `absorbing`, uniform -> `uniform`, with `tokens` data tokens.
        schedule: `noise.type` loglinear -> `loglinear` with survival 1e-3, geometric ->
            `geometric` with `noise.sigma_min`, `noise.sigma_max` (see `sedd_schedule`).
        net: the `model` section.
        sampling: `sampling.predictor` (euler or analytic), `sampling.steps` and
            `sampling.noise_removal` (ddiff's `denoise`); final time 1e-5 as the reference's
            samplers. Euler with 128 steps where the section is missing.
        reference: the whole configuration as read.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str
    graph: AbsorbingGraphConfig | UniformGraphConfig
    schedule: LogLinearScheduleConfig | GeometricScheduleConfig
    net: SeddNetConfig
    sampling: EulerSamplerConfig | AnalyticSamplerConfig = EulerSamplerConfig()
    reference: dict[str, Any]

    @classmethod
    def from_reference(cls, config: Mapping[str, Any], source: str) -> SeddConfig:
        """Read a reference configuration (the dict of `config.json` or `.hydra/config.yaml`).

        Args:
            config: the configuration as loaded.
            source: the file it came from (named in every error).

        Raises:
            ValueError: naming `source` and the key, if a key the network needs is missing or
                not a number, `graph.type` or `noise.type` is unknown, `scale_by_sigma` is set
                for a uniform graph, or `sampling.predictor` is unknown.
        """
        if not isinstance(config, Mapping):
            raise ValueError(f"{source}: a SEDD configuration is a mapping, got {config!r:.60}")
        if "net" in config and "model" not in config:
            raise ValueError(
                f"{source}: a ddiff configuration (it has 'net', not 'model'); load its "
                "directory with ddiff.pretrained.load_pretrained"
            )
        kind = _get(config, "graph.type", source, str)
        if kind not in _GRAPHS:
            raise ValueError(
                f"{source}: graph.type {kind!r} is not a SEDD graph; expected 'absorb' or 'uniform'"
            )
        tokens = _get(config, "tokens", source, int)
        if tokens < 2:
            raise ValueError(f"{source}: tokens = {tokens}, a vocabulary needs at least 2")
        graph: AbsorbingGraphConfig | UniformGraphConfig = (
            AbsorbingGraphConfig(num_tokens=tokens)
            if kind == "absorb"
            else UniformGraphConfig(num_tokens=tokens)
        )
        scale_by_sigma = _get(config, "model.scale_by_sigma", source, bool)
        if scale_by_sigma and kind != "absorb":
            raise ValueError(
                f"{source}: model.scale_by_sigma is true but graph.type is {kind!r}; the "
                "reference supports it for 'absorb' only"
            )
        try:
            net = SeddNetConfig(
                dim=_get(config, "model.hidden_size", source, int),
                depth=_get(config, "model.n_blocks", source, int),
                heads=_get(config, "model.n_heads", source, int),
                cond_dim=_get(config, "model.cond_dim", source, int),
                dropout=_get(config, "model.dropout", source, float, default=0.1),
                scale_by_sigma=scale_by_sigma,
            )
        except ValueError as err:  # a pydantic ValidationError: name the file
            raise ValueError(f"{source}: invalid model section: {_one_line(err)}") from None
        return cls(
            source=source,
            graph=graph,
            schedule=_schedule_config(config, source),
            net=net,
            sampling=_sampling_config(config, source),
            reference=json.loads(json.dumps(dict(config), default=str)),
        )


def sedd_schedule(noise: Mapping[str, Any], source: str = "the configuration") -> NoiseSchedule:
    r"""The ddiff schedule equal to the reference's `noise` section.

    - `loglinear`: $\bar\sigma(t) = -\log(1 - (1 - \varepsilon) t)$ with the reference's fixed
      $\varepsilon = 10^{-3}$ (`LogLinearNoise()`; `sigma_min`/`sigma_max` are not used), which
      is `LogLinearSchedule(survival=1e-3)`: $e^{-\bar\sigma(1)} = \varepsilon$.
    - `geometric`: $\bar\sigma(t) = \sigma_{\min}^{1-t} \sigma_{\max}^{t}$ =
      `GeometricSchedule(sigma_min, sigma_max)`.

    Both give the same total noise $\bar\sigma(t)$ and rate $\sigma(t)$ as the reference's
    `total_noise` and `rate_noise` (tested on a grid against values it computed).

    Args:
        noise: the `noise` section, e.g. `{"type": "geometric", "sigma_min": 1e-4,
            "sigma_max": 20}`.
        source: where it came from, for error messages.

    Raises:
        ValueError: naming `source` and the key, for an unknown `type` or a bad level.

    Example:
        >>> from ddiff.interop import sedd_schedule
        >>> sedd_schedule({"type": "loglinear", "sigma_min": 1e-4, "sigma_max": 20})
        LogLinearSchedule(survival=0.001)
        >>> sedd_schedule({"type": "geometric", "sigma_min": 1e-4, "sigma_max": 20})
        GeometricSchedule(sigma_min=0.0001, sigma_max=20.0)
    """
    return _schedule_config({"noise": noise}, source).build()


def is_sedd_checkpoint(path: str | os.PathLike[str]) -> bool:
    """Whether `path` is a directory in one of the reference's layouts.

    True for a Hugging Face layout whose `config.json` has the reference's `graph` and `model`
    sections (not a ddiff `save_pretrained` directory, whose `config.json` has `net`), and for
    a training run directory with `.hydra/config.yaml` and `checkpoints-meta/checkpoint.pth`.
    Nothing is loaded beyond the JSON configuration.
    """
    path = Path(path)
    if (path / RUN_CONFIG).is_file() and (path / RUN_CHECKPOINT).is_file():
        return True
    config = path / HF_CONFIG
    if not config.is_file():
        return False
    try:
        data = json.loads(config.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and "model" in data and "graph" in data and "net" not in data


def load_sedd(
    path: str | os.PathLike[str],
    *,
    device: torch.device | str = "cpu",
    weights: Literal["ema", "raw"] = "ema",
    checkpoint: str | os.PathLike[str] | None = None,
) -> Pretrained:
    r"""Load a SEDD checkpoint into a ddiff network, graph and schedule.

    Reads either layout the reference code writes (Lou, Meng & Ermon, ICML 2024;
    github.com/louaaron/Score-Entropy-Discrete-Diffusion):

    - **Hugging Face** (`SEDD.save_pretrained`, what `SEDD.from_pretrained` reads; the released
      `louaaron/sedd-small` and `sedd-medium`): `config.json` (the whole run configuration) and
      `model.safetensors`, or `pytorch_model.bin` from older versions of the hub library;
    - **training run directory** (`run_train.py`): `.hydra/config.yaml` and
      `checkpoints-meta/checkpoint.pth` with `model`, `ema` (`decay`, `num_updates`,
      `shadow_params`: one tensor per trainable parameter, in parameter order), `optimizer` and
      `step`. The EMA weights are used, as the reference's `load_model_local` does.

    The result maps the reference onto ddiff's conventions, which are the same: the rate matrix
    in the column convention ($Q[j, i]$ is the rate from $i$ to $j$; the reference's
    `rate(i)` is column $i$), MASK the last state $N$ of an absorbing graph, networks taking the
    total noise $\bar\sigma$ and returning log concrete scores with 0 at the current token. So
    every ddiff tool takes the result as it is: the samplers, infill conditions,
    `ddiff.eval.bits_per_token`. (The reference's log-linear schedule keeps a survival of
    $10^{-3}$ at t = 1. With an absorbing graph the bound's prior term is then infinite, the
    limit being all MASK; score such a model with `LogLinearSchedule(survival=0.0)`, which
    integrates the noise levels above $-\log 10^{-3}$ too: see the docs page "Use SEDD
    checkpoints".)

    Weights are read with safetensors, or with `torch.load(weights_only=True)`, which refuses
    pickled code; the configuration with `json` or `yaml.safe_load`.

    Args:
        path: a directory in one of the two layouts; or, with `huggingface_hub` installed, a
            hub repository id such as `"louaaron/sedd-small"` (downloaded to the hub's cache;
            `HF_HUB_OFFLINE=1` uses the cache only).
        device: where to put the weights.
        weights: `"ema"` (default) or `"raw"`: for a run directory, the EMA weights or the
            raw training weights (the `model` entry). The Hugging Face layout holds one set.
        checkpoint: for a run directory, another checkpoint file to read, relative to it (e.g.
            `"checkpoints/checkpoint_100000.pth"`); default `checkpoints-meta/checkpoint.pth`.

    Returns:
        A `ddiff.pretrained.Pretrained`: `net` (a `SeddScoreNet` in eval mode), `graph`,
        `schedule` and `config` (a `SeddConfig`, with the reference's configuration in
        `config.reference`).

    Raises:
        FileNotFoundError: if `path` is neither layout, or a file of it is missing.
        ValueError: one line naming the file and the key, if the configuration lacks a key or
            has an unknown `graph.type` or `noise.type`, the weights do not fit it (a missing,
            unexpected or differently shaped tensor), a file is truncated or not a checkpoint,
            or the EMA's `shadow_params` do not match the parameters.

    Example:
        A tiny checkpoint in the Hugging Face layout, written here by hand (as
        `SEDD.save_pretrained` would), then loaded and sampled:

        >>> import json, tempfile, torch
        >>> from pathlib import Path
        >>> from safetensors.torch import save_file
        >>> from ddiff.interop import SeddScoreNet, load_sedd
        >>> config = {
        ...     "tokens": 4, "graph": {"type": "absorb"}, "noise": {"type": "loglinear"},
        ...     "model": {"hidden_size": 32, "cond_dim": 16, "n_blocks": 1, "n_heads": 2,
        ...               "scale_by_sigma": True, "dropout": 0.1},
        ... }
        >>> _ = torch.manual_seed(0)
        >>> net = SeddScoreNet(5, dim=32, depth=1, heads=2, cond_dim=16)  # stands in for SEDD
        >>> with tempfile.TemporaryDirectory() as directory:
        ...     _ = Path(directory, "config.json").write_text(json.dumps(config))
        ...     save_file(net.state_dict(), str(Path(directory, "model.safetensors")))
        ...     model = load_sedd(directory)
        >>> model.graph, model.schedule, model.config.net.kind
        (AbsorbingGraph(num_tokens=4, num_states=5), LogLinearSchedule(survival=0.001), 'sedd')
        >>> sampler = model.sampler()  # Euler, 128 steps: the configuration's default
        >>> x = sampler.sample(model.net, batch=2, length=6, steps=8,
        ...                    generator=torch.Generator().manual_seed(0))
        >>> x.shape, bool((x < 4).all())  # no MASK left
        (torch.Size([2, 6]), True)
    """
    if weights not in ("ema", "raw"):
        raise ValueError(f"weights must be 'ema' or 'raw', got {weights!r}")
    root = Path(path)
    if not root.exists():
        root = _from_hub(str(path))
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a directory; give a SEDD checkpoint directory")
    if (root / HF_CONFIG).is_file():
        return _load_hf(root, device)
    if (root / RUN_CONFIG).is_file():
        return _load_run(root, device, weights, checkpoint)
    raise FileNotFoundError(
        f"{root}: no SEDD checkpoint here; expected {HF_CONFIG} with {' or '.join(HF_WEIGHTS)} "
        f"(Hugging Face layout) or {RUN_CONFIG} with {RUN_CHECKPOINT} (a training run)"
    )


# -- the two layouts --------------------------------------------------------------------------


def _load_hf(root: Path, device: torch.device | str) -> Pretrained:
    config_file = root / HF_CONFIG
    try:
        data = json.loads(config_file.read_text())
    except ValueError as err:
        raise ValueError(f"{config_file}: not valid JSON ({_one_line(err)})") from None
    config = SeddConfig.from_reference(data, str(config_file))
    for name in HF_WEIGHTS:
        weights_file = root / name
        if weights_file.is_file():
            break
    else:
        raise FileNotFoundError(
            f"{root}: no weights; expected {' or '.join(HF_WEIGHTS)} next to {HF_CONFIG}"
        )
    if weights_file.suffix == ".safetensors":
        try:
            state = load_file(str(weights_file))
        except (SafetensorError, OSError) as err:
            raise ValueError(
                f"{weights_file}: not a readable safetensors file, truncated or corrupt "
                f"({_one_line(err)})"
            ) from None
    else:
        state = _state_dict(_torch_load(weights_file), weights_file, "the file")
    return _build(config, state, weights_file, device)


def _load_run(
    root: Path,
    device: torch.device | str,
    weights: Literal["ema", "raw"],
    checkpoint: str | os.PathLike[str] | None,
) -> Pretrained:
    config_file = root / RUN_CONFIG
    try:
        data = yaml.safe_load(config_file.read_text())
    except yaml.YAMLError as err:
        raise ValueError(f"{config_file}: not valid YAML ({_one_line(err)})") from None
    config = SeddConfig.from_reference(data, str(config_file))
    ckpt_file = root / (checkpoint if checkpoint is not None else RUN_CHECKPOINT)
    if not ckpt_file.is_file():
        raise FileNotFoundError(f"{ckpt_file}: no such checkpoint file in the run {root}")
    ckpt = _torch_load(ckpt_file)
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        raise ValueError(f"{ckpt_file}: missing key 'model'; not a SEDD training checkpoint")
    state = _state_dict(ckpt["model"], ckpt_file, "'model'")
    return _build(config, state, ckpt_file, device, ckpt if weights == "ema" else None)


def _build(
    config: SeddConfig,
    state: dict[str, Tensor],
    weights_file: Path,
    device: torch.device | str,
    ema_checkpoint: dict[str, Any] | None = None,
) -> Pretrained:
    graph = config.graph.build()
    net = config.net.build(graph)
    _check_fits(net, state, weights_file, config)
    if "rotary_emb.inv_freq" not in state:  # deterministic; some exports drop buffers
        state = {**state, "rotary_emb.inv_freq": net.rotary_emb.inv_freq}
    net.load_state_dict(state, strict=True)
    if ema_checkpoint is not None:
        _copy_ema(net, ema_checkpoint, weights_file)
    return Pretrained(
        net=net.to(device).eval(),
        graph=graph,
        schedule=config.schedule.build(),
        config=config,
    )


def _copy_ema(net: SeddScoreNet, ckpt: dict[str, Any], ckpt_file: Path) -> None:
    """Copy the EMA's shadow parameters into `net`, matched by trainable-parameter order (the
    reference's `ExponentialMovingAverage.copy_to`)."""
    ema = ckpt.get("ema")
    if not isinstance(ema, dict) or "shadow_params" not in ema:
        raise ValueError(
            f"{ckpt_file}: missing key 'ema.shadow_params'; load the raw weights with weights='raw'"
        )
    shadow = ema["shadow_params"]
    params = [(n, p) for n, p in net.named_parameters() if p.requires_grad]
    if not isinstance(shadow, list | tuple) or len(shadow) != len(params):
        count = len(shadow) if isinstance(shadow, list | tuple) else type(shadow).__name__
        raise ValueError(
            f"{ckpt_file}: 'ema.shadow_params' has {count} entries but the network has "
            f"{len(params)} trainable parameters"
        )
    with torch.no_grad():
        for index, ((name, param), value) in enumerate(zip(params, shadow, strict=True)):
            if not isinstance(value, Tensor) or value.shape != param.shape:
                got = list(value.shape) if isinstance(value, Tensor) else type(value).__name__
                raise ValueError(
                    f"{ckpt_file}: 'ema.shadow_params'[{index}] has shape {got} but parameter "
                    f"{name!r} has {list(param.shape)}"
                )
            param.copy_(value)


def _check_fits(
    net: SeddScoreNet, state: Mapping[str, Tensor], weights_file: Path, config: SeddConfig
) -> None:
    """One line naming the tensor and the configuration keys it depends on, if `state` does
    not fit the network that `config` builds."""
    expected = {k: list(v.shape) for k, v in net.state_dict().items()}
    sizes = (
        f"tokens = {config.graph.num_tokens}, graph.type = "
        f"{'absorb' if config.graph.kind == 'absorbing' else 'uniform'}, model.hidden_size = "
        f"{config.net.dim}, model.cond_dim = {config.net.cond_dim}, model.n_blocks = "
        f"{config.net.depth}, model.n_heads = {config.net.heads}"
    )
    where = f"{weights_file} does not fit {config.source}"
    for key, shape in expected.items():
        if key not in state:
            if key == "rotary_emb.inv_freq":
                continue
            raise ValueError(f"{where}: tensor {key!r} is missing ({_blame(key, config)}; {sizes})")
        got = list(state[key].shape)
        if got != shape:
            raise ValueError(
                f"{where}: tensor {key!r} has shape {got}, the configuration's network needs "
                f"{shape} ({_blame(key, config)}; {sizes})"
            )
    for key in state:
        if key not in expected:
            raise ValueError(f"{where}: unexpected tensor {key!r} ({_blame(key, config)}; {sizes})")


def _blame(key: str, config: SeddConfig) -> str:
    """The configuration key a tensor's presence or shape depends on most directly."""
    if key.startswith(("vocab_embed.", "output_layer.linear.")):
        return "its size follows tokens and graph.type"
    if key.startswith("blocks."):
        index = key.split(".")[1]
        if index.isdigit() and int(index) >= config.net.depth:
            return "the number of blocks is model.n_blocks"
        return "its size follows model.hidden_size and model.cond_dim"
    if key.startswith("rotary_emb."):
        return "its size follows model.hidden_size / model.n_heads"
    if key.startswith("sigma_map."):
        return "its size follows model.cond_dim"
    return "its size follows model.hidden_size and model.cond_dim"


# -- reading -----------------------------------------------------------------------------------


def _torch_load(path: Path) -> Any:
    """`torch.load(weights_only=True)`: tensors and plain containers only, never pickled code."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated zip, a pickle with code, not a torch file, ...
        raise ValueError(
            f"{path}: cannot be read by torch.load(weights_only=True), truncated or not a "
            f"checkpoint of tensors ({_one_line(err)})"
        ) from None


def _state_dict(value: Any, path: Path, what: str) -> dict[str, Tensor]:
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in value.items()
    ):
        raise ValueError(f"{path}: {what} is not a state dict (names -> tensors)")
    return dict(value)


_MISSING = object()


def _get(
    config: Mapping[str, Any],
    key: str,
    source: str,
    kind: type[Any],
    default: Any = _MISSING,
) -> Any:
    """`config["a"]["b"]` for `key = "a.b"` as `kind`, or a ValueError naming source and key."""
    node: Any = config
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            if default is not _MISSING:
                return default
            raise ValueError(f"{source}: missing key {key!r} (a SEDD configuration has it)")
        node = node[part]
    if isinstance(node, str) and "${" in node:
        raise ValueError(f"{source}: {key} = {node!r} is an interpolation; give the resolved value")
    if kind is bool:
        if isinstance(node, bool):
            return node
    elif kind is int:
        if isinstance(node, int) and not isinstance(node, bool):
            return node
    elif kind is float:
        # YAML 1.1 reads "1e-4" as a string; the reference's OmegaConf reads it as a number.
        try:
            value = float(node)
        except (TypeError, ValueError):
            pass
        else:
            if not isinstance(node, bool) and math.isfinite(value):
                return value
    elif isinstance(node, kind):
        return node
    raise ValueError(f"{source}: {key} = {node!r} is not {_KIND_NAMES.get(kind, kind.__name__)}")


_KIND_NAMES = {bool: "true or false", int: "an integer", float: "a finite number", str: "a string"}


def _schedule_config(
    config: Mapping[str, Any], source: str
) -> LogLinearScheduleConfig | GeometricScheduleConfig:
    kind = _get(config, "noise.type", source, str)
    if kind == "loglinear":
        return LogLinearScheduleConfig(survival=LOGLINEAR_SURVIVAL)
    if kind == "geometric":
        low = _get(config, "noise.sigma_min", source, float)
        high = _get(config, "noise.sigma_max", source, float)
        if not 0.0 < low < high:
            raise ValueError(
                f"{source}: noise.sigma_min = {low} and noise.sigma_max = {high} must satisfy "
                "0 < sigma_min < sigma_max"
            )
        return GeometricScheduleConfig(sigma_min=low, sigma_max=high)
    raise ValueError(
        f"{source}: noise.type {kind!r} is not a SEDD noise; expected 'loglinear' or 'geometric'"
    )


def _sampling_config(
    config: Mapping[str, Any], source: str
) -> EulerSamplerConfig | AnalyticSamplerConfig:
    if not isinstance(config.get("sampling"), Mapping):
        return EulerSamplerConfig()
    predictor = _get(config, "sampling.predictor", source, str, default="euler")
    if predictor not in _PREDICTORS:
        raise ValueError(
            f"{source}: sampling.predictor {predictor!r} has no ddiff sampler; expected "
            f"one of {sorted(_PREDICTORS)}"
        )
    steps = _get(config, "sampling.steps", source, int, default=128)
    denoise = _get(config, "sampling.noise_removal", source, bool, default=True)
    # The reference's samplers stop at eps = 1e-5, ddiff's default final time.
    return _PREDICTORS[predictor](steps=steps, denoise=denoise, final_time=1e-5)


def _from_hub(repo_id: str) -> Path:
    """Download a hub repository's config and weights (optional `huggingface_hub`): the
    safetensors file, or `pytorch_model.bin` where there is none."""
    if repo_id.count("/") != 1 or repo_id.startswith((".", "/", "~")):
        raise FileNotFoundError(f"{repo_id}: no such directory")
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise FileNotFoundError(
            f"{repo_id}: no such directory; to download a hub repository install "
            "huggingface_hub (pip install 'ddiff[interop]')"
        ) from None
    try:
        config = Path(hf_hub_download(repo_id, HF_CONFIG))
    except Exception as err:  # offline and not cached, unknown repository, no access, ...
        raise FileNotFoundError(
            f"{repo_id}: not a local directory, and the hub download failed ({_one_line(err)})"
        ) from None
    errors = []
    for name in HF_WEIGHTS:
        try:
            hf_hub_download(repo_id, name)
            break
        except Exception as err:
            errors.append(f"{name}: {_one_line(err)}")
    else:
        raise FileNotFoundError(f"{repo_id}: no weights could be downloaded ({'; '.join(errors)})")
    return config.parent


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())
