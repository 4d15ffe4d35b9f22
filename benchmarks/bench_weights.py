"""Weights registry benchmarks: what the (path, size, mtime) hash cache saves on every resolve().

Run: ``python -m pytest benchmarks/bench_weights.py --benchmark-only``. Compare the two groups in one run: the
cached resolve should be orders of magnitude faster than a full sha256 of the same file (the baseline).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from dicetalk_bench import weights as W

_SIZE = 64 << 20  # 64 MiB: large enough for hashing to dominate, small enough for a CI tmp dir


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("w") / "big.pth"
    with open(path, "wb") as f:
        block = bytes(range(256)) * 4096
        for _ in range(_SIZE // len(block)):
            f.write(block)
    return path


@pytest.fixture
def cached_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(W.HASH_CACHE_ENV, str(tmp_path / "hash_cache.json"))


def test_baseline_full_sha256(benchmark, big_file: Path) -> None:  # type: ignore[no-untyped-def]
    benchmark.group = "hash 64 MiB"
    digest = benchmark(W.sha256_file, big_file)
    assert digest == hashlib.sha256(big_file.read_bytes()).hexdigest()


def test_cached_resolve(benchmark, big_file: Path, cached_env: None) -> None:  # type: ignore[no-untyped-def]
    benchmark.group = "hash 64 MiB"
    sha = W.file_sha256(big_file)  # fills the cache once
    entry = W.WeightsEntry(key="bench", filename=big_file.name, kind="file", sha256=sha, size_bytes=_SIZE,
                           licence="-", source_url="-", component="benchmark")
    with W.registry_override([entry]):
        r = benchmark(W.resolve, "bench", big_file)
    assert r.calibrated
