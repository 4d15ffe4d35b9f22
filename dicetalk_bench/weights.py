"""Registry of every pretrained file dicetalk_bench uses: where it comes from, its hash, and how to find it offline.

One table (:data:`REGISTRY`) lists each weights file or folder with its canonical name, sha256 (pinned where a
public source gives it), licence, source and the component that uses it. :func:`resolve` finds a file without any
network access and checks its hash; :func:`load_state_dict` / :func:`load_torchscript` load it safely;
:func:`fetch` downloads it (hash-checked) where an automatic source exists; :func:`make_random` writes random weights
of the right architecture for tests. The same module is the CLI::

    python -m dicetalk_bench.weights list|verify|fetch|make-random|convert ...

Resolution order (the first level that is set decides; a missing file there is an error, not a fall-through):

1. an explicit ``path`` argument (a CLI option such as ``--weights syncnet=PATH``);
2. the environment variable ``DICETALK_BENCH_<KEY>_WEIGHTS`` (key upper-cased, ``-`` -> ``_``);
3. ``$DICETALK_BENCH_WEIGHTS_DIR/<filename>`` (default ``~/.cache/dicetalk_bench/weights``);
4. ``$TORCH_HOME/hub/checkpoints/<filename>``, only for files third-party code loads through the torch.hub cache.

Levels 1-2 are the user's own files; levels 3-4 are official locations. See docs/weights.md.
torch is imported only inside the functions that need it, so ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as _dt
import hashlib
import importlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import urllib.request
import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from dicetalk_bench.datasets import MEAD_EMOTIONS
from dicetalk_bench.fileutil import atomic_path, atomic_write_bytes, sha256_file

logger = logging.getLogger(__name__)

WEIGHTS_DIR_ENV = "DICETALK_BENCH_WEIGHTS_DIR"
HASH_CACHE_ENV = "DICETALK_BENCH_HASH_CACHE"
PINS_FILENAME = "pins.json"
_ENV_PREFIX = "DICETALK_BENCH_"
_ENV_SUFFIX = "_WEIGHTS"
_CHUNK = 1 << 20

# mediapipe 0.10.21 is the last release whose wheel bundles the BlazeFace tflite models
# (reference: datasets_and_preprocessing.md §2). The file hashes below were computed from
# mediapipe-0.10.21-cp311-cp311-manylinux_2_28_x86_64.whl (wheel sha256 05dc4a9e...cfe3).
MEDIAPIPE_WHEEL_SPEC = "mediapipe==0.10.21"
_WHEEL_PIP_FLAGS = (
    "--no-deps", "--only-binary=:all:", "--platform", "manylinux_2_28_x86_64",
    "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311",
)


# --------------------------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------------------------
class WeightsError(Exception):
    """Base class of every weights problem; the message names the file and what to do."""


class WeightsNotFoundError(WeightsError):
    """No file for a key at the place that decides (see the resolution order)."""


class WeightsHashMismatchError(WeightsError):
    """A file's sha256 differs from the pinned one."""


class UnknownWeightsKeyError(WeightsError, KeyError):
    """A key that is not in the registry."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


# --------------------------------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class WeightsEntry:
    """One pretrained file or folder.

    ``sha256`` is the hash of the file's bytes, or for a folder the hash of its manifest (see :func:`folder_manifest`);
    None means not pinned (no public hash known): such a file is accepted only with ``allow_unverified`` or after the
    user pins it with ``verify KEY --pin``. ``random_builder`` is ``"module:function"`` with signature
    ``fn(target: Path, seed: int) -> None`` writing random weights in the official format.
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
    random_builder: str | None = None
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


_NC = "CC BY-NC-SA 4.0 (non-commercial, share-alike; (c) the DICE-Talk authors, Tan et al. 2025)"
_MEAD_NC = "MEAD licence: non-commercial research only"
_PRIOR_NAMES = tuple(f"{e}.npy" for e in MEAD_EMOTIONS)
_DICETALK_HF = "https://huggingface.co/EEEELY/DICE-Talk"
_DICETALK_MANUAL = (f"{_DICETALK_HF} (or the Google Drive link in the toto222/DICE-Talk README); "
                    "put the file into $DICETALK_BENCH_WEIGHTS_DIR")
_VGG_LIPSYNC = "https://www.robots.ox.ac.uk/~vgg/software/lipsync/data/"
_ADRIANB = "https://www.adrianbulat.com/downloads/python-fan/"

