"""``build_demo``: the whole demo tree (MEAD + HDTF raw layouts) and its ``demo_manifest.json``."""

from __future__ import annotations

import json
import logging
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from dicetalk_bench.fileutil import atomic_write_bytes, sha256_file

from . import emotions, sources, speech
from .hdtf import HdtfSpec, build_hdtf
from .identities import (CARPHONE_FRAME, FACE_SOURCES, HDTF_IDENTITIES, MEAD_IDENTITIES, MEAD_TEST_SPEAKERS,
                         MEAD_TRAIN_SPEAKERS)
from .mead import MeadSpec, build_mead, plan_takes
from .synth import DemoContext

log = logging.getLogger(__name__)

MANIFEST_NAME = "demo_manifest.json"
DATASETS: tuple[str, ...] = ("mead", "hdtf")
SIZES: tuple[str, ...] = ("test", "full")
TTS_MODES: tuple[str, ...] = ("none", "espeak")


@dataclass(frozen=True)
class DemoSpec:
    mead: MeadSpec
    hdtf: HdtfSpec


def demo_spec(size: str) -> DemoSpec:
    """The two built-in sizes: ``test`` (small frames, 2 s clips, seconds to build) and ``full`` (1080p MEAD)."""
    if size == "test":
        takes = plan_takes(MEAD_TEST_SPEAKERS + MEAD_TRAIN_SPEAKERS,
                           sentences={1: ("001",), 3: ("028",)}, neutral=("001", "003"),
                           extra_views={"M003": ("left_30",), "W011": ("left_30",)})
        # level_2 for two actors only (one per split): all three levels occur, the build stays small
        takes += plan_takes(("M003", "W011"), sentences={2: ("004",)}, neutral=())
        return DemoSpec(
            MeadSpec(size_wh=(160, 120), fps=30.0, clip_s=2.0, audio_rate=16000, crf=23, preset="veryfast",
                     takes=takes),
            HdtfSpec(size_wh=(256, 144), fps=25.0, video_s=6.0, audio_rate=16000, crf=23, preset="veryfast",
                     clips_s=((0, 2), (3, 5))),
        )
    if size == "full":
        takes = plan_takes(("M003", "W009", "M005", "W011"), sentences={3: ("028",)}, neutral=("001",))
        # like real MEAD: 1920x1080, 30 fps, 48 kHz AAC
        return DemoSpec(
            MeadSpec(size_wh=(1920, 1080), fps=30.0, clip_s=3.0, audio_rate=48000, crf=20, preset="veryfast",
                     takes=takes),
            HdtfSpec(size_wh=(1280, 720), fps=25.0, video_s=12.0, audio_rate=48000, crf=20, preset="veryfast",
                     clips_s=((1, 5), (6, 11))),
        )
    raise ValueError(f"unknown demo size {size!r}; expected one of {list(SIZES)}")


def _check_args(size: str, tts: str, datasets: tuple[str, ...]) -> None:
    if size not in SIZES:
        raise ValueError(f"size={size!r}: expected one of {list(SIZES)}")
    if tts not in TTS_MODES:
        raise ValueError(f"tts={tts!r}: expected one of {list(TTS_MODES)}")
    bad = [d for d in datasets if d not in DATASETS]
    if bad or not datasets:
        raise ValueError(f"datasets={datasets!r}: expected a non-empty subset of {list(DATASETS)}")


