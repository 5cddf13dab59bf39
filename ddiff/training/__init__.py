"""Training with Lightning: the modules, the data module, the EMA and atomic checkpoints.

The only subpackage that imports `lightning` (with `ddiff.run` and the recipes above it), and it
never imports `ddiff.config`: the pieces take objects, not configurations:

- `DiffusionModule(graph, schedule, net, OptimSettings(...))`: score-entropy training with
  stratified times, AdamW, warm-up, clipping and an EMA; validation reports the likelihood
  bound in bits per real token.
- `AutoregressiveModule(CausalTransformer(...), OptimSettings(...))`: the autoregressive baseline
  of the same size, trained the same way; validation reports its exact NLL in the same unit, and
  `ddiff.eval.bits_per_token` computes it on any held-out set.
- `ClassifierModule(graph, schedule, NoisyClassifierNet(...))`: a classifier of sequences
  noised by the same process, for classifier guidance; validation reports held-out accuracy
  per noise level.
- `TokenDataModule(train, val, batch_size=...)`: fixed-length windows or variable-length
  sequences (padded with a pad token to a fixed length), resumable order, DDP-aware.
- `AtomicCheckpointIO`: checkpoints written atomically and read with `weights_only=True`.

From a configuration: `ddiff.run.train(config, run_dir)` (with `build_trainer`, `build_module`;
`python -m ddiff.run --config run.yaml --run-dir runs/x [--resume]` on the command line), and
`ddiff.pretrained.save_pretrained` / `load_pretrained` for the safetensors export.
"""

from ddiff.training.autoregressive import AutoregressiveModule
from ddiff.training.checkpoint import AtomicCheckpointIO
from ddiff.training.classifier import ClassifierModule
from ddiff.training.data import TokenBatch, TokenDataModule, TokenDataset, windows
from ddiff.training.ema import EMA
from ddiff.training.module import DiffusionModule
from ddiff.training.optim import OptimSettings

__all__ = [
    "EMA",
    "AtomicCheckpointIO",
    "AutoregressiveModule",
    "ClassifierModule",
    "DiffusionModule",
    "OptimSettings",
    "TokenBatch",
    "TokenDataModule",
    "TokenDataset",
    "windows",
]