_ENTRIES: tuple[WeightsEntry, ...] = (
    # ---- DICE-Talk model (model.md §1, §7.1) -----------------------------------------------------------------
    WeightsEntry(
        key="svd-xt", filename="stable-video-diffusion-img2vid-xt", kind="folder", sha256=None, size_bytes=None,
        licence="Stability AI Community License (see the model card; earlier releases: SVD non-commercial licence)",
        source_url="https://huggingface.co/stabilityai/stable-video-diffusion-img2vid-xt",
        component="dicetalk_bench.model (VAE, CLIP image encoder, base UNet, scheduler)",
        random_builder="dicetalk_bench.model.official:write_random_svd_xt",
        manual=("huggingface-cli download stabilityai/stable-video-diffusion-img2vid-xt --local-dir "
                "$DICETALK_BENCH_WEIGHTS_DIR/stable-video-diffusion-img2vid-xt (gated: accept the licence first)"),
        notes="diffusers folder; the manifest covers every non-hidden file you downloaded, so pin it with verify --pin",
    ),
    WeightsEntry(
        key="whisper-tiny", filename="whisper-tiny", kind="folder", sha256=None, size_bytes=None,
        licence="MIT (OpenAI Whisper)", source_url="https://huggingface.co/openai/whisper-tiny",
        component="dicetalk_bench.preprocessing.whisper (audio features)",
        random_builder="dicetalk_bench.preprocessing.whisper:write_random_whisper_tiny",
        manual="huggingface-cli download openai/whisper-tiny --local-dir $DICETALK_BENCH_WEIGHTS_DIR/whisper-tiny",
        notes="transformers folder",
    ),
    WeightsEntry(
        key="dicetalk-unet", filename="unet.pth", kind="file", sha256=None, size_bytes=None, licence=_NC,
        source_url=_DICETALK_HF, component="dicetalk_bench.model (fine-tuned SVD UNet with IP-adapter branches)",
        random_builder="dicetalk_bench.model.official:write_random_unet", manual=_DICETALK_MANUAL,
        notes="loaded strict=False on top of svd-xt/unet upstream",
    ),
    WeightsEntry(
        key="dicetalk-pose-guider", filename="pose_guider.pth", kind="file", sha256=None, size_bytes=None,
        licence=_NC, source_url=_DICETALK_HF, component="dicetalk_bench.model (PoseGuider)",
        random_builder="dicetalk_bench.model.official:write_random_pose_guider", manual=_DICETALK_MANUAL,
    ),
    WeightsEntry(
        key="dicetalk-audio-linear", filename="audio_linear.pth", kind="file", sha256=None, size_bytes=None,
        licence=_NC, source_url=_DICETALK_HF, component="dicetalk_bench.model (AudioProjModel)",
        random_builder="dicetalk_bench.model.official:write_random_audio_linear", manual=_DICETALK_MANUAL,
    ),
    WeightsEntry(
        key="dicetalk-emo-model", filename="emo_model.pth", kind="file", sha256=None, size_bytes=None,
        licence=_NC, source_url=_DICETALK_HF, component="dicetalk_bench.model (EmotionModel: bank, attention)",
        random_builder="dicetalk_bench.model.official:write_random_emo_model", manual=_DICETALK_MANUAL,
    ),
    WeightsEntry(
        key="dicetalk-priors", filename="emo", kind="folder",
        # Manifest of the 8 released priors (toto222/DICE-Talk@a8a92b1 examples/emo/*.npy), computed from the
        # copies in the reference notes (shared/reference/official_priors), 1,403 bytes each.
        sha256="65d53f47d3fecfee64e44590425740d0def7dc7b434913cb6858b2ae397bc1ba", size_bytes=8 * 1403,
        licence=_NC + "; MEAD-derived emotion set (" + _MEAD_NC + ")",
        source_url="https://github.com/toto222/DICE-Talk/tree/a8a92b1/examples/emo",
        component="dicetalk_bench.model (P-mode emotion priors mu, (1, 256) float32 each)",
        random_builder="dicetalk_bench.weights:write_random_priors",
        manual=("copy examples/emo/*.npy of a toto222/DICE-Talk checkout (commit a8a92b1) into "
                "$DICETALK_BENCH_WEIGHTS_DIR/emo/"),
        files=_PRIOR_NAMES, sha256_source="reference note official_priors (release files at a8a92b1)",
        notes="pickled .npy (dict {'mu': array}); load through a restricted unpickler",
    ),
    WeightsEntry(
        key="rife-hdv3", filename="flownet.pkl", kind="file", sha256=None, size_bytes=None,
        licence="MIT (RIFE, Huang et al. ECCV 2022: megvii-research/ECCV2022-RIFE, hzwer/Practical-RIFE)",
        source_url=_DICETALK_HF + " (RIFE/flownet.pkl)",
        component="dicetalk_bench.model.rife (12.5 -> 25 fps interpolation of the release's sampling)",
        random_builder="dicetalk_bench.model.rife:write_random_rife", manual=_DICETALK_MANUAL,
        notes="HDv3 IFNet state dict with a `module.` prefix (DataParallel); which RIFE HDv3 version the release "
              "ships is not stated, so pin the downloaded file with verify --pin",
    ),
    # ---- Metric extractors (metrics.md §1-§6) -------------------------------------------------------------------
    WeightsEntry(
        key="inception-fid", filename="pt_inception-2015-12-05-6726825d.pth", kind="file",
        sha256="6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2", size_bytes=None,
        licence="Apache-2.0 (pytorch-fid / torch-fidelity port of TF inception-2015-12-05)",
        source_url="https://github.com/mseitzer/pytorch-fid/releases/tag/fid_weights",
        component="dicetalk_bench.metrics.inception (FID)", torch_hub=True,
        random_builder="dicetalk_bench.metrics.inception:write_random_weights",
        download_url=("https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
                      "pt_inception-2015-12-05-6726825d.pth"),
        alt_filenames=("weights-inception-2015-12-05-6726825d.pth",),
        sha256_source="torch.hub name prefix 6726825d; full hash recorded identically by several public projects",
        notes="torch-fidelity ships the same bytes as weights-inception-2015-12-05-6726825d.pth (either name is found)",
    ),
    WeightsEntry(
        key="i3d-400", filename="i3d_pretrained_400.pt", kind="file", sha256=None, size_bytes=None,
        licence="Apache-2.0 (piergiaj/pytorch-i3d port of DeepMind Kinetics-400 I3D)",
        source_url="https://github.com/songweige/TATS (tats/fvd/i3d_pretrained_400.pt)",
        component="dicetalk_bench.metrics.i3d (FVD, videogpt/cd-fvd layout)",
        random_builder="dicetalk_bench.metrics.i3d:write_random_weights",
        manual="i3d_pretrained_400.pt from github.com/songweige/TATS (tats/fvd/), as cd-fvd and DisCo use it",
    ),
    WeightsEntry(
        key="i3d-torchscript", filename="i3d_torchscript.pt", kind="file", sha256=None, size_bytes=None,
        licence="unstated (StyleGAN-V release; the repository has no LICENSE file)",
        source_url="https://github.com/universome/stylegan-v (src/metrics/frechet_video_distance.py)",
        component="dicetalk_bench.metrics.i3d (FVD, StyleGAN-V TorchScript backend)",
        manual="the i3d_torchscript.pt link in universome/stylegan-v src/metrics/frechet_video_distance.py",
        notes="TorchScript: loaded with load_torchscript() only after the hash check",
    ),
    WeightsEntry(
        key="syncnet", filename="syncnet_v2.model", kind="file",
        sha256="961e8696f888fce4f3f3a6c3d5b3267cf5b343100b238e79b2659bff2c605442", size_bytes=54_573_114,
        licence="research use, Creative Commons Attribution (VGG lipsync page); code MIT",
        source_url="https://www.robots.ox.ac.uk/~vgg/software/lipsync/", component="dicetalk_bench.metrics.syncnet",
        random_builder="dicetalk_bench.metrics.syncnet:write_random_weights",
        download_url=_VGG_LIPSYNC + "syncnet_v2.model",
        sha256_source="prefix/suffix 961e8696...5442 in syncnet-python 0.2.3 METADATA; full hash from public projects",
    ),
    WeightsEntry(
        key="fan-2d", filename="2DFAN4-11f355bf06.pth.tar", kind="file",
        sha256="11f355bf0693120222f5955ce3f9dc8fb5763ebb30a47d7906e509490d32e4aa", size_bytes=None,
        licence="BSD-3-Clause (face-alignment, A. Bulat)", source_url=_ADRIANB + "2DFAN4-11f355bf06.pth.tar",
        component="dicetalk_bench.preprocessing.landmarks (face-alignment FAN, 68 landmarks)", torch_hub=True,
        random_builder="dicetalk_bench.preprocessing.landmarks:write_random_fan",
        download_url=_ADRIANB + "2DFAN4-11f355bf06.pth.tar",
        sha256_source="torch.hub name prefix 11f355bf06; full hash recorded by a public project",
    ),
    WeightsEntry(
        key="s3fd", filename="s3fd-619a316812.pth", kind="file",
        sha256="619a31681264d3f7f7fc7a16a42cbbe8b23f31a256f75a366e5a1bcd59b33543", size_bytes=None,
        licence="BSD-3-Clause (face-alignment, A. Bulat)", source_url=_ADRIANB + "s3fd-619a316812.pth",
        component="dicetalk_bench.preprocessing.landmarks (face-alignment S3FD detector)", torch_hub=True,
        random_builder="dicetalk_bench.preprocessing.landmarks:write_random_s3fd",
        download_url=_ADRIANB + "s3fd-619a316812.pth",
        sha256_source="torch.hub name prefix 619a316812; full hash recorded by a public project",
    ),
    WeightsEntry(
        key="lpips-alex", filename="alexnet-owt-7be5be79.pth", kind="file",
        sha256="7be5be791159472b1fbf3c69796f7cb30dca7ad8466c2df70058c37116cdee02", size_bytes=244_862_944,
        licence=("BSD-3-Clause (torchvision); ImageNet-trained weights: ImageNet terms (non-commercial research). "
                 "LPIPS linear layers: BSD-2-Clause, inside the lpips wheel"),
        source_url="https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
        component="dicetalk_bench.metrics.pixel (LPIPS, net='alex', version 0.1)", torch_hub=True,
        random_builder="dicetalk_bench.metrics.pixel:write_random_weights",
        download_url="https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
        sha256_source="torch.hub name prefix 7be5be79; full hash recorded by a public project",
        notes=("this is the AlexNet backbone that lpips.LPIPS(net='alex') loads through torchvision from "
               "$TORCH_HOME/hub/checkpoints; the linear layers lpips/weights/v0.1/alex.pth ship in the lpips 0.1.4 "
               "wheel (sha256 df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0, 6,009 bytes)"),
    ),
    WeightsEntry(
        key="emotion-fan", filename="self_relation-attention_61_84.3655", kind="file", sha256=None,
        size_bytes=None,
        licence="non-commercial research: trained on MEAD (" + _MEAD_NC + "); Emotion-FAN code licence unstated",
        source_url="https://github.com/yuangan/evaluation_eat (authors' Google Drive archive)",
        component="dicetalk_bench.metrics.emotion (Emo-Acc, Emotion-FAN ResNet18 MEAD-8, EAT protocol)",
        random_builder="dicetalk_bench.metrics.emotion:write_random_weights",
        manual="the Emotion-FAN MEAD checkpoint in the evaluation_eat Google Drive archive (yuangan/evaluation_eat)",
    ),
    WeightsEntry(
        key="hsemotion-enet-b0-8", filename="enet_b0_8_best_afew.pt", kind="file", sha256=None, size_bytes=None,
        licence="Apache-2.0 (HSEmotion code and models); trained on AffectNet (research-use dataset licence)",
        source_url="https://github.com/HSE-asavchenko/face-emotion-recognition (models/affectnet_emotions)",
        component="dicetalk_bench.metrics.emotion (Emo-Acc, HSEmotion EfficientNet-B0 AffectNet-8)",
        manual="enet_b0_8_best_afew.pt from github.com/HSE-asavchenko/face-emotion-recognition (models/)",
        random_builder="dicetalk_bench.metrics.hsemotion:write_random_weights",
        pickled=True, converted_filename="enet_b0_8_best_afew.safetensors",
        notes="a whole pickled timm model: run `weights convert hsemotion-enet-b0-8 --trust-pickle IN OUT` once",
    ),
    WeightsEntry(
        key="arcface-r100", filename="arcface_r100.pth", kind="file", sha256=None, size_bytes=None,
        licence="insightface pretrained models: non-commercial research only",
        source_url="https://github.com/deepinsight/insightface (model_zoo, ArcFace ResNet-100)",
        component="dicetalk_bench.metrics.identity (CSIM)",
        random_builder="dicetalk_bench.metrics.identity:write_random_weights",
        manual="an ArcFace ResNet-100 state dict from the insightface model zoo, saved as arcface_r100.pth",
    ),
    WeightsEntry(
        key="blazeface-short", filename="face_detection_short_range.tflite", kind="file",
        sha256="bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8", size_bytes=229_714,
        licence="Apache-2.0 (MediaPipe)", source_url="https://pypi.org/project/mediapipe/0.10.21/",
        component="dicetalk_bench.preprocessing.faces (BlazeFace short range, faces within ~2 m)",
        wheel=(MEDIAPIPE_WHEEL_SPEC, "mediapipe/modules/face_detection/face_detection_short_range.tflite"),
        sha256_source="computed from the mediapipe 0.10.21 cp311 manylinux_2_28_x86_64 wheel",
    ),
    WeightsEntry(
        key="blazeface-full", filename="face_detection_full_range_sparse.tflite", kind="file",
        sha256="2c3728e6da56f21e21a320433396fb06d40d9088f2247c05e5635a688d45dfe1", size_bytes=676_746,
        licence="Apache-2.0 (MediaPipe)", source_url="https://pypi.org/project/mediapipe/0.10.21/",
        component="dicetalk_bench.preprocessing.faces (BlazeFace full range sparse, for 1080p frames)",
        wheel=(MEDIAPIPE_WHEEL_SPEC, "mediapipe/modules/face_detection/face_detection_full_range_sparse.tflite"),
        sha256_source="computed from the mediapipe 0.10.21 cp311 manylinux_2_28_x86_64 wheel",
    ),
)


