"""Run configuration: YAML/JSON round trips, errors that name the key, and what build() returns."""

from __future__ import annotations

import math
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from ddiff import AbsorbingGraph, DenseGraph, UniformGraph
from ddiff.config import (
    AbsorbingGraphConfig,
    AdamWConfig,
    AnalyticSamplerConfig,
    CosineScheduleConfig,
    DenseGraphConfig,
    EulerSamplerConfig,
    FirstHittingSamplerConfig,
    GeometricScheduleConfig,
    GTRGraphConfig,
    HKY85GraphConfig,
    JC69GraphConfig,
    K80GraphConfig,
    LogLinearScheduleConfig,
    MarkovDataConfig,
    NpyDataConfig,
    ProteinGraphConfig,
    RunConfig,
    TauLeapingSamplerConfig,
    TransformerNetConfig,
    UniformGraphConfig,
)
from ddiff.nets import LogScoreParameterization, ScaledAbsorbingParameterization
from ddiff.samplers import AnalyticSampler, EulerSampler, FirstHittingSampler, TauLeapingSampler
from ddiff.schedules import CosineSchedule, GeometricSchedule, LogLinearSchedule
from ddiff.training import OptimSettings, TokenDataModule

YAML = """\
graph: {kind: absorbing, num_tokens: 4}
schedule: {kind: loglinear, survival: 0.0}
net: {kind: transformer, preset: tiny}
optim: {kind: adamw, lr: 1.0e-3, warmup_steps: 10}
train: {max_steps: 20, batch_size: 8}
data: {kind: markov, num_tokens: 4, length: 8, num_train: 64, num_val: 16}
sampling: {kind: analytic, steps: 32}
"""


def minimal(**sections: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "graph": {"kind": "uniform", "num_tokens": 4},
        "schedule": {"kind": "loglinear", "survival": 0.0},
        "train": {"max_steps": 5},
    }
    base.update(sections)
    return base


@pytest.fixture
def run_file(tmp_path: Path) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(YAML)
    return path


def test_yaml_loads_and_json_round_trips(run_file: Path, tmp_path: Path) -> None:
    cfg = RunConfig.from_yaml(run_file)
    assert cfg.graph == AbsorbingGraphConfig(num_tokens=4)
    assert cfg.sampling == AnalyticSamplerConfig(steps=32)
    assert cfg.optim.ema_decay == 0.9999  # defaults are filled in
    saved = cfg.save_json(tmp_path / "out" / "config.json")
    assert RunConfig.from_json(saved) == cfg
    assert '"kind": "absorbing"' in saved.read_text()
    assert not list(saved.parent.glob(".*tmp*"))


@pytest.mark.parametrize(
    ("original", "typo", "location"),
    [
        ("num_tokens: 4}\nschedule", "num_tokns: 4}\nschedule", "graph.absorbing.num_tokns"),
        ("batch_size: 8", "batch_sise: 8", "train.batch_sise"),
        ("steps: 32", "step: 32", "sampling.analytic.step"),
        ("lr: 1.0e-3", "learning_rate: 1.0e-3", "optim.adamw.learning_rate"),
    ],
)
def test_a_typo_is_an_error_that_names_the_key_and_the_file(
    tmp_path: Path, original: str, typo: str, location: str
) -> None:
    path = tmp_path / "typo.yaml"
    path.write_text(YAML.replace(original, typo, 1))
    with pytest.raises(ValidationError) as info:
        RunConfig.from_yaml(path)
    message = str(info.value)
    assert f"{location}\n  Extra inputs are not permitted" in message
    assert str(path) in message


def test_unknown_top_level_section_and_unknown_kind(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="grpah"):
        RunConfig.model_validate({**minimal(), "grpah": {}})
    with pytest.raises(ValidationError, match="'absorbing'"):  # lists the valid kinds
        RunConfig.model_validate(minimal(graph={"kind": "absorbin", "num_tokens": 4}))


