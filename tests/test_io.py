"""`ddiff.io`: the one atomic writer."""

from __future__ import annotations

import json
import math
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from ddiff.io import atomic_path, write_bytes, write_json, write_text


def _names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_writers_write_the_content_and_leave_no_temporary_file(tmp_path: Path) -> None:
    write_text(tmp_path / "a" / "b.txt", "héllo\n")
    write_bytes(tmp_path / "c.bin", b"\x00\x01")
    assert (tmp_path / "a" / "b.txt").read_text(encoding="utf-8") == "héllo\n"
    assert (tmp_path / "c.bin").read_bytes() == b"\x00\x01"
    assert _names(tmp_path) == ["a", "c.bin"] and _names(tmp_path / "a") == ["b.txt"]


def test_write_replaces_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "f.txt"
    write_text(path, "old")
    write_text(path, "new")
    assert path.read_text() == "new" and _names(tmp_path) == ["f.txt"]


def test_write_json_is_strict_json(tmp_path: Path) -> None:
    data = {
        "nan": math.nan,
        "inf": -math.inf,
        "np": np.float32(0.5),
        "int": np.int64(3),
        "path": Path("x") / "y",
        "tuple": (1, (2.0, math.nan)),
        4: "key becomes a string",
    }
    path = tmp_path / "m.json"
    write_json(path, data)
    text = path.read_text()
    assert text.endswith("}\n") and "\n  " in text  # indented, newline-terminated
    loaded = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert loaded == {
        "nan": None,
        "inf": None,
        "np": 0.5,
        "int": 3,
        "path": str(Path("x") / "y"),
        "tuple": [1, [2.0, None]],
        "4": "key becomes a string",
    }


def test_failure_keeps_the_old_file_and_removes_the_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "f.txt"
    write_text(path, "old")
    with pytest.raises(RuntimeError, match="boom"), atomic_path(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert path.read_text() == "old" and _names(tmp_path) == ["f.txt"]


def test_failing_rename_removes_the_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_replace(src: object, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", no_replace)
    with pytest.raises(OSError, match="disk full"):
        write_text(tmp_path / "f.txt", "new")
    assert _names(tmp_path) == []


def test_failing_cleanup_does_not_chain_a_second_exception(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_unlink(self: Path, missing_ok: bool = False) -> None:
        raise PermissionError("cannot remove")

    monkeypatch.setattr(Path, "unlink", no_unlink)
    with pytest.raises(RuntimeError, match="boom") as info, atomic_path(tmp_path / "f") as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert info.value.__context__ is None and info.value.__cause__ is None


def test_file_and_directory_are_fsynced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    write_text(tmp_path / "f.txt", "x")
    if os.name == "posix":
        assert synced == ["file", "dir"]  # the data before the rename, then the rename itself
    else:
        assert synced[:1] == ["file"]
