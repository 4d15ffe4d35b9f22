"""Keep other libraries' chatter off the screen unless asked for (``-v``).

Dask's workers, LiteRT/TFLite (the BlazeFace interpreter) and mediapipe print from native code straight to file
descriptor 2, past Python's ``logging`` and ``sys.stderr``; the only way to silence them is to point the worker
process's descriptor 2 at ``/dev/null``. Per-item failures are unaffected: they are recorded in the stage's
outputs (``failures.parquet``, the results files), not printed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from typing import Any

#: loggers of other libraries that are shown only at DEBUG level (``-v``)
CHATTY_LOGGERS: tuple[str, ...] = ("distributed", "dask", "tornado", "asyncio", "absl", "mediapipe", "diffusers",
                                   "transformers", "huggingface_hub", "urllib3", "PIL", "matplotlib", "numexpr",
                                   "fsspec", "h5py")

#: environment variables that keep native libraries and Hugging Face's loaders quiet (set only when not already set)
QUIET_ENVIRON: dict[str, str] = {
    "TF_CPP_MIN_LOG_LEVEL": "3",  # TFLite / LiteRT
    "GLOG_minloglevel": "2",  # mediapipe (glog)
    "DIFFUSERS_VERBOSITY": "error",
    "TRANSFORMERS_VERBOSITY": "error",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",  # "Loading weights" / "Writing model shards" bars
    "DASK_LOGGING__DISTRIBUTED": "error",  # distributed sets its loggers' levels from this when imported
}


def redirect_native_stderr(target: str = os.devnull) -> int:
    """Point this process's file descriptor 2 at ``target``; returns a duplicate of the old descriptor (for
    :func:`restore_native_stderr`)."""
    saved = os.dup(2)
    fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.dup2(fd, 2)
    finally:
        os.close(fd)
    return saved


def restore_native_stderr(saved: int) -> None:
    """Undo :func:`redirect_native_stderr` with the descriptor it returned."""
    os.dup2(saved, 2)
    os.close(saved)


def _silence_worker() -> None:  # runs inside each Dask worker process
    redirect_native_stderr()
    for name in ("distributed", "dask"):
        logging.getLogger(name).setLevel(logging.ERROR)


def quiet_dask_workers(client: Any) -> bool:
    """Silence the native stderr of ``client``'s workers (Dask, TFLite, mediapipe) unless this process logs at
    DEBUG (``-v`` / ``--log-level DEBUG``). Returns whether it did. Errors of the call itself are ignored (a
    remote cluster may refuse ``run``): silence is a nicety, not a requirement."""
    if logging.getLogger().isEnabledFor(logging.DEBUG):
        return False
    try:
        client.run(_silence_worker)
    except Exception:  # noqa: BLE001 -- see the docstring
        return False
    return True


def quiet_libraries(verbose: bool) -> None:
    """Set :data:`CHATTY_LOGGERS` to ERROR (DEBUG when ``verbose``) and, unless ``verbose``, the
    :data:`QUIET_ENVIRON` variables (call before the libraries are imported; worker processes inherit them)."""
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.ERROR)
    if not verbose:
        for key, value in QUIET_ENVIRON.items():
            os.environ.setdefault(key, value)


@contextlib.contextmanager
def python_stderr_only() -> Iterator[None]:
    """Inside the block, native code's writes to descriptor 2 (LiteRT, mediapipe, glog) go to ``/dev/null``, while
    Python's ``sys.stderr`` (progress bars, logging handlers, error lines, tracebacks) still reaches the terminal
    through a duplicate of the old descriptor. Child processes started inside inherit the silenced descriptor."""
    old = sys.stderr
    old.flush()
    try:
        python_on_fd2 = old.fileno() == 2
    except (AttributeError, OSError, ValueError):  # already elsewhere (e.g. captured): leave it there
        python_on_fd2 = False
    saved = redirect_native_stderr()
    if not python_on_fd2:
        try:
            yield
        finally:
            restore_native_stderr(saved)
        return
    new = os.fdopen(os.dup(saved), "w", buffering=1, encoding=getattr(old, "encoding", None) or "utf-8",
                    errors="backslashreplace")
    handlers = [h for h in logging.getLogger().handlers
                if isinstance(h, logging.StreamHandler) and getattr(h, "stream", None) is old]
    for h in handlers:
        h.setStream(new)
    sys.stderr = new
    try:
        yield
    finally:
        new.flush()
        sys.stderr = old
        for h in handlers:
            h.setStream(old)
        new.close()
        restore_native_stderr(saved)