def test_yaml_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("graph: {kind: [\n")
    with pytest.raises(ValueError, match=r"bad\.yaml"):
        RunConfig.from_yaml(bad)
    bad.write_text("- just a list\n")
    with pytest.raises(ValueError, match="mapping"):
        RunConfig.from_yaml(bad)


def test_overrides_use_dotted_keys_and_are_validated(run_file: Path) -> None:
    cfg = RunConfig.from_yaml(run_file, {"train.max_steps": 99, "optim.lr": 0.01})
    assert cfg.train.max_steps == 99 and cfg.optim.lr == 0.01
    with pytest.raises(ValidationError, match="max_stesp"):
        RunConfig.from_yaml(run_file, {"train.max_stesp": 99})


@pytest.mark.parametrize(
    ("config", "cls", "num_states"),
    [
        (UniformGraphConfig(num_tokens=7), UniformGraph, 7),
        (AbsorbingGraphConfig(num_tokens=7), AbsorbingGraph, 8),
        (DenseGraphConfig(rate_matrix=[[-1.0, 2.0], [1.0, -2.0]], labels="ab"), DenseGraph, 2),
        (JC69GraphConfig(), DenseGraph, 4),
        (K80GraphConfig(kappa=3.0), DenseGraph, 4),
        (HKY85GraphConfig(freqs=(0.1, 0.2, 0.3, 0.4)), DenseGraph, 4),
        (GTRGraphConfig(exchangeabilities=(1, 2, 1, 1, 2, 1)), DenseGraph, 4),
        (ProteinGraphConfig(), DenseGraph, 20),
    ],
)
def test_graph_configs_build_graphs(config: Any, cls: type, num_states: int) -> None:
    graph = config.build()
    assert type(graph) is cls and graph.num_states == num_states
    assert RunConfig.model_validate(minimal(graph=config.model_dump())).graph == config


def test_invalid_dense_matrix_is_a_validation_error() -> None:
    with pytest.raises(ValidationError, match="column 0"):
        DenseGraphConfig(rate_matrix=[[-1.0, 1.0], [0.5, -1.0]])
    with pytest.raises(ValidationError, match="freqs"):
        HKY85GraphConfig(freqs=(0.5, 0.5, 0.5, 0.5))


@pytest.mark.parametrize(
    ("config", "cls"),
    [
        (LogLinearScheduleConfig(survival=0.0), LogLinearSchedule),
        (GeometricScheduleConfig(sigma_min=1e-3, sigma_max=10.0), GeometricSchedule),
        (CosineScheduleConfig(survival=1e-3), CosineSchedule),
    ],
)
def test_schedule_configs_build_schedules(config: Any, cls: type) -> None:
    assert type(config.build()) is cls


def test_geometric_schedule_needs_ordered_levels() -> None:
    with pytest.raises(ValidationError, match="sigma_min < sigma_max"):
        GeometricScheduleConfig(sigma_min=2.0, sigma_max=1.0)


def test_auto_parameterization_follows_the_graph() -> None:
    net_cfg = TransformerNetConfig(preset="tiny", dim=32, cond_dim=16)
    absorbing = net_cfg.build(AbsorbingGraph(4))
    assert isinstance(absorbing.parameterization, ScaledAbsorbingParameterization)
    assert absorbing.dim == 32 and absorbing.depth == 2 and absorbing.num_states == 5
    uniform = net_cfg.build(UniformGraph(4))
    assert isinstance(uniform.parameterization, LogScoreParameterization)
    plain = TransformerNetConfig(depth=1, parameterization="log_score").build(AbsorbingGraph(4))
    assert isinstance(plain.parameterization, LogScoreParameterization)
    assert plain.dim == 256  # the constructor's default without a preset


def test_cross_field_checks_say_what_to_fix() -> None:
    with pytest.raises(ValidationError, match="scaled_absorbing"):
        RunConfig.model_validate(
            minimal(net={"kind": "transformer", "parameterization": "scaled_absorbing"})
        )
    with pytest.raises(ValidationError, match="survival: 0"):
        RunConfig.model_validate(
            minimal(graph={"kind": "absorbing", "num_tokens": 4}, schedule={"kind": "loglinear"})
        )
    with pytest.raises(ValidationError, match=r"data\.num_tokens = 5"):
        RunConfig.model_validate(minimal(data={"kind": "markov", "num_tokens": 5, "length": 4}))


