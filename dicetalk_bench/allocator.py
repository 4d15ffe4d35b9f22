"""Keep freed frame memory in the process for the next clip instead of handing it back to the kernel.

Preprocessing a 3 s 1080p clip allocates about 1 GB of frame arrays (decoded RGB frames, 25 fps chunks, the
frame buffer of the single-decode pass) and frees it at the end of the clip. glibc's defaults serve every
array above 32 MiB with a fresh ``mmap`` and return it with ``munmap`` when it is freed; worker threads'
arenas also unmap heaps that become empty. So the next clip gets fresh pages again, and the kernel zeroes
every one of them on first touch. On the 2-core development VM that zeroing cost 0.1-1.0 s of system time
per clip, as much as a third of the clip's video work and most of the run-to-run noise
(``benchmarks/bench_preprocessing.py``; docs/performance.md).

:func:`retain_freed_memory` sets glibc's ``mallopt`` thresholds so that large blocks come from the heap
and freed memory stays there for reuse; :func:`retained_memory_environ` gives the same settings as
environment variables for processes started later (Dask workers), where they also cover the threads'
arenas from the first allocation on. The process then keeps its peak heap (for preprocessing: bounded by
``PreprocessConfig.frame_buffer_mb`` plus one chunk) until it exits. Nothing here changes any output.
On a C library other than glibc both do nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
import platform
from collections.abc import Iterator

log = logging.getLogger(__name__)

# glibc <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8

#: blocks below this come from the heap (every frame array and chunk of the pipeline)
MMAP_THRESHOLD_BYTES = 1 << 30
#: free memory at the top of the heap is returned only above this
TRIM_THRESHOLD_BYTES = (1 << 31) - 1  # mallopt takes a C int

_applied: bool | None = None


def is_glibc() -> bool:
    """True when this process runs on GNU libc (the only allocator tuned here)."""
    return platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


def retained_memory_environ() -> dict[str, str]:
    """glibc environment variables with the settings of :func:`retain_freed_memory`, for new processes.

    ``MALLOC_ARENA_MAX=1`` puts every thread on the main heap: a thread arena's heaps are at most 64 MiB,
    so larger blocks would be mapped afresh whatever the thresholds. Empty on other C libraries.
    """
    if not is_glibc():
        return {}
    return {"MALLOC_MMAP_THRESHOLD_": str(MMAP_THRESHOLD_BYTES), "MALLOC_TRIM_THRESHOLD_": str(TRIM_THRESHOLD_BYTES),
            "MALLOC_ARENA_MAX": "1"}


def retain_freed_memory() -> bool:
    """Apply the thresholds to this process (idempotent); returns whether glibc took them.

    Covers the main thread's heap and threads that allocate for the first time after the call; for a
    worker pool started before, pass :func:`retained_memory_environ` when it is started instead.
    """
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if is_glibc():
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            _applied = all(libc.mallopt(opt, value) == 1 for opt, value in (
                (_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES), (_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES),
                (_M_ARENA_MAX, 1)))
        except (OSError, AttributeError) as exc:  # no usable libc handle: leave the defaults
            log.debug("mallopt unavailable (%s); keeping the allocator defaults", exc)
    log.debug("retain freed memory: %s", "on" if _applied else "not available")
    return _applied


@contextlib.contextmanager
def parent_environ_kept() -> Iterator[None]:
    """Undo, on exit, every change made to this process's environment inside the block.

    Starting a Dask ``LocalCluster`` applies ``distributed.nanny.pre-spawn-environ`` (``OMP_NUM_THREADS=1``,
    ``MKL_NUM_THREADS=1``, the allocator settings above) to the *parent's* ``os.environ`` as the nanny spawns
    workers. Left there, torch in the parent process (the demo chain, a notebook) would initialise later with one
    thread, and slow every later stage; the workers, already started, keep their settings.
    """
    saved = dict(os.environ)
    try:
        yield
    finally:
        for key in set(os.environ) - set(saved):
            del os.environ[key]
        for key, value in saved.items():
            if os.environ.get(key) != value:
                os.environ[key] = value