def _already_built(out: Path, *, size: str, seed: int, tts: str, datasets: tuple[str, ...]) -> bool:
    """True when ``out`` holds a complete demo tree built with these arguments (manifest + every listed file)."""
    try:
        manifest = json.loads((out / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return False
    if (manifest.get("seed"), manifest.get("size"), manifest.get("tts"), tuple(manifest.get("datasets", ()))) != (
            seed, size, tts, datasets):
        return False
    for f in manifest.get("files", []):
        p = out / f["path"]
        if not p.is_file() or p.stat().st_size != f["bytes"]:
            return False
    return True


def source_assets() -> tuple[sources.SourceAsset, sources.SourceAsset, sources.SourceAsset]:
    """(astronaut, carphone, ARCTIC speech) source files, hash-checked; fetches the speech once if missing."""
    return sources.astronaut_asset(), sources.carphone_asset(), sources.speech_asset(fetch=True)


def demo_context(seed: int = 0, tts: Literal["none", "espeak"] = "none",
                 assets: tuple[sources.SourceAsset, sources.SourceAsset, sources.SourceAsset] | None = None
                 ) -> DemoContext:
    """The loaded sources (face images, 16 kHz speech) every take of a build draws from.

    ``assets``: what :func:`source_assets` returns (looked up when None). With :func:`demo_spec` and
    :func:`~dicetalk_bench.demo_data.mead.build_mead` it also builds a subset of the takes (the benchmarks
    render one full-size take this way).
    """
    if tts == "espeak" and speech.espeak_version() is None:
        raise speech.TTSError("--tts espeak needs the espeak-ng program on PATH (apt-get install espeak-ng)")
    astro, car, voice = assets if assets is not None else source_assets()
    return DemoContext(seed=seed, tts=tts, face_images=sources.load_face_images(astro, car, CARPHONE_FRAME),
                       speech16k=sources.load_speech(voice, speech.SPEECH_RATE))


def build_demo(out_dir: str | Path, *, size: Literal["test", "full"] = "test", seed: int = 0,
               tts: Literal["none", "espeak"] = "none", datasets: tuple[str, ...] = ("mead", "hdtf")) -> Path:
    """Build the demo tree under ``out_dir`` (``mead/``, ``hdtf/``, ``demo_manifest.json``); returns ``out_dir``.

    Deterministic for a seed: the rendered frames and audio samples (their sha256 is in the manifest) depend
    only on the seed, the size and the installed source assets. Fetches the ARCTIC speech asset once if it
    is missing (see :func:`sources.fetch_speech_asset`).
    """
    datasets = tuple(datasets)
    _check_args(size, tts, datasets)
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    out = Path(out_dir)
    if _already_built(out, size=size, seed=seed, tts=tts, datasets=datasets):
        log.info("demo data already built in %s (seed %d, size %s): reusing it", out, seed, size)
        return out
    for d in datasets:
        existing = out / d
        if existing.exists() and any(existing.iterdir()):
            raise FileExistsError(f"{existing} already exists and is not empty; choose a new --out folder")
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    astro, car, voice = assets = source_assets()
    ctx = demo_context(seed, tts, assets)
    spec = demo_spec(size)
    result: dict[str, list] = {}
    if "mead" in datasets:
        log.info("building demo MEAD: %d takes at %dx%d", len(spec.mead.takes), *spec.mead.size_wh)
        result["mead"] = build_mead(out / "mead", spec.mead, ctx)
    if "hdtf" in datasets:
        log.info("building demo HDTF: %d source videos at %dx%d", len(spec.hdtf.videos), *spec.hdtf.size_wh)
        result["hdtf"] = build_hdtf(out / "hdtf", spec.hdtf, ctx)
    files = sorted(p for d in datasets for p in (out / d).rglob("*") if p.is_file())
    manifest = {
        "format": "dicetalk_bench demo data v1",
        "seed": seed, "size": size, "tts": tts, "datasets": list(datasets),
        "tts_engine": speech.espeak_version() if tts == "espeak" else None,
        "sources": [a.record() for a in (astro, car, voice)],
        "face_sources": {k: asdict(v) for k, v in FACE_SOURCES.items()} | {"carphone_frame": CARPHONE_FRAME},
        "identities": {
            "mead": {k: v.record() for k, v in MEAD_IDENTITIES.items()},
            "hdtf": {f"{g}_{n}": v.record() for (g, n), v in HDTF_IDENTITIES.items()},
            "mead_test_speakers": list(MEAD_TEST_SPEAKERS), "mead_train_speakers": list(MEAD_TRAIN_SPEAKERS),
        },
        "emotions": emotions.emotion_table(),
        "emotion_strength": "level / 3 (neutral: 0)",
        "spec": {"mead": {k: v for k, v in asdict(spec.mead).items() if k != "takes"},
                 "hdtf": asdict(spec.hdtf)},
        "clips": result,
        "files": [{"path": p.relative_to(out).as_posix(), "bytes": p.stat().st_size, "sha256": sha256_file(p)}
                  for p in files],
        "build": {"python": platform.python_version(), "seconds": round(time.perf_counter() - t0, 2)},
    }
    atomic_write_bytes(out / MANIFEST_NAME, json.dumps(manifest, indent=1).encode("utf-8"))
    log.info("demo data written to %s (%d files, %.1f s)", out, len(files), manifest["build"]["seconds"])
    return out