def _check_table(entries: Iterable[WeightsEntry]) -> dict[str, WeightsEntry]:
    """Refuse duplicate keys, bad kinds and malformed hashes (a registry that refuses invalid names)."""
    table: dict[str, WeightsEntry] = {}
    for e in entries:
        if e.key in table:
            raise WeightsError(f"duplicate weights key {e.key!r} in the registry")
        if e.kind not in ("file", "folder"):
            raise WeightsError(f"weights entry {e.key!r}: kind must be 'file' or 'folder', not {e.kind!r}")
        if e.sha256 is not None and (len(e.sha256) != 64 or any(c not in "0123456789abcdef" for c in e.sha256)):
            raise WeightsError(f"weights entry {e.key!r}: sha256 must be 64 lower-case hex digits, not {e.sha256!r}")
        if e.random_builder is not None and ":" not in e.random_builder:
            raise WeightsError(f"weights entry {e.key!r}: random_builder must be 'module:function'")
        table[e.key] = e
    return table


_BUILTIN = _check_table(_ENTRIES)
_OVERRIDES: list[dict[str, WeightsEntry]] = []
_OVERRIDE_LOCK = threading.Lock()


class _RegistryView(Mapping[str, WeightsEntry]):
    """Read-only view of the built-in table plus any :func:`registry_override` layers (innermost wins)."""

    def _merged(self) -> dict[str, WeightsEntry]:
        merged = dict(_BUILTIN)
        for layer in _OVERRIDES:
            merged.update(layer)
        return merged

    def __getitem__(self, key: str) -> WeightsEntry:
        merged = self._merged()
        if key not in merged:
            raise UnknownWeightsKeyError(
                f"unknown weights key {key!r}; known keys: {', '.join(sorted(merged))}")
        return merged[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._merged())

    def __len__(self) -> int:
        return len(self._merged())


REGISTRY: Mapping[str, WeightsEntry] = _RegistryView()


@contextlib.contextmanager
def registry_override(extra_entries: Iterable[WeightsEntry]) -> Iterator[Mapping[str, WeightsEntry]]:
    """Add (or replace) entries for the duration of a ``with`` block, e.g. a test-only entry.

    >>> with registry_override([WeightsEntry(key="toy", ...)]):
    ...     resolve("toy", path)
    """
    layer = _check_table(extra_entries)
    with _OVERRIDE_LOCK:
        _OVERRIDES.append(layer)
    try:
        yield REGISTRY
    finally:
        with _OVERRIDE_LOCK:
            _OVERRIDES.remove(layer)


def get_entry(key: str) -> WeightsEntry:
    """The registry entry for ``key``; :class:`UnknownWeightsKeyError` lists the known keys."""
    return REGISTRY[key]


# --------------------------------------------------------------------------------------------------------------
# Locations
# --------------------------------------------------------------------------------------------------------------
def env_var_for(key: str) -> str:
    """``DICETALK_BENCH_<KEY>_WEIGHTS`` with the key upper-cased and ``-`` replaced by ``_``."""
    return f"{_ENV_PREFIX}{key.upper().replace('-', '_')}{_ENV_SUFFIX}"


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


