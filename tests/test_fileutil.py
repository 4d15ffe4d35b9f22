"""Atomic writes and content hashes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from dicetalk_bench.fileutil import atomic_path, atomic_write_bytes, sha256_file


def test_sha256_matches_hashlib(tmp_path: Path) -> None:
    data = bytes(range(256)) * 5000  # spans several read chunks
    p = tmp_path / "blob.bin"
    p.write_bytes(data)
    assert sha256_file(p) == hashlib.sha256(data).hexdigest()


def test_atomic_write_replaces_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "x.bin"
    atomic_write_bytes(target, b"first")
    atomic_write_bytes(target, b"second")
    assert target.read_bytes() == b"second"
    assert [p.name for p in target.parent.iterdir()] == ["x.bin"]


def test_failed_write_leaves_neither_target_nor_temp(tmp_path: Path) -> None:
    target = tmp_path / "x.mp4"
    with pytest.raises(RuntimeError):
        with atomic_path(target, suffix=".mp4") as tmp:
            assert tmp.name.endswith(".tmp.mp4")
            tmp.write_bytes(b"partial")
            raise RuntimeError("encoder died")
    assert list(tmp_path.iterdir()) == []


def test_failed_rewrite_keeps_previous_version(tmp_path: Path) -> None:
    target = tmp_path / "x.bin"
    atomic_write_bytes(target, b"good")
    with pytest.raises(OSError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise OSError("disk full")
    assert target.read_bytes() == b"good"
