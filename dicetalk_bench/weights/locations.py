"""Where weights live: the weights folder, the torch.hub cache, the hash cache and the user pin file."""

from __future__ import annotations

import os
from pathlib import Path

WEIGHTS_DIR_ENV = "DICETALK_BENCH_WEIGHTS_DIR"
HASH_CACHE_ENV = "DICETALK_BENCH_HASH_CACHE"
PINS_FILENAME = "pins.json"


def _xdg_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")


def weights_dir() -> Path:
    """``$DICETALK_BENCH_WEIGHTS_DIR``, default ``~/.cache/dicetalk_bench/weights``."""
    env = os.environ.get(WEIGHTS_DIR_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "dicetalk_bench" / "weights"


def torch_hub_checkpoints_dir() -> Path:
    """``$TORCH_HOME/hub/checkpoints`` (TORCH_HOME defaults to ``${XDG_CACHE_HOME:-~/.cache}/torch``)."""
    home = os.environ.get("TORCH_HOME")
    base = Path(home).expanduser() if home else _xdg_cache() / "torch"
    return base / "hub" / "checkpoints"


def hash_cache_path() -> Path:
    """``$DICETALK_BENCH_HASH_CACHE``, default ``${XDG_CACHE_HOME:-~/.cache}/dicetalk_bench/hash_cache.json``."""
    env = os.environ.get(HASH_CACHE_ENV)
    return Path(env).expanduser() if env else _xdg_cache() / "dicetalk_bench" / "hash_cache.json"


def pins_path() -> Path:
    """The user pin file, ``$DICETALK_BENCH_WEIGHTS_DIR/pins.json``."""
    return weights_dir() / PINS_FILENAME


def private_cache_root() -> Path:
    return _xdg_cache() / "dicetalk_bench" / "torch_home"