@pytest.mark.parametrize(
    ("config", "cls"),
    [
        (EulerSamplerConfig(), EulerSampler),
        (TauLeapingSamplerConfig(final_time=1e-3), TauLeapingSampler),
        (AnalyticSamplerConfig(categorical_dtype="float32", denoise=False), AnalyticSampler),
    ],
)
def test_sampler_configs_build_samplers(config: Any, cls: type) -> None:
    sampler = config.build(UniformGraph(4), LogLinearSchedule())
    assert type(sampler) is cls
    assert sampler.final_time == config.final_time and sampler.denoise == config.denoise
    assert sampler.categorical_dtype == getattr(torch, config.categorical_dtype)


def test_first_hitting_config_builds_the_sampler_and_has_no_steps() -> None:
    config = FirstHittingSamplerConfig(top_p=0.9, tokens_per_call=2)
    sampler = config.build(AbsorbingGraph(4), LogLinearSchedule())
    assert type(sampler) is FirstHittingSampler and config.steps is None
    assert (sampler.top_p, sampler.tokens_per_call, sampler.order) == (0.9, 2, "random")
    with pytest.raises(ValueError, match=r"first_hitting needs graph\.kind absorbing"):
        config.build(UniformGraph(4), LogLinearSchedule())
    with pytest.raises(ValidationError, match=r"first_hitting needs graph\.kind absorbing"):
        RunConfig.model_validate(minimal(sampling={"kind": "first_hitting"}))
    cfg = RunConfig.model_validate(
        minimal(graph={"kind": "absorbing", "num_tokens": 4}, sampling={"kind": "first_hitting"})
    )
    assert cfg.sampling == FirstHittingSamplerConfig()
    assert "steps" not in cfg.sampling.model_dump()


def test_switching_a_grid_section_to_first_hitting() -> None:
    """A recipe's `--sampler first_hitting` keeps the section's other keys: grid keys at their
    defaults are dropped silently, chosen ones with a warning naming them."""
    grid = EulerSamplerConfig().model_dump()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        config = FirstHittingSamplerConfig.model_validate({**grid, "kind": "first_hitting"})
    assert config == FirstHittingSamplerConfig()
    with pytest.warns(UserWarning, match=r"no time grid: \{'steps': 32\} not used"):
        FirstHittingSamplerConfig.model_validate({**grid, "kind": "first_hitting", "steps": 32})
    with pytest.raises(ValidationError, match="tokens_per_call"):
        FirstHittingSamplerConfig(tokens_per_call=0)


def test_switching_a_first_hitting_section_to_a_grid_kind() -> None:
    """`--sampler euler` on the DNA recipe's first-hitting section: first-hitting's controls at
    their defaults are dropped silently, chosen ones with a warning naming them."""
    events = FirstHittingSamplerConfig().model_dump()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        config = TauLeapingSamplerConfig.model_validate({**events, "kind": "tau_leaping"})
    assert config == TauLeapingSamplerConfig()
    with pytest.warns(UserWarning, match=r"first-hitting sampler's controls: \{'top_p': 0.9\}"):
        EulerSamplerConfig.model_validate({**events, "kind": "euler", "top_p": 0.9})


def test_optim_config_builds_settings() -> None:
    settings = AdamWConfig(lr=1e-3, warmup_steps=7, grad_clip=None, ema_decay=None).build()
    assert settings == OptimSettings(lr=1e-3, warmup_steps=7, grad_clip=None, ema_decay=None)


