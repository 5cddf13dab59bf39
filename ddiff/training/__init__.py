"""Training with Lightning: the module, the data, checkpoints, and the pretrained format.

The only subpackage that imports `lightning`. The pieces take objects, not configurations:

- `DiffusionModule(graph, schedule, net, OptimSettings(...))`: score-entropy training with
  stratified times, AdamW, warm-up, clipping and an EMA; validation reports the likelihood
  bound in bits per real token.
- `AutoregressiveModule(CausalTransformer(...), OptimSettings(...))`: the autoregressive baseline
  of the same size, trained the same way; validation reports its exact NLL in the same unit, and
  `ddiff.eval.bits_per_token` computes it on any held-out set.
- `TokenDataModule(train, val, batch_size=...)`: fixed-length windows or variable-length
  sequences (padded with a pad token to a fixed length), resumable order, DDP-aware.
- `AtomicCheckpointIO`: checkpoints written atomically and read with `weights_only=True`.
- `save_pretrained` / `load_pretrained`: safetensors weights plus `config.json`.
- `train(config, run_dir)`, `build_trainer`, `build_module`: the same from a `ddiff.config.RunConfig`;
  `python -m ddiff.training --config run.yaml --run-dir runs/x [--resume]` on the command line.
"""

from ddiff.training.autoregressive import AutoregressiveModule
from ddiff.training.checkpoint import AtomicCheckpointIO
from ddiff.training.data import TokenBatch, TokenDataModule, TokenDataset, windows
from ddiff.training.ema import EMA
from ddiff.training.module import DiffusionModule
from ddiff.training.optim import OptimSettings
from ddiff.training.pretrained import Pretrained, load_pretrained, save_pretrained
from ddiff.training.run import build_module, build_trainer, train

__all__ = [
    "EMA",
    "AtomicCheckpointIO",
    "AutoregressiveModule",
    "DiffusionModule",
    "OptimSettings",
    "Pretrained",
    "TokenBatch",
    "TokenDataModule",
    "TokenDataset",
    "build_module",
    "build_trainer",
    "load_pretrained",
    "save_pretrained",
    "train",
    "windows",
]