# --------------------------------------------------------------------------------------------------------------
# Hashing (with a (path, size, mtime) cache so multi-GB files are hashed once)
# --------------------------------------------------------------------------------------------------------------
_CACHE_LOCK = threading.Lock()


def _load_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        logger.warning("ignoring unreadable %s (%s)", path, exc)
        return {}
    return data if isinstance(data, dict) else {}


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file, reusing a cached value while the file's (resolved path, size, mtime_ns) are unchanged.

    The cache is a small JSON (:func:`hash_cache_path`); a file whose size, mtime, ctime or inode changed is
    re-hashed. A cache
    that cannot be written (read-only home) only costs time.
    """
    p = Path(path).resolve()
    st = p.stat()
    cache_file = hash_cache_path()
    # ctime and inode too: an in-place rewrite within the mtime granularity still changes ctime
    ident = f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}"
    with _CACHE_LOCK:
        cached = _load_json(cache_file).get(str(p))
    if isinstance(cached, dict) and cached.get("id") == ident and isinstance(cached.get("sha256"), str):
        return cached["sha256"]
    digest = sha256_file(p)
    with _CACHE_LOCK:
        data = _load_json(cache_file)
        data[str(p)] = {"id": ident, "sha256": digest}
        try:
            atomic_write_bytes(cache_file, json.dumps(data, indent=0, sort_keys=True).encode())
        except OSError as exc:
            logger.warning("cannot write the hash cache %s (%s); files will be re-hashed next time", cache_file, exc)
    return digest


def _folder_files(folder: Path, files: Sequence[str]) -> list[str]:
    if files:
        return sorted(files)
    found = []
    for p in folder.rglob("*"):
        rel = p.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts) or not p.is_file():
            continue  # hidden files (e.g. .cache/huggingface from `huggingface-cli download`) are not content
        found.append(rel.as_posix())
    return sorted(found)


def folder_manifest(folder: str | os.PathLike, files: Sequence[str] = ()) -> str:
    """The manifest text of a folder: one ``"<relpath> <sha256>\\n"`` line per file, sorted by relpath.

    ``files`` limits it to these relative paths (all must exist); empty means every non-hidden file, recursively.
    The folder's hash is the sha256 of this text (UTF-8); see :func:`folder_sha256`.
    """
    folder = Path(folder)
    rels = _folder_files(folder, files)
    missing = [r for r in rels if not (folder / r).is_file()]
    if missing:
        raise WeightsNotFoundError(f"folder {folder} is incomplete: missing {', '.join(missing)}")
    if not rels:
        raise WeightsNotFoundError(f"folder {folder} holds no files")
    return "".join(f"{rel} {file_sha256(folder / rel)}\n" for rel in rels)


def folder_sha256(folder: str | os.PathLike, files: Sequence[str] = ()) -> str:
    """sha256 of :func:`folder_manifest` (per-file hashes come from the cache when unchanged)."""
    return hashlib.sha256(folder_manifest(folder, files).encode("utf-8")).hexdigest()


def _hash_of(entry: WeightsEntry, path: Path) -> str:
    return folder_sha256(path, entry.files) if entry.kind == "folder" else file_sha256(path)


# --------------------------------------------------------------------------------------------------------------
# User pins
# --------------------------------------------------------------------------------------------------------------
PINS_VERSION = 2  # version 1 pins have no "calibrated" field and are read as calibrated=False


def read_pins() -> dict[str, dict[str, Any]]:
    """The user pins ``{key: {"sha256", "file", "pinned_at", "calibrated", "by"}}`` from :func:`pins_path` (empty
    if none)."""
    pins = _load_json(pins_path()).get("pins", {})
    return pins if isinstance(pins, dict) else {}


def pin_calibrates(user_pin: Mapping[str, Any]) -> bool:
    """Whether a user pin makes a matching file count as calibrated: only a pin the user recorded as verified
    (``verify --pin``, or ``convert`` of a calibrated source) does; version 1 pins, which did not say, do not."""
    return user_pin.get("calibrated") is True


def pin(key: str, sha256: str, file: str | os.PathLike, *, calibrated: bool = True, by: str = "verify --pin",
        source_sha256: str | None = None) -> Path:
    """Record ``sha256`` as the user's pin for an entry that has no official hash; returns the pin file.

    ``calibrated=True`` (``verify --pin``): the user verified the file, so results made with a file of this hash
    count as calibrated, labelled "pinned by user". ``convert`` records its output with the calibration of its
    source (``source_sha256``). Replaces an earlier pin of ``key``.
    """
    entry = get_entry(key)
    if entry.sha256 is not None:
        raise WeightsError(f"{key} has an official sha256 ({entry.sha256}); user pins are only for unpinned entries")
    target = pins_path()
    data = _load_json(target)
    pins = data.get("pins") if isinstance(data.get("pins"), dict) else {}
    record: dict[str, Any] = {"sha256": sha256, "file": str(file), "calibrated": bool(calibrated), "by": by,
                              "pinned_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    if source_sha256 is not None:
        record["source_sha256"] = source_sha256
    pins[key] = record
    atomic_write_bytes(target, json.dumps({"version": PINS_VERSION, "pins": pins}, indent=2,
                                          sort_keys=True).encode())
    return target


# --------------------------------------------------------------------------------------------------------------
# Resolution
# --------------------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class ResolvedWeights:
    """A located, hash-checked weights file or folder.

    ``calibrated`` is True when ``sha256`` equals the official pinned hash (``pinned_by="published"``), or a hash
    the user pinned as verified with ``verify --pin`` (``pinned_by="user"``: labelled "pinned by user" in reports,
    since the hash is not a published one). ``verified_by`` says what the hash was checked against:
    ``"official"``, ``"user-pin"`` (pins.json) or ``"unverified"`` (accepted with ``allow_unverified``).
    """

    key: str
    path: Path
    sha256: str
    calibrated: bool
    verified_by: str = "official"
    pinned_by: str | None = "published"  # "published" | "user" | None (unverified)

    def record(self) -> dict[str, Any]:
        """What every result file and checkpoint stores about the weights it used."""
        return {"key": self.key, "file": str(self.path), "sha256": self.sha256, "calibrated": self.calibrated,
                "verified_by": self.verified_by, "pinned_by": self.pinned_by}


@dataclasses.dataclass(frozen=True)
class _Place:
    label: str          # "explicit path", "env DICETALK_BENCH_X_WEIGHTS", "weights dir", "torch hub cache"
    candidates: tuple[Path, ...]
    official: bool
    decisive: bool      # set by the user: a miss there is an error, not a fall-through


def _candidates_in(entry: WeightsEntry, p: Path) -> tuple[Path, ...]:
    """A user path may be the file itself or, for a file entry, a folder holding it under a canonical name."""
    if entry.kind == "file" and p.is_dir():
        return tuple(p / n for n in entry.all_filenames)
    return (p,)


def _places(entry: WeightsEntry, path: str | os.PathLike | None) -> list[_Place]:
    places: list[_Place] = []
    if path is not None:
        p = Path(path).expanduser()
        places.append(_Place(f"explicit path {p}", _candidates_in(entry, p), official=False, decisive=True))
        return places
    env_value = os.environ.get(entry.env_var)
    if env_value:
        p = Path(env_value).expanduser()
        places.append(_Place(f"env {entry.env_var}={p}", _candidates_in(entry, p), official=False, decisive=True))
        return places
    wdir = weights_dir()
    places.append(_Place(f"{WEIGHTS_DIR_ENV} {wdir}", tuple(wdir / n for n in entry.all_filenames),
                         official=True, decisive=False))
    if entry.torch_hub:
        hub = torch_hub_checkpoints_dir()
        places.append(_Place(f"torch hub cache {hub}", tuple(hub / n for n in entry.all_filenames),
                             official=True, decisive=False))
    return places


def _exists(entry: WeightsEntry, p: Path) -> bool:
    return p.is_dir() if entry.kind == "folder" else p.is_file()


def _searched_text(entry: WeightsEntry, places: Sequence[_Place]) -> str:
    lines = [f"  - {pl.label}: " + ", ".join(str(c) for c in pl.candidates) for pl in places]
    if places and places[0].label.startswith(WEIGHTS_DIR_ENV):
        lines.insert(0, f"  - explicit path: none given; env {entry.env_var}: unset")
    return "\n".join(lines)


def _not_found(entry: WeightsEntry, places: Sequence[_Place], extra: str = "") -> WeightsNotFoundError:
    expected = entry.sha256 or "not pinned"
    msg = (f"weights {entry.key!r} ({entry.kind} {entry.filename}, sha256 {expected}) not found{extra}; looked in:\n"
           f"{_searched_text(entry, places)}\n"
           f"To get it, {entry.fetch_hint()} (or set {entry.env_var} to its path). Licence: {entry.licence}.")
    return WeightsNotFoundError(msg)


def _check(entry: WeightsEntry, found: Path, place: _Place, allow_unverified: bool) -> ResolvedWeights:
    try:
        actual = _hash_of(entry, found)
    except WeightsNotFoundError as exc:  # a folder with listed files missing
        raise WeightsNotFoundError(f"weights {entry.key!r}: {exc}; {entry.fetch_hint()}") from exc
    if entry.sha256 is not None:
        if actual == entry.sha256:
            return ResolvedWeights(entry.key, found, actual, True, "official")
        expected, against = entry.sha256, "the official sha256"
    else:
        user = read_pins().get(entry.key, {})
        expected = user.get("sha256") if isinstance(user, dict) else None
        if expected == actual:
            return ResolvedWeights(entry.key, found, actual, pin_calibrates(user), "user-pin", "user")
        against = f"your pin in {pins_path()}" if expected else None
    if place.official and expected is not None:
        raise WeightsHashMismatchError(
            f"weights {entry.key!r}: {found} has sha256 {actual} but {against} is {expected}; the file is corrupt, "
            f"truncated or a different release. Replace it ({entry.fetch_hint()}), or to use your own file on "
            f"purpose pass its path (or set {entry.env_var}) with --allow-unverified (results are then marked "
            f"uncalibrated).")
    if allow_unverified:
        logger.warning("using unverified weights %s for %r (sha256 %s): results are marked uncalibrated",
                       found, entry.key, actual)
        return ResolvedWeights(entry.key, found, actual, False, "unverified", None)
    if expected is not None:
        raise WeightsHashMismatchError(
            f"weights {entry.key!r}: {found} has sha256 {actual} but {against} is {expected}; pass "
            f"allow_unverified=True (CLI --allow-unverified) to use it anyway, marked uncalibrated.")
    raise WeightsHashMismatchError(
        f"weights {entry.key!r}: {found} (sha256 {actual}) cannot be verified: no public sha256 is pinned for "
        f"{entry.filename}. Record it with `python -m dicetalk_bench.weights verify {entry.key} --pin` if you trust "
        f"the file, or pass allow_unverified=True (CLI --allow-unverified); results are marked uncalibrated.")


def resolve(key: str, path: str | os.PathLike | None = None, *, allow_unverified: bool = False) -> ResolvedWeights:
    """Find the weights for ``key`` offline and check their sha256.

    Order: ``path`` > env ``DICETALK_BENCH_<KEY>_WEIGHTS`` > ``$DICETALK_BENCH_WEIGHTS_DIR/<filename>`` >
    ``$TORCH_HOME/hub/checkpoints/<filename>`` (torch_hub entries). A file at an official location (the last two)
    whose hash differs from the pin is refused; a user's file (path or env var) that is unpinned or differs is
    accepted only with ``allow_unverified`` and marked uncalibrated.

    Raises :class:`WeightsNotFoundError` (naming key, file, expected hash, every place searched and how to get it),
    :class:`WeightsHashMismatchError` or :class:`UnknownWeightsKeyError`.
    """
    entry = get_entry(key)
    places = _places(entry, path)
    for place in places:
        for cand in place.candidates:
            if _exists(entry, cand):
                return _check(entry, cand, place, allow_unverified)
        if place.decisive:
            break
    raise _not_found(entry, places)


def find(key: str, path: str | os.PathLike | None = None) -> Path | None:
    """Where :func:`resolve` would look first and find something, without hashing (None if nothing is there)."""
    entry = get_entry(key)
    for place in _places(entry, path):
        for cand in place.candidates:
            if _exists(entry, cand):
                return cand
        if place.decisive:
            return None
    return None


def require(key: str, path: str | os.PathLike | None = None, *, hint: str = "") -> Path:
    """Where ``key`` is (as :func:`find`, no hashing), or the :class:`WeightsNotFoundError` that :func:`resolve`
    would raise (every place searched, how to get it) with ``hint`` appended: a cheap check before a model loads."""
    found = find(key, path)
    if found is not None:
        return found
    entry = get_entry(key)
    raise WeightsNotFoundError(str(_not_found(entry, _places(entry, path))) + hint)


# --------------------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------------------
def _recheck(resolved: ResolvedWeights) -> None:
    """Refuse a file that changed since it was resolved (cheap: the hash cache keys on size and mtime)."""
    entry = get_entry(resolved.key)
    actual = _hash_of(entry, resolved.path)
    if actual != resolved.sha256:
        raise WeightsHashMismatchError(
            f"weights {resolved.key!r}: {resolved.path} changed after it was resolved "
            f"(sha256 {actual}, resolved as {resolved.sha256}); resolve it again")


def load_state_dict(resolved: ResolvedWeights, *, subkey: str | None = None) -> dict[str, Any]:
    """Load a state dict on the CPU without running pickled code.

    ``.safetensors`` files go through safetensors; everything else through ``torch.load(weights_only=True)``.
    ``subkey`` unwraps checkpoints saved as ``{subkey: state_dict, ...}``. Whole pickled models are refused: run
    ``python -m dicetalk_bench.weights convert KEY --trust-pickle IN OUT`` once.
    """
    if not isinstance(resolved, ResolvedWeights):
        raise TypeError(f"load_state_dict needs a ResolvedWeights from resolve(), not {type(resolved).__name__}")
    entry = get_entry(resolved.key)
    path = resolved.path
    if entry.kind == "folder" or path.is_dir():
        raise WeightsError(f"weights {resolved.key!r} is a folder ({path}); load it with from_pretrained(path)")
    _recheck(resolved)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return dict(load_file(str(path), device="cpu"))
    if entry.pickled:
        raise WeightsError(
            f"weights {resolved.key!r}: {path} is a whole pickled model, which cannot be loaded safely; convert it "
            f"once with `python -m dicetalk_bench.weights convert {resolved.key} --trust-pickle {path} OUT.safetensors`")
    import pickle

    import torch

    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as exc:
        raise WeightsError(
            f"weights {resolved.key!r}: cannot load {path} as a state dict with weights_only=True ({exc}); if it is a "
            f"whole pickled model, convert it with `python -m dicetalk_bench.weights convert {resolved.key} "
            f"--trust-pickle {path} OUT.safetensors`") from exc
    if subkey is not None:
        if not isinstance(obj, Mapping) or subkey not in obj:
            raise WeightsError(f"weights {resolved.key!r}: {path} has no top-level key {subkey!r}")
        obj = obj[subkey]
    if not isinstance(obj, Mapping):
        raise WeightsError(f"weights {resolved.key!r}: {path} holds a {type(obj).__name__}, not a state dict")
    return dict(obj)


def load_torchscript(resolved: ResolvedWeights, map_location: str = "cpu") -> Any:
    """``torch.jit.load`` of a TorchScript file, only after its hash was checked by :func:`resolve`."""
    if not isinstance(resolved, ResolvedWeights):
        raise TypeError("load_torchscript needs a ResolvedWeights from resolve() (the hash check comes first)")
    _recheck(resolved)
    import warnings

    import torch

    with warnings.catch_warnings():
        # TorchScript is deprecated upstream, but the StyleGAN-V I3D is only published in that format
        warnings.filterwarnings("ignore", category=FutureWarning, message=".*torch.jit.*")
        return torch.jit.load(str(resolved.path), map_location=map_location)


# --------------------------------------------------------------------------------------------------------------
# torch.hub cache for third-party code (face-alignment, lpips/torchvision)
# --------------------------------------------------------------------------------------------------------------
def private_cache_root() -> Path:
    return _xdg_cache() / "dicetalk_bench" / "torch_home"


def torch_hub_dir_for(keys: Iterable[str], *, paths: Mapping[str, str | os.PathLike] | None = None,
                      allow_unverified: bool = False) -> Path:
    """A private TORCH_HOME whose ``hub/checkpoints`` exposes exactly the resolved, hash-checked files for ``keys``.

    Third-party code that only looks in the torch.hub cache (face-alignment's FAN and S3FD, torchvision's AlexNet in
    lpips) then finds the verified files and nothing else. Files are exposed as symlinks under their canonical
    name, in a folder named after the resolved hashes. Use :func:`use_torch_home` to set it for one call.
    """
    paths = dict(paths or {})
    resolved = [resolve(k, paths.get(k), allow_unverified=allow_unverified) for k in keys]
    if not resolved:
        raise WeightsError("torch_hub_dir_for needs at least one key")
    for r in resolved:
        if get_entry(r.key).kind != "file":
            raise WeightsError(f"weights {r.key!r} is a folder and cannot be exposed in a torch.hub cache")
    tag = hashlib.sha256("".join(f"{r.key} {r.path.resolve()} {r.sha256}\n"
                                 for r in sorted(resolved, key=lambda r: r.key)).encode()).hexdigest()[:16]
    home = private_cache_root() / tag
    ckpt = home / "hub" / "checkpoints"
    ckpt.mkdir(parents=True, exist_ok=True)
    for r in resolved:
        link = ckpt / get_entry(r.key).filename
        target = r.path.resolve()
        if (link.is_symlink() and Path(os.readlink(link)) == target) or (
                link.is_file() and not link.is_symlink() and os.path.samefile(link, target)):
            continue
        tmp = ckpt / f".{link.name}.{os.getpid()}.tmp"
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        try:
            os.symlink(target, tmp)
        except OSError:  # no symlinks (some Windows setups): a hard link shares the checked bytes too
            os.link(target, tmp)
        os.replace(tmp, link)
    return home


@contextlib.contextmanager
def use_torch_home(keys: Iterable[str], **kwargs: Any) -> Iterator[Path]:
    """Set TORCH_HOME (and torch.hub's dir) to :func:`torch_hub_dir_for` ``(keys)`` inside the block, then restore."""
    home = torch_hub_dir_for(keys, **kwargs)
    import torch.hub

    old_env = os.environ.get("TORCH_HOME")
    # torch.hub keeps an explicit set_dir() in a module global; None means "follow $TORCH_HOME", restore exactly that
    old_dir = getattr(torch.hub, "_hub_dir", None)
    os.environ["TORCH_HOME"] = str(home)
    torch.hub.set_dir(str(home / "hub"))
    try:
        yield home
    finally:
        if old_env is None:
            os.environ.pop("TORCH_HOME", None)
        else:
            os.environ["TORCH_HOME"] = old_env
        if hasattr(torch.hub, "_hub_dir"):
            torch.hub._hub_dir = old_dir
        elif old_dir is not None:
            torch.hub.set_dir(old_dir)


# --------------------------------------------------------------------------------------------------------------
# Fetch (the only network access in the package; never called at run time)
# --------------------------------------------------------------------------------------------------------------
def download(url: str, target: str | os.PathLike, sha256: str | None, *, timeout_s: float = 60.0) -> str:
    """Stream ``url`` to a temporary file beside ``target``, check its sha256, then rename it onto ``target``.

    With ``sha256`` None the hash is only computed. A mismatch deletes the temporary file and raises
    :class:`WeightsHashMismatchError`; nothing is left under ``target``. Returns the hex sha256.
    """
    target = Path(target)
    h = hashlib.sha256()
    with atomic_path(target) as tmp:
        req = urllib.request.Request(url, headers={"User-Agent": "dicetalk_bench-weights"})
        try:
            with urllib.request.urlopen(req, timeout=timeout_s) as resp, open(tmp, "wb") as f:
                for block in iter(lambda: resp.read(_CHUNK), b""):
                    h.update(block)
                    f.write(block)
        except OSError as exc:  # URLError, HTTPError and timeouts are OSErrors
            raise WeightsError(f"cannot download {url} to {target}: {exc}") from exc
        digest = h.hexdigest()
        if sha256 is not None and digest != sha256:
            raise WeightsHashMismatchError(
                f"download of {url} has sha256 {digest}, expected {sha256}; nothing was written to {target}")
    return digest


def download_wheel(spec: str, dest_dir: str | os.PathLike) -> Path:
    """``python -m pip download`` one binary wheel (cp311, manylinux_2_28_x86_64) into ``dest_dir``; its path.

    The platform flags make pip pick the same wheel on any host, so the member hashes are always the pinned ones.
    """
    dest_dir = Path(dest_dir)
    cmd = [sys.executable, "-m", "pip", "download", *_WHEEL_PIP_FLAGS, "--disable-pip-version-check",
           "--dest", str(dest_dir), spec]
    logger.info("running %s", " ".join(cmd))
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wheels = sorted(dest_dir.glob("*.whl"))
    if proc.returncode != 0 or not wheels:
        raise WeightsError(f"pip download {spec} failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return wheels[0]


def extract_from_wheel(wheel: str | os.PathLike, member: str, target: str | os.PathLike,
                       sha256: str | None) -> str:
    """Copy ``member`` out of the zip ``wheel`` to ``target`` (atomic), after checking its sha256."""
    wheel = Path(wheel)
    try:
        with zipfile.ZipFile(wheel) as zf:
            data = zf.read(member)
    except KeyError:
        raise WeightsNotFoundError(f"{wheel} has no member {member}") from None
    except zipfile.BadZipFile as exc:
        raise WeightsError(f"{wheel} is not a valid wheel ({exc})") from exc
    digest = hashlib.sha256(data).hexdigest()
    if sha256 is not None and digest != sha256:
        raise WeightsHashMismatchError(
            f"{member} in {wheel} has sha256 {digest}, expected {sha256}; nothing was written to {target}")
    atomic_write_bytes(target, data)
    return digest


def fetch(keys: str | Iterable[str], *, force: bool = False, allow_unverified: bool = False,
          wheel: str | os.PathLike | None = None) -> list[Path]:
    """Download the files for ``keys`` into :func:`weights_dir`, hash-checked; a no-op for files already valid.

    ``wheel`` is a local copy of the wheel for wheel-sourced entries (skips pip). Unpinned entries are downloaded
    only with ``allow_unverified``. Entries without an automatic source raise :class:`WeightsError` with the
    manual download location.
    """
    keys = [keys] if isinstance(keys, str) else list(keys)
    entries = [get_entry(k) for k in keys]
    out: list[Path] = []
    wheel_cache: dict[str, Path] = {}
    with contextlib.ExitStack() as stack:
        for entry in entries:
            target = weights_dir() / entry.filename
            if not (entry.download_url or entry.wheel):
                raise WeightsError(f"weights {entry.key!r} has no automatic source; {entry.fetch_hint()}")
            if entry.sha256 is None and not allow_unverified:
                raise WeightsError(
                    f"weights {entry.key!r} has no pinned sha256, so a download cannot be verified; pass "
                    f"--allow-unverified to fetch it anyway and then `verify {entry.key} --pin`")
            if target.is_file() and not force:
                if entry.sha256 is None or file_sha256(target) == entry.sha256:
                    logger.info("%s already present%s: %s", entry.key,
                                " and valid" if entry.sha256 else " (unpinned)", target)
                    out.append(target)
                    continue
                logger.warning("%s: %s has the wrong sha256; fetching it again", entry.key, target)
            if entry.download_url:
                logger.info("downloading %s from %s", entry.key, entry.download_url)
                download(entry.download_url, target, entry.sha256)
            else:
                assert entry.wheel is not None
                spec, member = entry.wheel
                if wheel is not None:
                    wheel_path = Path(wheel)
                elif spec in wheel_cache:
                    wheel_path = wheel_cache[spec]
                else:
                    tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="dtb-wheel-")))
                    wheel_path = wheel_cache[spec] = download_wheel(spec, tmp)
                extract_from_wheel(wheel_path, member, target, entry.sha256)
            logger.info("%s -> %s", entry.key, target)
            out.append(target)
    return out


