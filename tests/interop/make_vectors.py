"""Write the SEDD test vectors in `tests/interop/data/` from the reference code itself.

The reference is Lou, Meng & Ermon's code for *Discrete Diffusion Modeling by Estimating the
Ratios of the Data Distribution* (ICML 2024), github.com/louaaron/Score-Entropy-Discrete-Diffusion.
Nothing of it is copied into ddiff or into this repository: this script imports it from a local
checkout, runs it on the CPU with small random weights and writes what it computed.

    python tests/interop/make_vectors.py --reference /path/to/Score-Entropy-Discrete-Diffusion

Needs, in the same environment as ddiff: `einops` and `omegaconf` (the reference imports them;
`pip install einops omegaconf`) and `huggingface_hub` (its `PyTorchModelHubMixin` writes the
Hugging Face layout). Not needed: flash-attn and CUDA. The reference calls
`flash_attn_varlen_qkvpacked_func(qkv, cu_seqlens, max_seqlen, 0.0, causal=False)`; this script
puts a module of that name in `sys.modules` that computes the same thing, exact softmax attention
$\\mathrm{softmax}(q k^\\top / \\sqrt{d})\\, v$ within each sequence of the packed batch, in
float32. (Its rotary helper tries `flash_attn.layers.rotary` and falls back to its own torch code
when that import fails, which it does here.) The reference's bfloat16 autocast is a CUDA
autocast and is off on the CPU, so everything runs in float32.

What it writes (about 180 KB):

- `weights_a.safetensors`, `weights_b.safetensors`: two random state dicts of one small network
  (hidden 32, 4 heads, conditioning 16, 2 blocks, 8 input states). Every value is a float16
  number, stored as float16 and used in float32, so the files are half the size and exact.
  The absorbing cases use 7 data tokens (+ MASK = 8 states), the uniform case 8 tokens: the same
  shapes, so the same weights serve every case.
- `cases.json`: for each case the reference configuration (`config.json` as the reference's
  `save_pretrained` wrote it; `config.yaml` as a run directory holds it), the inputs, and the
  reference outputs; the reference's trainable-parameter order (the order of the EMA's
  `shadow_params`); the keys of the reference's `checkpoint.pth`; the reference noise
  schedules' total and rate on a grid of times; the reference graphs' rate columns and rows,
  transitions and staggered scores.

Cases: absorbing + log-linear noise with `scale_by_sigma` on and off, uniform + geometric noise;
all with weights A, each checked through the reference's Hugging Face loader
(`load_model.load_model_hf`); and a run directory (`load_model.load_model_local`) whose raw
weights are B and whose EMA weights are A, so that a loader that used the raw weights would fail.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import math
import sys
import tempfile
import types
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

DATA = Path(__file__).resolve().parent / "data"
SEED = 20240601
BATCH, LENGTH = 3, 9
HIDDEN, HEADS, COND, BLOCKS = 32, 4, 16, 2


def install_exact_attention() -> None:
    """Register `flash_attn.flash_attn_interface.flash_attn_varlen_qkvpacked_func` as exact
    attention (the reference imports it at module level)."""

    def flash_attn_varlen_qkvpacked_func(
        qkv: Tensor,
        cu_seqlens: Tensor,
        max_seqlen: int,
        dropout_p: float = 0.0,
        softmax_scale: float | None = None,
        causal: bool = False,
    ) -> Tensor:
        # qkv: [total tokens, 3, heads, head_dim]; sequences are cu_seqlens[i]:cu_seqlens[i+1].
        if dropout_p != 0.0 or causal:
            raise NotImplementedError("the reference calls it with dropout 0, not causal")
        scale = softmax_scale if softmax_scale is not None else qkv.shape[-1] ** -0.5
        out = torch.empty_like(qkv[:, 0])
        bounds = cu_seqlens.tolist()
        for start, stop in itertools.pairwise(bounds):
            q, k, v = qkv[start:stop].float().unbind(1)  # each [s, heads, head_dim]
            logits = torch.einsum("qhd,khd->hqk", q, k) * scale
            weights = torch.softmax(logits, dim=-1)
            out[start:stop] = torch.einsum("hqk,khd->qhd", weights, v).to(out.dtype)
        return out

    package = types.ModuleType("flash_attn")  # not a package: `flash_attn.layers` fails
    interface = types.ModuleType("flash_attn.flash_attn_interface")
    interface.flash_attn_varlen_qkvpacked_func = flash_attn_varlen_qkvpacked_func  # type: ignore[attr-defined]
    package.flash_attn_interface = interface  # type: ignore[attr-defined]
    sys.modules["flash_attn"] = package
    sys.modules["flash_attn.flash_attn_interface"] = interface


def reference_config(reference: Path, graph: str, noise: str, scale_by_sigma: bool) -> Any:
    """The reference's own `configs/config.yaml` (model: small), made small; hydra's section
    dropped as hydra does when it saves `.hydra/config.yaml`."""
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(reference / "configs" / "config.yaml")
    cfg.model = OmegaConf.load(reference / "configs" / "model" / "small.yaml")
    del cfg["defaults"], cfg["hydra"]
    cfg.tokens = 7 if graph == "absorb" else 8
    cfg.graph.type = graph
    cfg.noise.type = noise
    cfg.model.update(
        hidden_size=HIDDEN,
        n_heads=HEADS,
        cond_dim=COND,
        n_blocks=BLOCKS,
        length=LENGTH,
        scale_by_sigma=scale_by_sigma,
    )
    return cfg


def fp16_exact(t: Tensor) -> Tensor:
    """`t` rounded to the nearest float16 number, in float32 (so storing float16 is lossless)."""
    return t.half().float()


def random_weights(model: torch.nn.Module, generator: torch.Generator) -> dict[str, Tensor]:
    """A state dict with every parameter random (the reference zero-initialises the adaLN and
    output layers, which would hide them) and the rotary buffer as the reference builds it."""
    state = {}
    for name, value in model.state_dict().items():
        if name.endswith("inv_freq"):
            state[name] = value.clone()
            continue
        noise = torch.randn(value.shape, generator=generator)
        if name.endswith(("norm1.weight", "norm2.weight", "norm_final.weight")):
            value = 1.0 + 0.2 * noise
        elif name.endswith("embedding"):
            value = noise
        else:
            fan_in = value.shape[-1] if value.dim() == 2 else 1
            value = noise * (1.5 / math.sqrt(fan_in) if value.dim() == 2 else 0.3)
        state[name] = fp16_exact(value)
    return state


def run(model: torch.nn.Module, tokens: Tensor, sigma: Tensor) -> Tensor:
    model.eval()
    with torch.no_grad():
        return model(tokens, sigma).float()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference", type=Path, required=True, help="a checkout of the SEDD code")
    parser.add_argument("--out", type=Path, default=DATA)
    args = parser.parse_args()
    reference = args.reference.resolve()

    install_exact_attention()
    sys.path.insert(0, str(reference))
    import graph_lib
    import load_model
    import noise_lib
    import utils
    from model import SEDD
    from model.ema import ExponentialMovingAverage
    from omegaconf import OmegaConf
    from safetensors.torch import save_file

    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(SEED)
    first = SEDD(OmegaConf.to_container(reference_config(reference, "absorb", "loglinear", True)))
    weights_a = random_weights(first, generator)
    weights_b = random_weights(first, generator)
    out: dict[str, Any] = {
        "reference": "github.com/louaaron/Score-Entropy-Discrete-Diffusion (model/transformer.py, "
        "model/rotary.py, model/ema.py, noise_lib.py, graph_lib.py, load_model.py, utils.py)",
        "script": "tests/interop/make_vectors.py",
        "cases": {},
    }
    out["parameter_order"] = [n for n, p in first.named_parameters() if p.requires_grad]

    specs = {
        "absorb_loglinear_scaled": ("absorb", "loglinear", True, [0.02, 0.45, 3.0]),
        "absorb_loglinear_unscaled": ("absorb", "loglinear", False, [0.02, 0.45, 3.0]),
        "uniform_geometric": ("uniform", "geometric", False, [1e-3, 0.6, 15.0]),
    }
    with tempfile.TemporaryDirectory() as tmp:
        for name, (graph, noise, scaled, sigmas) in specs.items():
            cfg = reference_config(reference, graph, noise, scaled)
            config = OmegaConf.to_container(cfg)
            model = SEDD(copy.deepcopy(config))
            model.load_state_dict(weights_a)
            states = cfg.tokens + (1 if graph == "absorb" else 0)
            tokens = torch.randint(states, (BATCH, LENGTH), generator=generator)
            if graph == "absorb":  # a good share of MASK, as when sampling
                tokens[torch.rand(BATCH, LENGTH, generator=generator) < 0.4] = states - 1
            sigma = torch.tensor(sigmas)
            direct = run(model, tokens, sigma)
            # The Hugging Face layout as the reference's mixin writes it, and its own loader.
            hf_dir = Path(tmp) / name
            model.save_pretrained(hf_dir, config=config)
            loaded, _, _ = load_model.load_model_hf(str(hf_dir), "cpu")
            via_hf = run(loaded, tokens, sigma)
            if not torch.equal(direct, via_hf):
                raise RuntimeError(f"{name}: the reference's own HF round trip differs")
            out["cases"][name] = {
                "weights": "weights_a.safetensors",
                "config_json": json.loads((hf_dir / "config.json").read_text()),
                "hf_files": sorted(p.name for p in hf_dir.iterdir()),
                "tokens": tokens.tolist(),
                "sigma": sigmas,
                "output": direct.tolist(),
            }

        # A run directory: .hydra/config.yaml and checkpoints-meta/checkpoint.pth, written by the
        # reference's utils.save_checkpoint, read by its load_model_local (EMA weights).
        cfg = reference_config(reference, "absorb", "loglinear", True)
        run_dir = Path(tmp) / "run"
        (run_dir / ".hydra").mkdir(parents=True)
        (run_dir / "checkpoints-meta").mkdir()
        OmegaConf.save(cfg, run_dir / ".hydra" / "config.yaml")
        model = SEDD(cfg)
        model.load_state_dict(weights_a)
        ema = ExponentialMovingAverage(model.parameters(), decay=cfg.training.ema)  # shadow: A
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        tokens = torch.randint(cfg.tokens + 1, (BATCH, LENGTH), generator=generator)
        model(tokens, torch.tensor([0.5, 1.0, 2.0])).square().mean().backward()
        optimizer.step()  # an optimizer state as a real checkpoint has one
        model.load_state_dict(weights_b)  # the raw weights: B
        state = {"optimizer": optimizer, "model": types.SimpleNamespace(module=model)}
        state.update(ema=ema, step=7)
        utils.save_checkpoint(str(run_dir / "checkpoints-meta" / "checkpoint.pth"), state)
        saved = torch.load(run_dir / "checkpoints-meta" / "checkpoint.pth", weights_only=True)
        loaded, _, _ = load_model.load_model_local(str(run_dir), "cpu")
        sigma = [0.02, 0.45, 3.0]
        raw_model = SEDD(copy.deepcopy(OmegaConf.to_container(cfg)))
        raw_model.load_state_dict(weights_b)
        out["cases"]["run_directory_ema"] = {
            "weights": "weights_b.safetensors",
            "ema_weights": "weights_a.safetensors",
            "config_yaml": (run_dir / ".hydra" / "config.yaml").read_text(),
            "checkpoint_keys": sorted(saved),
            "ema_keys": sorted(saved["ema"]),
            "ema_decay": saved["ema"]["decay"],
            "ema_num_updates": saved["ema"]["num_updates"],
            "step": saved["step"],
            "tokens": tokens.tolist(),
            "sigma": sigma,
            "output": run(loaded, tokens, torch.tensor(sigma)).tolist(),
            "output_raw_weights": run(raw_model, tokens, torch.tensor(sigma)).tolist(),
        }

    # Noise schedules: total and rate on a grid, in float64.
    t = torch.linspace(0.0, 1.0, 11, dtype=torch.float64)
    loglinear, geometric = noise_lib.LogLinearNoise(), noise_lib.GeometricNoise(1e-4, 20.0)
    # Its levels are a float32 tensor; in float64 the formula is compared, not float32 rounding.
    geometric.sigmas = torch.tensor([1e-4, 20.0], dtype=torch.float64)
    out["noise"] = {
        "t": t.tolist(),
        "loglinear": {"eps": loglinear.eps, "total": loglinear(t)[0].tolist()},
        "geometric": {"sigma_min": 1e-4, "sigma_max": 20.0, "total": geometric(t)[0].tolist()},
    }
    out["noise"]["loglinear"]["rate"] = loglinear(t)[1].tolist()
    out["noise"]["geometric"]["rate"] = geometric(t)[1].tolist()

    # Graphs: rate columns, rows, transitions and staggered scores, on every state.
    graphs: dict[str, Any] = {}
    for name, graph in (("absorb", graph_lib.Absorbing(4)), ("uniform", graph_lib.Uniform(5))):
        states = torch.arange(graph.dim)
        sigma = torch.full((graph.dim,), 0.7, dtype=torch.float64)
        score = torch.rand(graph.dim, graph.dim, generator=generator, dtype=torch.float64) + 0.1
        entry = {
            "tokens": graph.dim - (1 if name == "absorb" else 0),
            "rate": graph.rate(states).double().tolist(),  # row i: Q[:, i]
            "transp_rate": graph.transp_rate(states).double().tolist(),  # row i: Q[i, :]
            "transp_transition": graph.transp_transition(states, sigma).tolist(),
            "sigma": 0.7,
            "score": score.tolist(),
            "staggered_score": graph.staggered_score(score, sigma).tolist(),
        }
        if name == "uniform":
            entry["transition"] = graph.transition(states, sigma).tolist()
        graphs[name] = entry
    out["graphs"] = graphs

    args.out.mkdir(parents=True, exist_ok=True)
    for label, weights in (("a", weights_a), ("b", weights_b)):
        half = {k: (v if k.endswith("inv_freq") else v.half()) for k, v in weights.items()}
        save_file(half, str(args.out / f"weights_{label}.safetensors"))
        (args.out / f"weights_{label}.safetensors").chmod(0o644)
    text = json.dumps(out, sort_keys=True, separators=(",", ":"))
    (args.out / "cases.json").write_text(text + "\n")
    size = sum(p.stat().st_size for p in args.out.iterdir())
    print(f"wrote {args.out} ({size / 1024:.0f} KB)")


if __name__ == "__main__":
    main()
