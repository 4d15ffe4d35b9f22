"""Measure the peak memory of real training runs (run as a subprocess by test_model_memory.py).

``python memory_worker.py OUT_JSON CONFIGS_JSON``: for each TrainConfig override dict, the OS's peak resident
memory (``VmHWM``, reset through ``/proc/self/clear_refs``) during ``setup`` + two training steps, minus the
resident memory just before. Run with ``MALLOC_MMAP_THRESHOLD_`` set low so glibc returns freed tensor memory to
the OS at once: the resident set then follows the live tensors, as ``torch.cuda.max_memory_allocated`` does on a
GPU (without it glibc keeps freed chunks and the high-water mark also counts its cache).
"""

from __future__ import annotations

import ctypes
import gc
import json
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from conftest import write_preprocessed  # noqa: E402

from dicetalk_bench.model.train_loop import TrainConfig, setup, train_step  # noqa: E402
from dicetalk_bench.weights import write_random_priors  # noqa: E402


def _status(key: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {key}")


def measure(cfg: TrainConfig) -> int:
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    base = _status("VmRSS:")
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")  # reset VmHWM to the current resident size
    run = setup(cfg, "cpu")
    train_step(run)
    train_step(run)
    peak = _status("VmHWM:")
    del run
    gc.collect()
    return peak - base


def main(out: str, configs: str) -> None:
    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp(prefix="memory_worker_"))
    root = write_preprocessed(tmp / "pre", n_frames=60)
    write_random_priors(tmp / "emo", 0)
    common = dict(model="tiny", svd="random:0", data_root=root, emotion_source="class-mean", priors_dir=tmp / "emo", out_dir=tmp / "run",
                  memory_check=False)
    # warm-up at a negligible size: lazy imports, the random SVD folder, first-call allocations
    warm = setup(TrainConfig(**common, resolution=32, num_frames=4), "cpu")
    train_step(warm)
    del warm
    results = [measure(TrainConfig(**common, **json.loads(json.dumps(c)))) for c in json.loads(configs)]
    Path(out).write_text(json.dumps({"measured": results, "svd_dir": str(tmp / "run" / "svd-random"),
                                     "data_root": str(root), "priors_dir": str(tmp / "emo")}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