def test_markov_data_builds_a_datamodule() -> None:
    dm = MarkovDataConfig(num_tokens=4, length=6, num_train=32, num_val=8).build(batch_size=4)
    assert isinstance(dm, TokenDataModule)
    dm.setup("fit")
    assert dm.train_data is not None and len(dm.train_data) == 32
    assert dm.val_data is not None and dm.val_data.length == 6
    assert math.isclose(
        MarkovDataConfig(num_tokens=4, length=6).source().entropy(),
        MarkovDataConfig(num_tokens=4, length=6, num_train=7).source().entropy(),
    )


def test_npy_data_paths_are_relative_to_the_yaml_file(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    np.save(data_dir / "windows.npy", np.random.default_rng(0).integers(0, 4, (40, 6)))
    np.save(data_dir / "stream.npy", np.arange(50) % 4)
    tokens = np.array([0, 1, 2, 3, 0, 1], dtype=np.int32)
    np.savez(data_dir / "ragged.npz", tokens=tokens, offsets=np.array([0, 2, 6]))
    run = tmp_path / "conf" / "run.yaml"
    run.parent.mkdir()
    text = YAML.replace(
        "data: {kind: markov, num_tokens: 4, length: 8, num_train: 64, num_val: 16}",
        "data: {kind: npy, train: ../data/windows.npy, val: ../data/stream.npy, window: 6}",
    )
    run.write_text(text)
    cfg = RunConfig.from_yaml(run)
    assert isinstance(cfg.data, NpyDataConfig) and cfg.data.train == data_dir / "windows.npy"
    dm = cfg.data.build(batch_size=4)
    dm.setup("fit")
    assert dm.train_data is not None and dm.train_data.length == 6
    assert dm.val_data is not None and len(dm.val_data) == 8  # 50 // 6 windows
    ragged = NpyDataConfig(train=data_dir / "ragged.npz", length=5, pad_token=3).build(batch_size=1)
    ragged.setup("fit")
    assert ragged.train_data is not None
    assert ragged.train_data.lengths.tolist() == [2, 4]
    assert ragged.train_data.batch(torch.tensor([0])).tokens.tolist() == [[0, 1, 3, 3, 3]]


def test_npy_data_never_unpickles(tmp_path: Path) -> None:
    path = tmp_path / "objects.npy"
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="pickle"):
        NpyDataConfig(train=path).build(batch_size=1)


OLD_KEYS = """\
graph: {kind: absorbing, num_tokens: 4}
schedule: {kind: cosine, eps: 0.0}
optim: {kind: adamw, eps: 1.0e-7}
train: {max_steps: 20}
sampling: {kind: tau_leaping, eps: 1.0e-4}
"""


