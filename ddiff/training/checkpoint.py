"""Lightning checkpoints written atomically and read without executing code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.fabric.utilities.types import _PATH
from lightning.pytorch.plugins.io import TorchCheckpointIO

from ddiff.io import atomic_path


class AtomicCheckpointIO(TorchCheckpointIO):
    """`TorchCheckpointIO` that never leaves a partial checkpoint and never unpickles code.

    **Writes** go through `ddiff.io.atomic_path`: a temporary file in the checkpoint's own
    directory, flushed to disk (`fsync`), then renamed over the target with `os.replace`, which
    is atomic on POSIX and Windows file systems: a process killed at any moment (even with
    `kill -9`) leaves either the previous checkpoint or the new one, never a truncated file. A
    temporary file can be left behind by such a kill; it is named `.<name>.tmp-*` and is safe
    to delete.

    **Reads** use `torch.load(weights_only=True)`: tensors, numbers, strings and containers
    only, so a checkpoint cannot run code when it is loaded. Lightning checkpoints are still
    pickle files; resume only from checkpoints of your own runs, and share weights with
    `ddiff.pretrained.save_pretrained` (safetensors) instead.

    Pass it to the Trainer: `Trainer(plugins=[AtomicCheckpointIO()])`. Local paths only.

    Example:
        >>> import tempfile, torch
        >>> from pathlib import Path
        >>> from ddiff.training import AtomicCheckpointIO
        >>> io = AtomicCheckpointIO()
        >>> with tempfile.TemporaryDirectory() as directory:
        ...     path = Path(directory) / "run" / "last.ckpt"  # parent directories are created
        ...     io.save_checkpoint({"step": 3, "weight": torch.ones(2)}, path)
        ...     [p.name for p in path.parent.iterdir()], io.load_checkpoint(path)  # no temp left
        (['last.ckpt'], {'step': 3, 'weight': tensor([1., 1.])})
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} does not take storage_options")
        with atomic_path(path) as tmp, open(tmp, "xb") as f:
            torch.save(checkpoint, f)

    def load_checkpoint(
        self,
        path: _PATH,
        map_location: Any | None = lambda storage, loc: storage,
        weights_only: bool | None = None,
    ) -> dict[str, Any]:
        if weights_only is False:
            raise ValueError(
                f"{type(self).__name__} only loads checkpoints with weights_only=True (no code "
                "execution); use TorchCheckpointIO for trusted checkpoints that hold objects"
            )
        target = Path(path)
        if not target.is_file():
            raise FileNotFoundError(f"checkpoint file not found: {target}")
        with target.open("rb") as f:
            return torch.load(f, map_location=map_location, weights_only=True)
