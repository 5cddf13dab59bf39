"""ddiff's one atomic writer: a file is the previous version or the new one, never a torn one.

Every file ddiff writes (checkpoints, pretrained weights and configs, recipe outputs, benchmark
results) goes through `atomic_path`: the bytes are written to a temporary sibling
`.<name>.tmp-<pid>-<random>` in the target's directory (same file system, so the rename is
atomic), flushed to disk with `fsync`, renamed over the target with `os.replace`, and the
directory is `fsync`ed so that the rename itself survives a power cut. A process killed at any
moment leaves the previous file or the new one; at worst a `.<name>.tmp-*` file that is safe to
delete.

Example:
    >>> import json, tempfile
    >>> from pathlib import Path
    >>> from ddiff.io import write_json
    >>> with tempfile.TemporaryDirectory() as directory:
    ...     path = Path(directory) / "out" / "metrics.json"  # parent directories are created
    ...     write_json(path, {"bits": float("nan"), "path": Path("a/b")})
    ...     json.loads(path.read_text()), [p.name for p in path.parent.iterdir()]
    ({'bits': None, 'path': 'a/b'}, ['metrics.json'])
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["atomic_path", "write_bytes", "write_json", "write_text"]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary sibling of `path` to write; moved onto `path` when the block succeeds.

    The block must create the yielded file (mode "x" or "w": the umask applies). On success the
    file is fsynced, renamed over `path` with `os.replace` and the directory is fsynced. On
    failure (in the block, the fsync or the rename) the temporary file is removed and the
    original exception propagates unchanged: a failing clean-up is ignored, never chained.

    Args:
        path: the target; its parent directories are created.

    Yields:
        The temporary path, in the same directory as `path`.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, target)
    except BaseException:
        # Suppressed inside the handler, an OSError here leaves the original exception's
        # __context__ untouched: the user sees why the write failed, not why clean-up did.
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise
    _fsync_directory(target.parent)


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write `data` to `path` atomically."""
    with atomic_path(path) as tmp, open(tmp, "xb") as f:
        f.write(data)


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write `text` (UTF-8) to `path` atomically."""
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    """Write `data` as indented JSON to `path` atomically.

    NaN and infinities become `null`, numpy scalars Python numbers, paths strings, tuples lists
    and mapping keys strings, so a metrics record always round-trips through strict JSON readers.
    """
    write_text(path, json.dumps(_jsonable(data), indent=2) + "\n")


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def _fsync_file(path: Path) -> None:
    """Flush a written file's data to disk (the rename must not overtake the bytes)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_directory(directory: Path) -> None:
    """Persist the rename itself (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
