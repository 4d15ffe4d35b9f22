"""The training memory estimate (model/cost.py): the live-bytes tracker on closed forms, the estimate against the
OS-measured peak of real runs (within +-25 % on the tiny and a small configuration), and the refusal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dicetalk_bench.model.cost import (LiveBytes, MemoryBudgetError, MemoryEstimate, check_memory_budget,
                                       estimate_training_memory)
from dicetalk_bench.model.train_loop import TrainConfig

# tiny: the CPU test configuration; small: 4x the pixels and 2 samples (activations dominate); the third adds
# activation checkpointing, whose recomputation the trace must follow too
CONFIGS = [{}, {"resolution": 128, "batch_size": 2}, {"resolution": 128, "batch_size": 2,
                                                     "activation_checkpointing": True}]


def test_live_bytes_counts_storages_once_and_releases_them() -> None:
    with LiveBytes() as counter:
        a = torch.zeros(1000, 250)  # 1,000,000 bytes
        view = a[:10]  # a view shares the storage: no new bytes
        b = a + 1  # a new storage
        assert counter.live == 2_000_000
        del b
        assert counter.live == 1_000_000
        c = torch.ones(500, 500, dtype=torch.bfloat16)  # 500,000 bytes
        assert counter.live == 1_500_000
        del a
        assert counter.live == 1_500_000  # the view still holds a's storage
        del view
        assert counter.live == 500_000
        del c
    assert counter.live == 0 and counter.peak == 2_000_000


@pytest.fixture(scope="module")
def measured(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("mem") / "measured.json"
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "OMP_NUM_THREADS": "1"}
    worker = Path(__file__).with_name("memory_worker.py")
    proc = subprocess.run([sys.executable, str(worker), str(out), json.dumps(CONFIGS)], env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def estimates(measured) -> list[MemoryEstimate]:
    return [estimate_training_memory(TrainConfig(model="tiny", **c), measured["svd_dir"], device_type="cpu") for c in CONFIGS]


@pytest.mark.parametrize("index", range(len(CONFIGS)))
def test_estimate_within_25_percent_of_measured_peak(measured, estimates, index: int) -> None:
    estimate = estimates[index]
    real = measured["measured"][index]
    assert real > 50 * 2**20  # the runs are large enough to measure
    assert 0.75 <= estimate.peak / real <= 1.25, (CONFIGS[index], estimate.summary(), real)
    assert estimate.weights + estimate.states + estimate.activations == estimate.peak


def test_estimate_follows_the_settings(measured, estimates) -> None:
    small, ckpt = estimates[1], estimates[2]
    frozen = estimate_training_memory(TrainConfig(model="tiny", **CONFIGS[1], train_unet=False), measured["svd_dir"])
    two = estimate_training_memory(TrainConfig(model="tiny", **CONFIGS[1]), measured["svd_dir"], world=2)
    assert ckpt.activations < 0.8 * small.activations and ckpt.weights == small.weights
    assert frozen.states < small.states and frozen.weights == small.weights
    assert two.per_process_batch == 1 and two.activations < small.activations  # half the batch per process
    assert two.states > small.states  # DDP gradient buckets


def _estimate(peak: int) -> MemoryEstimate:
    return MemoryEstimate(weights=peak // 4, states=peak // 4, peak=peak, per_process_batch=1, resolution=512,
                          num_frames=25, bf16=False, activation_checkpointing=False)


def test_refusal_names_the_sizes_and_the_fixes() -> None:
    est = _estimate(40 * 2**30)
    check_memory_budget(est, "cpu", free_bytes=41 * 2**30)  # fits: no error
    with pytest.raises(MemoryBudgetError) as info:
        check_memory_budget(est, "cuda:0", free_bytes=24 * 2**30)
    msg = str(info.value)
    assert "40.00 GiB" in msg and "24.00 GiB" in msg and "cuda:0" in msg
    for fix in ("bf16=true", "activation_checkpointing=true", "train_unet=false", "memory_check=false"):
        assert fix in msg


def test_train_refuses_before_writing_anything(preprocessed, priors_dir, svd_dir, tmp_path, monkeypatch) -> None:
    from dicetalk_bench.model import cost
    from dicetalk_bench.train import main

    monkeypatch.setattr(cost, "free_device_memory", lambda device: 2**20)  # a device with 1 MiB free
    out = tmp_path / "run"
    argv = ["model=tiny", f"data_root={preprocessed}", "emotion_source=class-mean", f"priors_dir={priors_dir}", f"svd={svd_dir}",
            f"out_dir={out}",
            "steps=1", "num_frames=4", "resolution=32", "allow_unverified=true"]
    assert main(["--device", "cpu", *argv]) == 1
    assert not (out / "checkpoints").exists() and not (out / "train_config.yaml").exists()


def test_estimate_memory_cli(preprocessed, priors_dir, svd_dir, tmp_path, capsys) -> None:
    from dicetalk_bench.train import main

    argv = ["model=tiny", f"data_root={preprocessed}", "emotion_source=class-mean", f"priors_dir={priors_dir}", f"svd={svd_dir}",
            f"out_dir={tmp_path / 'r'}",
            "num_frames=4", "resolution=32", "allow_unverified=true"]
    assert main(["--estimate-memory", "--device", "cpu", *argv]) == 0
    assert "estimated peak" in capsys.readouterr().out
    assert not (tmp_path / "r" / "checkpoints").exists()
