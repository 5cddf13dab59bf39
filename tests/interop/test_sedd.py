"""`load_sedd`: both layouts of the reference, against outputs the reference computed; the
schedules and graphs against its formulas; clear errors; ddiff's tools on a loaded model."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import save_file

from ddiff import (
    AbsorbingGraph,
    AnalyticSampler,
    EulerSampler,
    GeometricSchedule,
    LogLinearSchedule,
    TauLeapingSampler,
    UniformGraph,
)
from ddiff.conditioning import Condition
from ddiff.eval import bits_per_token
from ddiff.interop import SeddConfig, SeddScoreNet, is_sedd_checkpoint, load_sedd, sedd_schedule
from ddiff.pretrained import Pretrained
from tests.interop import _fixtures as fx

TOLERANCE = 1e-5


def max_diff(model: Pretrained, name: str, key: str = "output") -> float:
    tokens, sigma = fx.inputs(name)
    with torch.no_grad():
        return float((model.net(tokens, sigma) - fx.output(name, key)).abs().max())


# -- the Hugging Face layout --------------------------------------------------------------------


@pytest.mark.parametrize("name", fx.HF_CASES)
@pytest.mark.parametrize("file", ["model.safetensors", "pytorch_model.bin"])
def test_hf_layout_equals_the_reference(tmp_path: Path, name: str, file: str) -> None:
    model = load_sedd(fx.build_hf(tmp_path, name, file=file))
    assert isinstance(model.net, SeddScoreNet) and not model.net.training
    assert max_diff(model, name) < TOLERANCE
    reference = fx.case(name)["config_json"]
    assert isinstance(model.config, SeddConfig) and model.config.reference == reference
    assert model.config.source == str(tmp_path / "config.json")


def test_hf_layout_is_what_the_reference_writes() -> None:
    # make_vectors.py saved each case with the reference's SEDD.save_pretrained.
    for name in fx.HF_CASES:
        assert {"config.json", "model.safetensors"} <= set(fx.case(name)["hf_files"])


def test_graphs_and_schedules_of_each_case(tmp_path: Path) -> None:
    scaled = load_sedd(fx.build_hf(tmp_path / "a", "absorb_loglinear_scaled"))
    assert isinstance(scaled.graph, AbsorbingGraph) and scaled.graph.num_tokens == 7
    assert scaled.graph.mask_token == 7  # the reference's MASK: the last of tokens + 1 states
    assert isinstance(scaled.schedule, LogLinearSchedule) and scaled.schedule.survival == 1e-3
    uniform = load_sedd(fx.build_hf(tmp_path / "u", "uniform_geometric"))
    assert isinstance(uniform.graph, UniformGraph) and uniform.graph.num_states == 8
    assert isinstance(uniform.schedule, GeometricSchedule)
    assert (uniform.schedule.sigma_min, uniform.schedule.sigma_max) == (1e-4, 20.0)
    sampler = uniform.sampler()
    assert isinstance(sampler, EulerSampler) and uniform.config.sampling.steps == 128


# -- the run directory --------------------------------------------------------------------------


def test_run_directory_uses_the_ema_weights(tmp_path: Path) -> None:
    run = fx.build_run(tmp_path / "run")
    c = fx.case(fx.RUN_CASE)
    ckpt = torch.load(run / "checkpoints-meta" / "checkpoint.pth", weights_only=True)
    # The fixture has the structure of the reference's own checkpoint.pth.
    assert sorted(ckpt) == c["checkpoint_keys"] and sorted(ckpt["ema"]) == c["ema_keys"]
    ema = load_sedd(run)
    assert max_diff(ema, fx.RUN_CASE) < TOLERANCE
    raw = load_sedd(run, weights="raw")
    assert max_diff(raw, fx.RUN_CASE, "output_raw_weights") < TOLERANCE
    # The raw weights give other outputs: the EMA weights are the ones used.
    assert max_diff(raw, fx.RUN_CASE) > 0.1
    assert isinstance(ema.schedule, LogLinearSchedule) and ema.config.net.scale_by_sigma


def test_ema_list_in_another_order_is_caught_or_changes_the_output(tmp_path: Path) -> None:
    # Reversing the order puts tensors of other shapes in place: a clear error.
    c = fx.case(fx.RUN_CASE)
    raw, shadow = fx.weights(c["weights"]), fx.weights(c["ema_weights"])
    order = list(reversed(fx.vectors()["parameter_order"]))
    run = fx.build_run(tmp_path / "run", fx.checkpoint(raw, shadow, order))
    with pytest.raises(ValueError, match=r"'ema.shadow_params'\[0\] has shape .* parameter "):
        load_sedd(run)


def test_another_checkpoint_of_the_run(tmp_path: Path) -> None:
    run = fx.build_run(tmp_path / "run")
    (run / "checkpoints").mkdir()
    shutil.move(run / "checkpoints-meta" / "checkpoint.pth", run / "checkpoints" / "c_7.pth")
    with pytest.raises(FileNotFoundError, match=r"checkpoint.pth: no such checkpoint file"):
        load_sedd(run)
    assert max_diff(load_sedd(run, checkpoint="checkpoints/c_7.pth"), fx.RUN_CASE) < TOLERANCE


def test_yaml_numbers_in_exponent_notation(tmp_path: Path) -> None:
    # PyYAML reads `1e-4` as a string; a hand-written config.yaml may hold one.
    run = fx.build_run(tmp_path / "run")
    config = yaml.safe_load((run / ".hydra" / "config.yaml").read_text())
    config["noise"] = {"type": "geometric", "sigma_min": "1e-4", "sigma_max": 20}
    config["graph"]["type"], config["model"]["scale_by_sigma"] = "uniform", False
    config["tokens"] = 8  # 8 states, as absorbing with 7 tokens: the weights fit
    (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    model = load_sedd(run)
    assert isinstance(model.schedule, GeometricSchedule) and model.schedule.sigma_min == 1e-4


# -- the reference's noise and graphs -----------------------------------------------------------


@pytest.mark.parametrize("kind", ["loglinear", "geometric"])
def test_schedules_equal_the_reference_formulas(kind: str) -> None:
    noise = fx.vectors()["noise"]
    t = torch.tensor(noise["t"], dtype=torch.float64)
    section = {"type": kind, "sigma_min": 1e-4, "sigma_max": 20}
    schedule = sedd_schedule(section)
    total, rate = schedule.total(t), schedule.rate(t)
    expected_total = torch.tensor(noise[kind]["total"], dtype=torch.float64)
    expected_rate = torch.tensor(noise[kind]["rate"], dtype=torch.float64)
    assert torch.allclose(total, expected_total, rtol=1e-12, atol=0)
    assert torch.allclose(rate, expected_rate, rtol=1e-12, atol=0)
    # The formulas of the reference's noise_lib.py, written out.
    if kind == "loglinear":
        assert torch.allclose(total, -torch.log1p(-(1 - 1e-3) * t), rtol=1e-14)
    else:
        assert torch.allclose(total, 1e-4 ** (1 - t) * 20.0**t, rtol=1e-12)


@pytest.mark.parametrize("kind", ["absorb", "uniform"])
def test_graphs_follow_the_reference_conventions(kind: str) -> None:
    g = fx.vectors()["graphs"][kind]
    graph = AbsorbingGraph(g["tokens"]) if kind == "absorb" else UniformGraph(g["tokens"])
    states = torch.arange(graph.num_states)
    f64 = torch.float64

    def ref(key: str) -> torch.Tensor:
        return torch.tensor(g[key], dtype=f64)

    # The reference's rate(i) is column i of Q, transp_rate(i) row i: ddiff's column convention.
    assert torch.allclose(graph.rates_out(states, dtype=f64), ref("rate"))
    assert torch.allclose(graph.rates_in(states, dtype=f64), ref("transp_rate"))
    assert torch.allclose(graph.rate_matrix().to(f64).T, ref("rate"))
    sigma = torch.full((graph.num_states,), g["sigma"], dtype=f64)
    assert torch.allclose(graph.transition_in(states, sigma).to(f64), ref("transp_transition"))
    if kind == "uniform":
        assert torch.allclose(graph.transition(states, sigma).to(f64), ref("transition"))
    staggered = graph.staggered_score(ref("score")[:, None, :], sigma)[:, 0]
    assert torch.allclose(staggered.to(f64), ref("staggered_score"), rtol=1e-10, atol=1e-12)


# -- errors -------------------------------------------------------------------------------------


def edited(name: str, key: str, value: object) -> dict[str, object]:
    config = json.loads(json.dumps(fx.case(name)["config_json"]))
    *path, last = key.split(".")
    node = config
    for part in path:
        node = node[part]
    if value is None:
        del node[last]
    else:
        node[last] = value
    return config


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("graph.type", "blocky", r"graph.type 'blocky' is not a SEDD graph; expected 'absorb' or"),
        ("noise.type", "cosine", r"noise.type 'cosine' is not a SEDD noise; expected 'loglinear'"),
        ("model.hidden_size", None, r"missing key 'model.hidden_size'"),
        ("tokens", "many", r"tokens = 'many' is not an integer"),
        (
            "model.hidden_size",
            64,
            r"model.safetensors does not fit .*config.json: tensor 'vocab_embed.embedding' has "
            r"shape \[8, 32\], the configuration's network needs \[8, 64\] .*hidden_size = 64",
        ),
        ("tokens", 9, r"tensor 'vocab_embed.embedding' has shape \[8, 32\].*needs \[10, 32\]"),
        ("model.n_blocks", 3, r"tensor 'blocks.2.norm1.weight' is missing .*model.n_blocks"),
        ("model.n_blocks", 1, r"unexpected tensor 'blocks.1\..*model.n_blocks = 1"),
        ("model.scale_by_sigma", "yes", r"model.scale_by_sigma = 'yes' is not true or false"),
        ("sampling.predictor", "gibbs", r"sampling.predictor 'gibbs' has no ddiff sampler"),
    ],
)
def test_config_errors_name_the_file_and_the_key(
    tmp_path: Path, key: str, value: object, message: str
) -> None:
    config = edited("absorb_loglinear_scaled", key, value)
    directory = fx.build_hf(tmp_path, "absorb_loglinear_scaled", config=config)
    with pytest.raises(ValueError, match=message) as info:
        load_sedd(directory)
    text = str(info.value)
    assert "\n" not in text and str(tmp_path / "config.json") in text


def test_a_ddiff_directory_is_pointed_to_load_pretrained(tmp_path: Path) -> None:
    config = {"graph": {"kind": "absorbing", "num_tokens": 7}, "net": {"kind": "transformer"}}
    directory = fx.build_hf(tmp_path, "absorb_loglinear_scaled", config=config)
    with pytest.raises(ValueError, match=r"config.json: a ddiff configuration .*load_pretrained"):
        load_sedd(directory)


def test_rotary_buffer_may_be_left_out(tmp_path: Path) -> None:
    # It is a function of the sizes; an export that drops buffers still loads exactly.
    directory = fx.build_hf(tmp_path, "absorb_loglinear_scaled")
    state = fx.weights("weights_a.safetensors")
    del state["rotary_emb.inv_freq"]
    save_file(state, str(directory / "model.safetensors"))
    assert max_diff(load_sedd(directory), "absorb_loglinear_scaled") < TOLERANCE


def test_scale_by_sigma_with_a_uniform_graph(tmp_path: Path) -> None:
    config = edited("uniform_geometric", "model.scale_by_sigma", True)
    directory = fx.build_hf(tmp_path, "uniform_geometric", config=config)
    with pytest.raises(ValueError, match=r"config.json: model.scale_by_sigma is true but graph"):
        load_sedd(directory)


@pytest.mark.parametrize("file", ["model.safetensors", "pytorch_model.bin"])
def test_truncated_weights(tmp_path: Path, file: str) -> None:
    directory = fx.build_hf(tmp_path, "uniform_geometric", file=file)
    data = (directory / file).read_bytes()
    (directory / file).write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=rf"{file}: .*truncated") as info:
        load_sedd(directory)
    assert "\n" not in str(info.value)


def test_truncated_run_checkpoint(tmp_path: Path) -> None:
    run = fx.build_run(tmp_path / "run")
    path = run / "checkpoints-meta" / "checkpoint.pth"
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(ValueError, match=r"checkpoint.pth: cannot be read by torch.load"):
        load_sedd(run)


def test_pickled_code_is_refused(tmp_path: Path) -> None:
    # weights_only=True: a checkpoint that would run code when unpickled is not loaded.
    directory = fx.build_hf(tmp_path, "uniform_geometric", file="pytorch_model.bin")
    torch.save({"evil": Evil()}, directory / "pytorch_model.bin")
    with pytest.raises(ValueError, match=r"weights_only=True"):
        load_sedd(directory)
    assert not (tmp_path / "pwned").exists()


class Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("pwned",))


def test_missing_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"no SEDD checkpoint here; expected config\.json"):
        load_sedd(tmp_path)
    directory = fx.build_hf(tmp_path / "hf", "uniform_geometric")
    (directory / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match=r"no weights; expected model\.safetensors or py"):
        load_sedd(directory)
    run = fx.build_run(tmp_path / "run")
    (run / "checkpoints-meta" / "checkpoint.pth").unlink()
    with pytest.raises(FileNotFoundError, match=r"checkpoint\.pth: no such checkpoint file"):
        load_sedd(run)


def test_checkpoint_without_ema(tmp_path: Path) -> None:
    c = fx.case(fx.RUN_CASE)
    ckpt = fx.checkpoint(fx.weights(c["weights"]), fx.weights(c["ema_weights"]))
    del ckpt["ema"]
    run = fx.build_run(tmp_path / "run", ckpt)
    with pytest.raises(ValueError, match=r"missing key 'ema.shadow_params'; .*weights='raw'"):
        load_sedd(run)
    assert max_diff(load_sedd(run, weights="raw"), fx.RUN_CASE, "output_raw_weights") < TOLERANCE
    ckpt["ema"] = {"shadow_params": []}
    with pytest.raises(ValueError, match=r"has 0 entries but the network has 30 trainable"):
        load_sedd(fx.build_run(tmp_path / "run2", ckpt))


def test_is_sedd_checkpoint(tmp_path: Path) -> None:
    assert is_sedd_checkpoint(fx.build_hf(tmp_path / "hf", "uniform_geometric"))
    assert is_sedd_checkpoint(fx.build_run(tmp_path / "run"))
    (tmp_path / "ddiff").mkdir()
    (tmp_path / "ddiff" / "config.json").write_text(json.dumps({"graph": {}, "net": {}}))
    assert not is_sedd_checkpoint(tmp_path / "ddiff")  # ddiff's save_pretrained
    assert not is_sedd_checkpoint(tmp_path / "nothing")


# -- the hub (offline: the download is replaced by a copy from a local folder) ---------------


def test_hub_repository_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hub = pytest.importorskip("huggingface_hub")
    source = fx.build_hf(tmp_path / "repo", "absorb_loglinear_unscaled")
    cache = tmp_path / "cache" / "snapshots" / "abc"
    calls: list[tuple[str, str]] = []

    def fake_download(repo_id: str, filename: str, **kwargs: object) -> str:
        calls.append((repo_id, filename))
        if not (source / filename).is_file():
            raise FileNotFoundError(f"404 {filename}")
        cache.mkdir(parents=True, exist_ok=True)
        shutil.copy(source / filename, cache / filename)
        return str(cache / filename)

    monkeypatch.setattr(hub, "hf_hub_download", fake_download)
    model = load_sedd("someone/sedd-tiny")
    assert max_diff(model, "absorb_loglinear_unscaled") < TOLERANCE
    assert calls == [
        ("someone/sedd-tiny", "config.json"),
        ("someone/sedd-tiny", "model.safetensors"),
    ]

    def offline(repo_id: str, filename: str, **kwargs: object) -> str:
        raise OSError("offline and not in the cache")

    monkeypatch.setattr(hub, "hf_hub_download", offline)
    with pytest.raises(FileNotFoundError, match="someone/other: not a local directory, and the"):
        load_sedd("someone/other")
    with pytest.raises(FileNotFoundError, match="no/such/dir: no such directory"):
        load_sedd("no/such/dir")


# -- ddiff's tools on a loaded model ------------------------------------------------------------


@pytest.fixture(scope="module")
def absorbing(tmp_path_factory: pytest.TempPathFactory) -> Pretrained:
    return load_sedd(fx.build_hf(tmp_path_factory.mktemp("hf"), "absorb_loglinear_scaled"))


@pytest.mark.parametrize("sampler_class", [EulerSampler, TauLeapingSampler, AnalyticSampler])
def test_samplers_and_infill_on_a_loaded_model(
    absorbing: Pretrained, sampler_class: type[EulerSampler]
) -> None:
    sampler = sampler_class(absorbing.graph, absorbing.schedule)
    generator = torch.Generator().manual_seed(0)
    x = sampler.sample(absorbing.net, batch=4, length=9, steps=16, generator=generator)
    assert x.shape == (4, 9) and bool((x < 7).all())  # data tokens only, no MASK left
    condition = Condition.prefix([1, 2]) | Condition.at({6: 5})
    y = sampler.sample(
        absorbing.net, batch=4, length=9, steps=16, condition=condition, generator=generator
    )
    assert (y[:, :2] == torch.tensor([1, 2])).all() and (y[:, 6] == 5).all()
    assert bool((y < 7).all())


@pytest.mark.parametrize("sampler_class", [EulerSampler, TauLeapingSampler, AnalyticSampler])
def test_samplers_on_a_loaded_uniform_model(
    tmp_path: Path, sampler_class: type[EulerSampler]
) -> None:
    model = load_sedd(fx.build_hf(tmp_path, "uniform_geometric"))
    sampler = sampler_class(model.graph, model.schedule)
    generator = torch.Generator().manual_seed(0)
    condition = Condition.at({0: 3, 8: 4})
    y = sampler.sample(
        model.net, batch=3, length=9, steps=8, condition=condition, generator=generator
    )
    assert y.shape == (3, 9) and (y[:, 0] == 3).all() and (y[:, 8] == 4).all()


def test_bound_on_a_loaded_model(absorbing: Pretrained, tmp_path: Path) -> None:
    x = torch.randint(7, (6, 9), generator=torch.Generator().manual_seed(1))
    # The reference's schedule leaves 1e-3 of the tokens unmasked at t = 1, which the all-MASK
    # limit gives probability 0: the bound's prior term is infinite.
    assert math.isinf(bits_per_token(absorbing, x, num_t=2).bits_per_token)
    # Integrating to the limit (survival 0) gives a finite bound; random weights: above log2(7).
    reaching = (absorbing.net, absorbing.graph, LogLinearSchedule(survival=0.0))
    estimate = bits_per_token(reaching, x, num_t=8, seed=0)
    assert math.isfinite(estimate.bits_per_token) and estimate.bits_per_token > math.log2(7)
    # A uniform graph with geometric noise has a finite prior term as it is.
    uniform = load_sedd(fx.build_hf(tmp_path, "uniform_geometric"))
    assert math.isfinite(bits_per_token(uniform, torch.randint(8, (4, 9)), num_t=4).bits_per_token)


def test_config_is_plain_data(absorbing: Pretrained) -> None:
    # The record of what was read round-trips through JSON: no objects from the checkpoint.
    config = absorbing.config
    assert isinstance(config, SeddConfig)
    assert SeddConfig.model_validate_json(config.model_dump_json()) == config