# --------------------------------------------------------------------------------------------------------------
# Random weights and conversion
# --------------------------------------------------------------------------------------------------------------
def _import_builder(entry: WeightsEntry) -> Any:
    if entry.random_builder is None:
        raise WeightsError(f"weights {entry.key!r} has no random builder (component: {entry.component})")
    module_name, _, func_name = entry.random_builder.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise WeightsError(
                f"cannot make random weights for {entry.key!r}: the component {module_name} is not installed "
                f"({exc}); it provides {entry.random_builder}") from exc
        raise
    fn = getattr(module, func_name, None)
    if fn is None:
        raise WeightsError(f"cannot make random weights for {entry.key!r}: {module_name} has no {func_name}")
    return fn


def make_random(key: str, out_dir: str | os.PathLike, seed: int = 0) -> Path:
    """Write random weights for ``key`` as ``out_dir/<filename>`` in the official format; returns the path.

    Calls the entry's ``random_builder(target, seed)``. The result is uncalibrated by construction (its hash never
    equals the official pin): use it through an explicit path or the env var with ``allow_unverified``.
    """
    entry = get_entry(key)
    builder = _import_builder(entry)
    target = Path(out_dir) / entry.filename
    target.parent.mkdir(parents=True, exist_ok=True)
    builder(target, int(seed))
    if not _exists(entry, target):
        raise WeightsError(f"random builder {entry.random_builder} did not write {target}")
    return target


