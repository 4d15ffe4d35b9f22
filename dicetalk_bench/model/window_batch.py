"""How many 25-frame windows of a clip go through the network in one call (``window_batch``).

The windows of one Euler step are independent given the step's latents (:func:`~.sampling.fuse_window_batches`),
so K of them can share one network call of batch 3K (three guidance branches each). The choice is an execution
detail: it changes speed and memory, and the frames only by floating-point rounding (the network's kernels may
sum in another order at another batch size; docs/model.md, "Windows per network call").

- an explicit ``window_batch`` is used as given (capped at the clip's window count);
- on CUDA the default is measured: one window's peak activation memory is recorded once per model and window
  shape (:func:`measure_window_bytes`), and as many windows are batched as fit in :data:`MEMORY_HEADROOM` of the
  memory the device can still give (:func:`window_batch_for_memory`);
- on the CPU (and other devices) the default is :data:`CPU_WINDOW_BATCH`: batching there saves per-call overhead
  but not arithmetic, and a paper-size window's activations are several GiB of host memory.
"""

from __future__ import annotations

from typing import Callable

import torch

#: Default windows per call on the CPU (docs/performance.md, "Generation": 1 -> 4 saves per-call overhead on the
#: tiny model; more buys nothing there).
CPU_WINDOW_BATCH = 4
#: Share of the free device memory the batched windows may take (the rest: allocator fragmentation, decoding).
MEMORY_HEADROOM = 0.8


def window_batch_for_memory(available_bytes: int, per_window_bytes: int, n_windows: int,
                            headroom: float = MEMORY_HEADROOM) -> int:
    """Windows per call that fit: floor(headroom * available / per_window), between 1 and ``n_windows``.

    available_bytes: memory the device can still give (bytes); per_window_bytes: peak memory one window's network
    call adds (bytes, > 0); n_windows: windows per step of the clip."""
    if per_window_bytes <= 0:
        raise ValueError(f"per-window memory must be > 0 bytes, got {per_window_bytes}")
    fit = int(headroom * max(available_bytes, 0) // per_window_bytes)
    return max(1, min(n_windows, fit))


def available_device_bytes(device: torch.device | str) -> int:
    """Bytes a CUDA device can still give this process: free memory plus what torch's cache holds unused."""
    device = torch.device(device)
    free, _ = torch.cuda.mem_get_info(device)
    return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))


def measure_window_bytes(call: Callable[[], object], device: torch.device | str) -> int:
    """Peak CUDA memory (bytes) that ``call()`` (one window's network call) adds above what is allocated before
    it. Resets the device's peak-memory statistics."""
    device = torch.device(device)
    torch.cuda.synchronize(device)
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    out = call()
    torch.cuda.synchronize(device)
    peak = torch.cuda.max_memory_allocated(device) - before
    del out
    return max(1, int(peak))


def resolve_window_batch(requested: int | None, device: torch.device | str, n_windows: int,
                         per_window_bytes: Callable[[], int] | None = None,
                         available_bytes: Callable[[], int] | None = None) -> int:
    """The windows per network call for a clip of ``n_windows`` windows per step.

    ``requested``: an explicit choice (>= 1) or None for the default of the device: on CUDA from
    ``available_bytes()`` (default :func:`available_device_bytes`) and ``per_window_bytes()`` (see
    :func:`measure_window_bytes`), both called only then; elsewhere :data:`CPU_WINDOW_BATCH`."""
    if n_windows < 1:
        raise ValueError(f"a clip has at least one window per step, got {n_windows}")
    if requested is not None:
        if int(requested) < 1:
            raise ValueError(f"window_batch must be >= 1 (windows per network call), got {requested}")
        return min(int(requested), n_windows)
    device = torch.device(device)
    if device.type != "cuda" or per_window_bytes is None:
        return min(CPU_WINDOW_BATCH, n_windows)
    per_window = per_window_bytes()  # measured first: the measurement leaves its memory in torch's cache
    available = available_bytes() if available_bytes is not None else available_device_bytes(device)
    return window_batch_for_memory(available, per_window, n_windows)
