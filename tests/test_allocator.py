"""Allocator settings: they are taken on glibc, reach Dask workers, and stop freed frame memory being refaulted."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from dicetalk_bench import allocator

pytestmark = pytest.mark.skipif(not allocator.is_glibc(), reason="the allocator tuning applies to glibc only")

# Allocate, touch and free 200 MB frame-sized blocks (a 1080p 32-frame chunk) ten times; count page faults.
_CHURN = r"""
import json, resource, sys
import numpy as np
from dicetalk_bench import allocator
applied = allocator.retain_freed_memory() if sys.argv[1] == "retain" else None
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
a = np.ones((32, 1080, 1920, 3), np.uint8); del a  # first use: fresh pages in both modes
f0 = faults()
for _ in range(10):
    a = np.empty((32, 1080, 1920, 3), np.uint8)
    a[...] = 1
    del a
print(json.dumps({"applied": applied, "faults": faults() - f0}))
"""


def _churn(mode: str) -> dict:
    # glibc's defaults in the child: no MALLOC_* variables (a Dask nanny started earlier in this process
    # exports its pre-spawn environment into os.environ)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run([sys.executable, "-c", _CHURN, mode], capture_output=True, text=True, check=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_retained_memory_is_reused_instead_of_refaulted() -> None:
    default, retained = _churn("default"), _churn("retain")
    assert retained["applied"] is True
    # default glibc maps each 200 MB block afresh: every block is faulted in again (>= 1 fault per 2 MiB page)
    assert default["faults"] >= 10 * (200 * 2**20) // (2 * 2**20)
    assert retained["faults"] * 20 < default["faults"], (default, retained)


def test_retain_freed_memory_is_idempotent() -> None:
    assert allocator.retain_freed_memory() is True
    assert allocator.retain_freed_memory() is True


def test_environ_matches_the_runtime_settings() -> None:
    env = allocator.retained_memory_environ()
    assert env == {"MALLOC_MMAP_THRESHOLD_": str(allocator.MMAP_THRESHOLD_BYTES),
                   "MALLOC_TRIM_THRESHOLD_": str(allocator.TRIM_THRESHOLD_BYTES), "MALLOC_ARENA_MAX": "1"}
    assert allocator.TRIM_THRESHOLD_BYTES < 2**31 and allocator.MMAP_THRESHOLD_BYTES < 2**31  # mallopt's int


def test_parent_environ_kept_undoes_changes_and_additions(monkeypatch):
    from dicetalk_bench.allocator import parent_environ_kept

    monkeypatch.setenv("DICETALK_BENCH_TEST_KEPT", "before")
    monkeypatch.delenv("DICETALK_BENCH_TEST_ADDED", raising=False)
    with parent_environ_kept():
        os.environ["DICETALK_BENCH_TEST_KEPT"] = "changed"
        os.environ["DICETALK_BENCH_TEST_ADDED"] = "1"
    assert os.environ["DICETALK_BENCH_TEST_KEPT"] == "before"
    assert "DICETALK_BENCH_TEST_ADDED" not in os.environ


def test_a_local_cluster_leaves_the_parent_environment_as_it_was(monkeypatch):
    """Dask's nanny writes the workers' settings (OMP_NUM_THREADS=1, allocator variables) into the parent's
    environment; torch started later in the parent would then run on one thread."""
    from distributed import Client

    from dicetalk_bench.allocator import retained_memory_environ
    from dicetalk_bench.preprocessing.orchestration import local_cluster

    for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "DICETALK_BENCH_WORKER", *retained_memory_environ()):
        monkeypatch.delenv(key, raising=False)
    before = dict(os.environ)
    cluster = local_cluster(1)
    try:
        assert dict(os.environ) == before
        with Client(cluster) as client:
            (seen,) = client.run(lambda: {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "DICETALK_BENCH_WORKER")
                                          }).values()
        assert seen == {"OMP_NUM_THREADS": "1", "DICETALK_BENCH_WORKER": "1"}  # the workers do get them
    finally:
        cluster.close()
    assert dict(os.environ) == before
