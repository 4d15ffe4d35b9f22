"""One row of the weights table (:class:`WeightsEntry`) and the environment variable that overrides its path."""

from __future__ import annotations

import dataclasses
from typing import Literal

_ENV_PREFIX = "DICETALK_BENCH_"
_ENV_SUFFIX = "_WEIGHTS"


@dataclasses.dataclass(frozen=True)
class WeightsEntry:
    """One pretrained file or folder.

    ``sha256`` is the hash of the file's bytes, or for a folder the hash of its manifest (see :func:`folder_manifest`);
    None means not pinned (no public hash known): such a file is accepted only with ``allow_unverified`` or after the
    user pins it with ``verify KEY --pin``. Random weights for tests are written by the builder the owning module
    registers (:func:`dicetalk_bench.weights.random_weights.register_random_builder`), not named here.
    """

    key: str
    filename: str
    kind: Literal["file", "folder"]
    sha256: str | None
    size_bytes: int | None
    licence: str
    source_url: str
    component: str
    torch_hub: bool = False
    # Automatic source for `fetch`: a direct URL, or a member of a PyPI wheel (spec, member path).
    download_url: str | None = None
    wheel: tuple[str, str] | None = None
    # Where to get it by hand when there is no automatic source.
    manual: str = ""
    # Other names the same bytes go by (e.g. torch-fidelity's name for the FID Inception file).
    alt_filenames: tuple[str, ...] = ()
    # Folder entries: the relative paths the manifest covers (empty: every non-hidden file in the folder).
    files: tuple[str, ...] = ()
    # Official file is a whole pickled model: usable only after `convert` (re-saved as this safetensors name).
    pickled: bool = False
    converted_filename: str | None = None
    sha256_source: str = ""
    notes: str = ""

    @property
    def env_var(self) -> str:
        return env_var_for(self.key)

    @property
    def all_filenames(self) -> tuple[str, ...]:
        names = (self.filename, *self.alt_filenames)
        if self.converted_filename:
            # the converted safetensors is what gets loaded, so it shadows the pickled original
            names = (self.converted_filename, *names)
        return names

    def fetch_hint(self) -> str:
        """How to obtain the file: the fetch command, or where to download it by hand."""
        if self.download_url or self.wheel:
            return f"run: python -m dicetalk_bench.weights fetch {self.key}"
        where = self.manual or self.source_url
        return f"download it by hand: {where}"


def env_var_for(key: str) -> str:
    """``DICETALK_BENCH_<KEY>_WEIGHTS`` with the key upper-cased and ``-`` replaced by ``_``."""
    return f"{_ENV_PREFIX}{key.upper().replace('-', '_')}{_ENV_SUFFIX}"