def test_old_eps_keys_still_load_with_a_warning_naming_file_section_and_keys(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.yaml"
    path.write_text(OLD_KEYS)
    with pytest.warns(FutureWarning) as caught:
        cfg = RunConfig.from_yaml(path)
    messages = sorted(str(w.message) for w in caught)
    assert messages == [
        f"{path}: optim.eps is deprecated, use optim.adam_eps (the same value)",
        f"{path}: sampling.eps is deprecated, use sampling.final_time (the same value)",
        f"{path}: schedule.eps is deprecated, use schedule.survival (the same value)",
    ]
    assert cfg.schedule == CosineScheduleConfig(survival=0.0)
    assert cfg.optim.adam_eps == 1e-7 and cfg.optim.build().adam_eps == 1e-7
    assert cfg.sampling == TauLeapingSamplerConfig(final_time=1e-4)
    assert '"eps"' not in cfg.to_json()  # saved with the new names
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new names load without a warning
        assert RunConfig.from_json(cfg.save_json(tmp_path / "config.json")) == cfg


def test_an_old_config_json_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(
        '{"graph": {"kind": "uniform", "num_tokens": 4}, "schedule": {"kind": "loglinear", '
        '"eps": 0.001}, "train": {"max_steps": 5}}'
    )
    with pytest.warns(FutureWarning, match=re.escape(f"{path}: schedule.eps is deprecated")):
        assert RunConfig.from_json(path).schedule == LogLinearScheduleConfig(survival=1e-3)


def test_old_and_new_key_together_is_an_error() -> None:
    with pytest.raises(ValidationError, match=r"sampling\.eps is the old name of final_time"):
        EulerSamplerConfig.model_validate({"eps": 1e-3, "final_time": 1e-3})


def test_old_keyword_of_optim_settings_is_deprecated() -> None:
    with pytest.warns(DeprecationWarning, match="adam_eps"):
        settings = OptimSettings(eps=1e-6)
    assert settings == OptimSettings(adam_eps=1e-6)


def test_conv_net_config_builds_the_convolutional_backbone() -> None:
    from ddiff.nets import ConvScoreNet, LogScoreParameterization, ScaledAbsorbingParameterization

    config = RunConfig.model_validate(
        {
            "graph": {"kind": "absorbing", "num_tokens": 4},
            "schedule": {"kind": "loglinear", "survival": 0.0},
            "net": {"kind": "conv", "max_length": 150, "dim": 32, "depth": 3},
            "train": {"max_steps": 1},
        }
    )
    net = config.net.build(config.graph.build())
    assert isinstance(net, ConvScoreNet) and (net.max_length, net.dim, net.depth) == (150, 32, 3)
    assert isinstance(net.parameterization, ScaledAbsorbingParameterization)
    uniform = config.model_copy(update={"graph": UniformGraphConfig(num_tokens=4)})
    assert isinstance(
        uniform.net.build(uniform.graph.build()).parameterization, LogScoreParameterization
    )
    with pytest.raises(ValidationError, match=r"net\.conv\.kernel_sizes"):
        RunConfig.model_validate(
            {**config.model_dump(), "net": {"kind": "conv", "kernel_sizes": 3}}
        )


def test_conv_net_config_labels_and_positions() -> None:
    from ddiff.nets import ConvScoreNet

    base = {
        "graph": {"kind": "absorbing", "num_tokens": 4},
        "schedule": {"kind": "loglinear", "survival": 0.0},
        "train": {"max_steps": 1},
    }
    net_cfg = {"kind": "conv", "max_length": 16, "dim": 8, "depth": 1, "cond_dim": 8}
    plain = RunConfig.model_validate({**base, "net": net_cfg})
    assert (plain.net.num_labels, plain.net.labels) == (0, None)
    assert plain.net.build(plain.graph.build()).num_labels == 0
    config = RunConfig.model_validate(
        {**base, "net": {**net_cfg, "labels": ["promoter", "gene"], "positions": False}}
    )
    net = config.net.build(config.graph.build())
    assert isinstance(net, ConvScoreNet) and net.num_labels == config.net.num_labels == 2
    assert net.position is None
    with pytest.raises(ValidationError, match="names each label once"):
        RunConfig.model_validate({**base, "net": {**net_cfg, "labels": ["a", "a"]}})


def test_transformer_with_learned_positions_from_config() -> None:
    config = RunConfig.model_validate(
        {
            "graph": {"kind": "absorbing", "num_tokens": 4},
            "schedule": {"kind": "loglinear", "survival": 0.0},
            "net": {"kind": "transformer", "preset": "tiny", "max_length": 150},
            "train": {"max_steps": 1},
        }
    )
    net = config.net.build(config.graph.build())
    assert net.max_length == 150 and net.position.num_embeddings == 150
    plain = config.model_copy(update={"net": config.net.model_copy(update={"max_length": None})})
    assert plain.net.build(plain.graph.build()).position is None


def test_time_agnostic_transformer_from_config() -> None:
    config = RunConfig.model_validate(
        {
            "graph": {"kind": "absorbing", "num_tokens": 4},
            "schedule": {"kind": "loglinear", "survival": 0.0},
            "net": {"kind": "transformer", "preset": "tiny", "time_conditioning": False},
            "train": {"max_steps": 1},
        }
    )
    net = config.net.build(config.graph.build())
    assert net.time_conditioning is False and net.sigma_embedding is None
    default = config.model_copy(update={"net": TransformerNetConfig(preset="tiny")})
    assert default.net.build(default.graph.build()).time_conditioning is True