def write_random_priors(target: Path, seed: int) -> None:
    """Random DICE-Talk emotion priors in the release format: ``target/<emotion>.npy``, each a pickled 0-d object
    array holding ``{'mu': (1, 256) float32}`` (std ≈ 0.86, like the released happy.npy; model.md §2)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    for name in _PRIOR_NAMES:
        mu = (rng.standard_normal((1, 256)) * 0.86).astype(np.float32)
        with atomic_path(target / name) as tmp, open(tmp, "wb") as f:
            np.save(f, np.array({"mu": mu}, dtype=object), allow_pickle=True)


def convert(key: str, src: str | os.PathLike, out: str | os.PathLike, *, trust_pickle: bool = False) -> Path:
    """Re-save a whole pickled model (or pickled checkpoint) as a safetensors state dict.

    Unpickling runs code from the file, so it requires ``trust_pickle=True``; the source's hash and calibration
    are written into the safetensors metadata, and the output's hash is recorded as the user pin for ``key`` when
    the entry has no official hash, so :func:`resolve` accepts the converted file.
    """
    if not trust_pickle:
        raise WeightsError("convert unpickles arbitrary code: pass --trust-pickle (trust_pickle=True) only for a "
                           "file from a source you trust")
    entry = get_entry(key)
    src_resolved = resolve(key, src, allow_unverified=True)
    import torch
    from safetensors.torch import save_file

    obj = torch.load(str(src_resolved.path), map_location="cpu", weights_only=False)
    if hasattr(obj, "state_dict") and callable(obj.state_dict):
        obj = obj.state_dict()
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"convert {key}: {src} holds neither a model nor a state dict of tensors")
    tensors = {k: v.detach().contiguous().clone() for k, v in obj.items()}
    out = Path(out)
    meta = {"dicetalk_bench.source_key": key, "dicetalk_bench.source_sha256": src_resolved.sha256,
            "dicetalk_bench.source_calibrated": str(src_resolved.calibrated)}
    with atomic_path(out, suffix=".safetensors") as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    if entry.sha256 is None:
        pin(key, file_sha256(out), out, calibrated=src_resolved.calibrated, by="convert",
            source_sha256=src_resolved.sha256)
    return out


# --------------------------------------------------------------------------------------------------------------
# Verify (used by the CLI)
# --------------------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class VerifyResult:
    key: str
    status: str  # calibrated | user-pinned | user-pinned-uncalibrated | unpinned | mismatch | missing | incomplete
    path: Path | None
    sha256: str | None
    detail: str = ""


def verify(key: str, path: str | os.PathLike | None = None) -> VerifyResult:
    """Hash what is present for ``key`` (at ``path``, else where :func:`resolve` would find it) and classify it;
    never raises for missing or mismatching files. A user pin recorded without verification (``convert`` of an
    unverified source, or a version 1 pin) is ``user-pinned-uncalibrated``."""
    entry = get_entry(key)
    found = find(key, path)
    if found is None:
        return VerifyResult(key, "missing", None, None, entry.fetch_hint())
    try:
        actual = _hash_of(entry, found)
    except WeightsNotFoundError as exc:
        return VerifyResult(key, "incomplete", found, None, str(exc))
    if entry.sha256 is not None:
        ok = actual == entry.sha256
        return VerifyResult(key, "calibrated" if ok else "mismatch", found, actual,
                            "" if ok else f"expected {entry.sha256}")
    user = read_pins().get(key, {})
    user_sha = user.get("sha256") if isinstance(user, dict) else None
    if user_sha is None:
        return VerifyResult(key, "unpinned", found, actual, f"record it with: verify {key} --pin")
    if user_sha == actual:
        if pin_calibrates(user):
            return VerifyResult(key, "user-pinned", found, actual, "calibrated, pinned by user")
        return VerifyResult(key, "user-pinned-uncalibrated", found, actual,
                            f"pinned by {user.get('by', 'an older version')} without verification; "
                            f"verify {key} --pin to count it as calibrated")
    return VerifyResult(key, "mismatch", found, actual, f"your pin is {user_sha}")


def pin_present(key: str, path: str | os.PathLike | None = None) -> VerifyResult:
    """``verify --pin KEY [PATH]``: record the hash of the file for ``key`` (at ``path``, else where
    :func:`resolve` finds it) as the user's verified pin, so results made with it count as calibrated ("pinned by
    user"). Entries with an official sha256 are not pinned (their status is returned unchanged); a file that
    differs from an earlier user pin replaces it (logged)."""
    res = verify(key, path)
    if get_entry(key).sha256 is not None or res.sha256 is None or res.path is None:
        return res
    if res.status == "user-pinned":
        return res
    old = read_pins().get(key, {})
    if res.status == "mismatch" and isinstance(old, dict):
        logger.warning("replacing your pin of %r (%s) by the hash of %s (%s)", key, old.get("sha256"), res.path,
                       res.sha256)
    target = pin(key, res.sha256, res.path)
    return dataclasses.replace(res, status="user-pinned", detail=f"calibrated, pinned by user in {target}")


# --------------------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dicetalk_bench.weights",
        description="List, verify, fetch, pin, randomise and convert the pretrained files dicetalk_bench uses. "
                    "Resolution order: explicit path > DICETALK_BENCH_<KEY>_WEIGHTS > $DICETALK_BENCH_WEIGHTS_DIR "
                    "(default ~/.cache/dicetalk_bench/weights) > $TORCH_HOME/hub/checkpoints (torch.hub files).")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("list", help="table of every entry: file, pinned?, present?, calibrated?, licence")
    p.add_argument("--json", action="store_true", help="print the registry as JSON instead")
    p.add_argument("--no-hash", action="store_true", help="do not hash present files (calibrated? shows '?')")
    p = sub.add_parser("verify", help="hash what is present; exit 1 on a mismatch or a requested key missing",
                       usage="%(prog)s [KEY ...] | --pin KEY [PATH] | --pin [KEY ...]")
    p.add_argument("keys", nargs="*", help="keys (default: all); with --pin, KEY PATH pins the file at PATH")
    p.add_argument("--pin", action="store_true",
                   help=f"record the hash of your verified copy of unpinned entries in the user pin file "
                        f"$DICETALK_BENCH_WEIGHTS_DIR/{PINS_FILENAME}: results made with it count as calibrated "
                        f"('pinned by user')")
    p = sub.add_parser("fetch", help="download files with a hash check into $DICETALK_BENCH_WEIGHTS_DIR")
    p.add_argument("keys", nargs="+")
    p.add_argument("--force", action="store_true", help="download even if a valid file is present")
    p.add_argument("--allow-unverified", action="store_true", help="allow downloading entries with no pinned hash")
    p.add_argument("--wheel", help="local copy of the wheel for wheel-sourced entries (skips pip download)")
    p = sub.add_parser("make-random", help="write random weights of the right architecture (uncalibrated)")
    p.add_argument("key")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="output folder (default: $DICETALK_BENCH_WEIGHTS_DIR/random, never searched)")
    p = sub.add_parser("convert", help="re-save a whole pickled model as a safetensors state dict")
    p.add_argument("key")
    p.add_argument("src", metavar="IN")
    p.add_argument("out", metavar="OUT")
    p.add_argument("--trust-pickle", action="store_true", help="required: unpickling runs code from the file")
    return parser


def _table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def _short(text: str, width: int = 72) -> str:
    text = text.split(";")[0]
    return text if len(text) <= width else text[: width - 1] + "…"


def _cmd_list(args: argparse.Namespace) -> int:
    if args.json:
        sys.stdout.write(json.dumps([dataclasses.asdict(REGISTRY[k]) for k in REGISTRY], indent=2) + "\n")
        return 0
    rows = [("key", "file", "pinned", "present", "calibrated", "licence")]
    for key in REGISTRY:
        e = REGISTRY[key]
        found = find(key)
        if found is None or args.no_hash:
            cal = "-" if found is None else "?"
        else:
            cal = {"calibrated": "yes", "user-pinned": "yes (pinned by user)",
                   "mismatch": "MISMATCH"}.get(verify(key).status, "no")
        rows.append((key, e.filename + ("/" if e.kind == "folder" else ""), "yes" if e.sha256 else "no",
                     "yes" if found else "no", cal, _short(e.licence)))
    sys.stdout.write(_table(rows) + "\n")
    return 0


def _verify_targets(items: Sequence[str], pin_mode: bool) -> list[tuple[str, str | None]]:
    """(key, path) pairs of ``verify``: every argument is a key, except ``--pin KEY PATH`` (a second argument that
    is not a registry key is the path of the file to pin)."""
    if pin_mode and len(items) == 2 and items[1] not in REGISTRY:
        get_entry(items[0])
        return [(items[0], items[1])]
    return [(get_entry(k).key, None) for k in items] if items else [(k, None) for k in REGISTRY]


def _cmd_verify(args: argparse.Namespace) -> int:
    targets = _verify_targets(args.keys, args.pin)
    rc = 0
    rows = [("key", "status", "sha256", "path / detail")]
    for key, path in targets:
        res = pin_present(key, path) if args.pin else verify(key, path)
        if res.status in ("mismatch", "incomplete") or (args.keys and res.status == "missing"):
            rc = 1
        rows.append((key, res.status, res.sha256 or "-", f"{res.path or ''} {res.detail}".strip()))
    sys.stdout.write(_table(rows) + "\n")
    return rc


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s")
    try:
        if args.command == "list":
            return _cmd_list(args)
        if args.command == "verify":
            return _cmd_verify(args)
        if args.command == "fetch":
            for path in fetch(args.keys, force=args.force, allow_unverified=args.allow_unverified, wheel=args.wheel):
                sys.stdout.write(f"{path}\n")
            return 0
        if args.command == "make-random":
            out_dir = Path(args.out) if args.out else weights_dir() / "random"
            path = make_random(args.key, out_dir, seed=args.seed)
            sys.stdout.write(f"{path}\n")
            logger.info("use it with: export %s=%s (and --allow-unverified; it is uncalibrated)",
                        env_var_for(args.key), path)
            return 0
        if args.command == "convert":
            sys.stdout.write(f"{convert(args.key, args.src, args.out, trust_pickle=args.trust_pickle)}\n")
            return 0
    except WeightsError as exc:
        logger.error("%s", exc)
        return 2
    return 2  # pragma: no cover - argparse enforces a command


if __name__ == "__main__":
    sys.exit(main())
