"""Tests of the built-in demo data (dicetalk_bench.demo_data): layouts, formats, realism and signal.

One ``--size test`` tree is built per session (about 30 s on an idle 2-core machine). Nothing here touches
the network: the CMU ARCTIC asset must already be cached (``python -m dicetalk_bench.demo_data fetch-assets``).
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from dicetalk_bench import media
from dicetalk_bench.demo_data import emotions, identities, sources, speech
from dicetalk_bench.demo_data.build import MANIFEST_NAME, build_demo, demo_spec
from dicetalk_bench.demo_data.hdtf import crop_square, mmss
from dicetalk_bench.fileutil import sha256_file
from optional_resources import require_executable

EMOTIONS = ("angry", "contempt", "disgusted", "fear", "happy", "neutral", "sad", "surprised")
VIEWS = ("front", "down", "top", "left_30", "left_60", "right_30", "right_60")
_MEAD_FILE = re.compile(
    rf"^(?P<actor>[MW]\d{{3}})/(?:video/(?P<view>{'|'.join(VIEWS)})/|audio/)(?P<emotion>{'|'.join(EMOTIONS)})/"
    r"level_(?P<level>[123])/(?P<sentence>\d{3})\.(?P<ext>mp4|m4a)$")


def _require_speech_asset() -> None:
    try:
        sources.speech_asset(fetch=False)
    except sources.AssetError as exc:
        pytest.fail(f"the CMU ARCTIC speech asset is not cached: {exc}. Run `{sources.FETCH_COMMAND}` once "
                    f"(it needs PyPI) before the tests.")


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    _require_speech_asset()
    out = tmp_path_factory.mktemp("demo") / "tree"
    return build_demo(out, size="test", seed=0)


@pytest.fixture(scope="session")
def manifest(demo_root: Path) -> dict:
    return json.loads((demo_root / MANIFEST_NAME).read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def face_detector():
    """mediapipe Tasks FaceDetector with the BlazeFace short-range model from the weights dir."""
    from mediapipe.tasks.python import BaseOptions, vision

    from dicetalk_bench import weights

    resolved = weights.resolve("blazeface-short")
    det = vision.FaceDetector.create_from_options(
        vision.FaceDetectorOptions(base_options=BaseOptions(model_asset_path=str(resolved.path)),
                                   min_detection_confidence=0.5))
    yield det
    det.close()


def _detect(det, frame: np.ndarray):
    import mediapipe as mp

    res = det.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(frame)))
    if not res.detections:
        return None
    best = max(res.detections, key=lambda d: d.categories[0].score)
    h, w = frame.shape[:2]
    return np.array([(k.x * w, k.y * h) for k in best.keypoints[:4]], np.float32)  # r-eye, l-eye, nose, mouth


# ------------------------------------------------------------------------------------------------ layout
def test_mead_tree_follows_the_raw_layout(demo_root: Path, manifest: dict) -> None:
    root = demo_root / "mead"
    files = [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()]
    assert files
    parsed = []
    for f in files:
        m = _MEAD_FILE.match(f)
        assert m, f"{f} does not follow MEAD's {{actor}}/video/{{view}}/{{emotion}}/level_n/nnn.mp4 layout"
        assert (m["view"] is None) == (m["ext"] == "m4a"), f
        parsed.append(m.groupdict())
    assert not any(p["emotion"] == "neutral" and p["level"] != "1" for p in parsed), "neutral beyond level_1"
    actors = {p["actor"] for p in parsed}
    assert len(actors) >= 6
    assert set(identities.MEAD_TEST_SPEAKERS) <= actors
    train = {a for a in actors if a not in identities.MEAD_TEST_SPEAKERS}
    assert len(train) >= 2 and not train & set(identities.MEAD_TEST_SPEAKERS)
    for actor in actors:   # all 8 emotions per actor, every video has its audio
        assert {p["emotion"] for p in parsed if p["actor"] == actor} == set(EMOTIONS)
    audio = {(p["actor"], p["emotion"], p["level"], p["sentence"]) for p in parsed if p["ext"] == "m4a"}
    for p in parsed:
        if p["ext"] == "mp4":
            assert (p["actor"], p["emotion"], p["level"], p["sentence"]) in audio, p
    assert {p["level"] for p in parsed} == {"1", "2", "3"}
    assert len({p["view"] for p in parsed if p["view"]}) >= 2
    numbers = sorted({int(p["sentence"]) for p in parsed})
    assert numbers != list(range(numbers[0], numbers[-1] + 1)), "sentence numbers should have gaps"
    # the manifest lists exactly the files on disk, with their hashes
    listed = {f["path"]: f for f in manifest["files"]}
    assert set(listed) == {f"mead/{f}" for f in files} | {
        f"hdtf/{p.relative_to(demo_root / 'hdtf').as_posix()}" for p in (demo_root / "hdtf").rglob("*") if p.is_file()}
    some = sorted(listed)[::25]
    for rel in some:
        assert sha256_file(demo_root / rel) == listed[rel]["sha256"], rel


def test_mead_media_formats(demo_root: Path) -> None:
    spec = demo_spec("test").mead
    video = demo_root / "mead/M003/video/front/angry/level_3/028.mp4"
    info = media.probe(video)
    assert (info.width, info.height) == spec.size_wh and info.fps == pytest.approx(30.0)
    assert info.n_frames == 60 and info.has_audio and info.audio_codec == "aac" and info.video_codec == "h264"
    a = media.probe(demo_root / "mead/M003/audio/angry/level_3/028.m4a")
    assert not a.has_video and a.audio_codec == "aac" and a.audio_rate == spec.audio_rate
    assert a.duration_s == pytest.approx(2.0, abs=0.05)
    samples = media.read_audio(a.path, sample_rate=16000)
    assert 0.02 < float(np.sqrt(np.mean(samples**2))) < 0.5   # real speech level, not silence


def test_full_size_matches_real_mead_format() -> None:
    spec = demo_spec("full")
    assert spec.mead.size_wh == (1920, 1080) and spec.mead.fps == 30.0 and spec.mead.audio_rate == 48000


_HDTF_LINE = {
    "video_url": re.compile(r"^[A-Za-z0-9]+ https://www\.youtube\.com/watch\?v=[A-Za-z0-9_-]{11}$"),
    "resolution": re.compile(r"^[A-Za-z0-9]+\.mp4 \d+$"),
    "annotion_time": re.compile(r"^[A-Za-z0-9]+\.mp4( \d\d:\d\d-\d\d:\d\d)+$"),
    "crop_wh": re.compile(r"^[A-Za-z0-9]+_\d+\.mp4 \d+ \d+ \d+ \d+$"),
    "crop_ratio": re.compile(r"^[A-Za-z0-9]+_\d+\.mp4 \d+(\.\d+)?$"),
}


def test_hdtf_annotation_files_match_upstream_formats(demo_root: Path) -> None:
    root = demo_root / "hdtf"
    for group in ("RD", "WDA", "WRA"):
        texts = {}
        for kind, pattern in _HDTF_LINE.items():
            raw = (root / f"{group}_{kind}.txt").read_bytes()
            bom = raw.startswith(b"\xef\xbb\xbf")
            assert bom == (group == "WDA" and kind == "video_url"), f"{group}_{kind}.txt BOM={bom}"
            text = raw.decode("utf-8-sig")
            assert text.endswith("\n") and "\r" not in text
            lines = text.splitlines()
            for line in lines:
                assert pattern.match(line), f"{group}_{kind}.txt: bad line {line!r}"
            texts[kind] = [line.split() for line in lines]
        names = [p[0] for p in texts["video_url"]]
        assert names and [p[0] for p in texts["resolution"]] == [f"{n}.mp4" for n in names]
        clips = []
        for parts in texts["annotion_time"]:
            name = parts[0][:-4]
            info = media.probe(root / f"{group}_{name}.mp4")
            height = int(dict((p[0], p[1]) for p in texts["resolution"])[f"{name}.mp4"])
            assert height == info.height
            for k, rng in enumerate(parts[1:]):
                a, b = (int(t[:2]) * 60 + int(t[3:]) for t in rng.split("-"))
                assert 0 <= a < b <= info.duration_s + 1e-6
                clips.append((f"{name}_{k}.mp4", info.width, info.height))
        wh = {p[0]: tuple(int(v) for v in p[1:]) for p in texts["crop_wh"]}
        ratio = {p[0]: float(p[1]) for p in texts["crop_ratio"]}
        assert set(wh) == set(ratio) == {c for c, _, _ in clips}
        for clip, w, h in clips:
            x0, cw, y0, ch = wh[clip]
            assert cw == ch > 0 and x0 + cw <= w and y0 + ch <= h, (clip, wh[clip])
            assert 1.0 <= ratio[clip] <= 1.5
    kinds = "|".join(_HDTF_LINE)
    pattern = re.compile(rf"^(RD|WDA|WRA)_([A-Za-z0-9]+\.mp4|({kinds})\.txt)$")
    stray = [p.name for p in root.iterdir() if not pattern.match(p.name)]
    assert not stray


def test_hdtf_helpers() -> None:
    assert mmss(0) == "00:00" and mmss(75) == "01:15"
    with pytest.raises(ValueError):
        mmss(-1)
    boxes = np.array([[10, 20, 50, 80], [14, 22, 60, 90]], np.float32)
    x0, w, y0, h = crop_square(boxes, (100, 100))
    assert w == h == 70 and x0 <= 10 and x0 + w >= 60 and y0 <= 20 and y0 + h >= 90
    assert crop_square(np.array([[0, 0, 300, 300]], np.float32), (200, 100)) == (100, 100, 0, 100)  # centred on x=150, clamped inside


def test_manifest_records_sources_identities_and_parameters(manifest: dict) -> None:
    assert manifest["seed"] == 0 and manifest["size"] == "test" and manifest["tts"] == "none"
    by_key = {s["key"]: s for s in manifest["sources"]}
    assert by_key["cmu_arctic_a0007"]["sha256"] == sources.SPEECH_SHA256
    assert by_key["astronaut"]["sha256"] == sha256_file(sources.astronaut_asset().path)
    assert by_key["carphone"]["sha256"] == sha256_file(sources.carphone_asset().path)
    assert set(manifest["emotions"]) == set(EMOTIONS)
    mead_ids = manifest["identities"]["mead"]
    assert {k for k, v in mead_ids.items() if v["split"] == "test"} == set(identities.MEAD_TEST_SPEAKERS)
    assert len(manifest["clips"]["mead"]) == len(demo_spec("test").mead.takes)


# ------------------------------------------------------------------------------------------------ realism
def _sample_videos(root: Path, n: int) -> list[Path]:
    vids = sorted((root / "mead").rglob("*.mp4")) + sorted((root / "hdtf").glob("*.mp4"))
    return vids[:: max(len(vids) // n, 1)]


def test_blazeface_finds_a_face_in_most_demo_frames(demo_root: Path, face_detector) -> None:
    found = total = 0
    for video in _sample_videos(demo_root, 30):
        frames = media.read_video(video).frames
        for k in (0, len(frames) // 2, len(frames) - 1):
            total += 1
            found += _detect(face_detector, frames[k]) is not None
    rate = found / total
    print(f"BlazeFace detection rate on demo frames: {found}/{total} = {rate:.2f}")
    assert rate >= 0.8


def _crop_features(frame: np.ndarray, kp: np.ndarray) -> np.ndarray:
    """Brow band and mouth crops, placed by the detector's keypoints, downscaled to 12x6 RGB each."""
    import cv2

    eye_r, eye_l, _, mouth = kp
    d = float(np.linalg.norm(eye_l - eye_r))
    centre = 0.5 * (eye_r + eye_l)
    crops = []
    for c, (hw, hh) in ((centre - [0, 0.35 * d], (0.9 * d, 0.35 * d)), (mouth, (0.7 * d, 0.4 * d))):
        x0, x1 = int(c[0] - hw), int(c[0] + hw)
        y0, y1 = int(c[1] - hh), int(c[1] + hh)
        pad = np.pad(frame, ((64, 64), (64, 64), (0, 0)), mode="edge")
        patch = pad[y0 + 64: y1 + 64, x0 + 64: x1 + 64].astype(np.float32)
        crops.append(cv2.resize(patch, (12, 6), interpolation=cv2.INTER_AREA).ravel() / 255.0)
    return np.concatenate(crops)


def _softmax_regression(x: np.ndarray, y: np.ndarray, n_classes: int, l2: float = 1e-2,
                        steps: int = 800, lr: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression by full-batch gradient descent; returns (W (F, C), b (C,))."""
    w = np.zeros((x.shape[1], n_classes))
    b = np.zeros(n_classes)
    onehot = np.eye(n_classes)[y]
    for _ in range(steps):
        z = x @ w + b
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        g = (p - onehot) / len(x)
        w -= lr * (x.T @ g + l2 * w)
        b -= lr * g.sum(axis=0)
    return w, b


def test_demo_emotions_carry_signal_across_speakers(demo_root: Path, manifest: dict, face_detector) -> None:
    feats: dict[str, list] = {"train": [], "test": []}
    labels: dict[str, list] = {"train": [], "test": []}
    speakers: dict[str, list] = {"train": [], "test": []}
    for clip in manifest["clips"]["mead"]:
        frames = media.read_video(demo_root / "mead" / clip["videos"]["front"]["file"]).frames
        for k in (len(frames) // 4, len(frames) // 2, 3 * len(frames) // 4):
            kp = _detect(face_detector, frames[k])
            if kp is None:
                continue
            feats[clip["split"]].append(_crop_features(frames[k], kp))
            labels[clip["split"]].append(EMOTIONS.index(clip["emotion"]))
            speakers[clip["split"]].append(clip["actor"])
    # speaker normalisation (standard in emotion recognition): subtract each speaker's mean feature, which
    # removes identity (skin tone, background, scale) and uses no labels of the test speakers
    for split in feats:
        for actor in set(speakers[split]):
            rows = [i for i, a in enumerate(speakers[split]) if a == actor]
            mean = np.mean([feats[split][i] for i in rows], axis=0)
            for i in rows:
                feats[split][i] = feats[split][i] - mean
    x_tr, y_tr = np.array(feats["train"]), np.array(labels["train"])
    x_te, y_te = np.array(feats["test"]), np.array(labels["test"])
    mu, sd = x_tr.mean(axis=0), x_tr.std(axis=0) + 1e-3
    w, b = _softmax_regression((x_tr - mu) / sd, y_tr, len(EMOTIONS))
    acc = float(np.mean(np.argmax(((x_te - mu) / sd) @ w + b, axis=1) == y_te))
    print(f"emotion accuracy on the 4 test speakers: {acc:.3f} (chance 0.125, n={len(y_te)})")
    assert set(speakers["test"]) == set(identities.MEAD_TEST_SPEAKERS)
    assert not set(speakers["train"]) & set(speakers["test"])
    assert len(y_te) > 50 and acc >= 0.5


# ------------------------------------------------------------------------------------------------ components
def test_emotion_strength_grows_with_level() -> None:
    assert emotions.strength("neutral", 1) == 0.0
    assert [emotions.strength("sad", n) for n in (1, 2, 3)] == pytest.approx([1 / 3, 2 / 3, 1.0])
    with pytest.raises(ValueError, match="neutral has only level 1"):
        emotions.strength("neutral", 2)
    with pytest.raises(ValueError, match="unknown emotion"):
        emotions.strength("bored", 1)
    p1, p3 = emotions.face_params("happy", 1), emotions.face_params("happy", 3)
    assert p3.mouth_corner == pytest.approx(3 * p1.mouth_corner) and p3.tint == p1.tint
    v1, v3 = emotions.voice_params("fear", 1), emotions.voice_params("fear", 3)
    assert v3.pitch_semitones == pytest.approx(3 * v1.pitch_semitones)
    assert v3.tempo - 1 == pytest.approx(3 * (v1.tempo - 1))


def _tiny_context(seed: int):
    from dicetalk_bench.demo_data.synth import DemoContext

    _require_speech_asset()
    imgs = sources.load_face_images(sources.astronaut_asset(), sources.carphone_asset())
    return DemoContext(seed=seed, tts="none", face_images=imgs,
                       speech16k=sources.load_speech(sources.speech_asset()))


def _render(ctx, actor: str, emotion: str, level: int, sentence: str = "001"):
    from dicetalk_bench.demo_data.synth import make_take, view_rng

    ident = identities.MEAD_IDENTITIES[actor]
    key = ("mead", actor, emotion, level, sentence)
    take = make_take(ctx, ident, emotion, level, ("mead", emotion, level, sentence), key, duration_s=1.0,
                     fps=30.0, size_wh=(160, 120), audio_rate=16000)
    frames, _ = take.renderer.render(take.openness, 30.0, (160, 120), take.drift, view_rng(ctx, key, "front"))
    return take, frames


def test_rendering_and_audio_are_deterministic_for_a_seed() -> None:
    t_a, f_a = _render(_tiny_context(7), "W015", "fear", 2)
    t_b, f_b = _render(_tiny_context(7), "W015", "fear", 2)
    t_c, f_c = _render(_tiny_context(8), "W015", "fear", 2)
    assert np.array_equal(f_a, f_b) and np.array_equal(t_a.audio, t_b.audio)
    assert not np.array_equal(f_a, f_c) and not np.array_equal(t_a.audio, t_c.audio)


def test_face_change_from_neutral_grows_with_level() -> None:
    ctx = _tiny_context(0)
    _, neutral = _render(ctx, "W009", "neutral", 1)
    diffs = []
    for level in (1, 2, 3):
        _, fr = _render(ctx, "W009", "angry", level)
        # same pose drift seed is not shared across emotions, so compare frame means over the face area
        diffs.append(float(np.abs(fr[:, 20:90, 50:110].astype(float).mean(0) -
                                  neutral[:, 20:90, 50:110].astype(float).mean(0)).mean()))
    assert diffs[0] < diffs[1] < diffs[2]


def test_mouth_follows_the_speech_envelope() -> None:
    ctx = _tiny_context(0)
    take, frames = _render(ctx, "W009", "neutral", 1)
    # dark mouth cavity: fraction of dark pixels in the lower face, per frame
    lower = frames[:, 55:85, 60:100].astype(float).mean(axis=3)
    darkness = (lower < 70).mean(axis=(1, 2))
    r = np.corrcoef(darkness, take.openness)[0, 1]
    assert take.openness.max() > 0.5 and r > 0.6, r


def test_mouth_envelope_closed_form() -> None:
    rate, fps = 16000, 25.0
    x = np.zeros(rate, np.float32)
    x[rate // 2:] = 0.5 * np.sin(2 * np.pi * 200 * np.arange(rate // 2) / rate)
    a = speech.mouth_envelope(x, rate, fps, 25)
    assert np.all(a[:11] == 0.0) and np.all(a[14:] > 0.9)


def _tone(freq: float, seconds: float, rate: int = 16000) -> np.ndarray:
    return np.sin(2 * np.pi * freq * np.arange(int(seconds * rate)) / rate).astype(np.float32)


def _peak_hz(x: np.ndarray, rate: int = 16000) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spec) * rate / len(x))


def test_pitch_shift_and_time_stretch_closed_forms() -> None:
    x = _tone(200.0, 1.0)
    up = speech.vary_pitch(x, np.full(len(x), 12.0))        # one octave up: double frequency, half length
    assert _peak_hz(up) == pytest.approx(400.0, abs=3) and len(up) == pytest.approx(len(x) / 2, abs=2)
    fast = speech.time_stretch(x, 1.5)
    assert len(fast) == pytest.approx(len(x) / 1.5, rel=0.05) and _peak_hz(fast) == pytest.approx(200.0, abs=3)
    voiced = speech.apply_voice(x, emotions.voice_params("sad", 3), 0.0, np.random.default_rng(0))
    assert _peak_hz(voiced[:8000]) < 190.0                   # sad lowers the pitch (-2.5 semitones)
    assert len(voiced) > len(x)                              # and slows down (tempo 0.85)


def test_segment_speech_finds_word_like_pieces() -> None:
    _require_speech_asset()
    x = sources.load_speech(sources.speech_asset())
    pieces = speech.segment_speech(x)
    assert len(pieces) >= 5
    assert all(0.18 * 16000 <= b - a <= 0.61 * 16000 for a, b in pieces)


def test_sentences_reuse_words_across_speakers_but_not_across_sentences() -> None:
    ctx = _tiny_context(0)
    a, ia = ctx.sentence_speech(("mead", "sad", 1, "001"), 2.0)
    b, _ = ctx.sentence_speech(("mead", "sad", 1, "001"), 2.0)
    c, ic = ctx.sentence_speech(("mead", "sad", 1, "028"), 2.0)
    assert np.array_equal(a, b) and ia["pieces"] != ic["pieces"]


# ------------------------------------------------------------------------------------------------ errors
def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="size"):
        build_demo(tmp_path / "a", size="huge")
    with pytest.raises(ValueError, match="tts"):
        build_demo(tmp_path / "a", tts="festival")
    with pytest.raises(ValueError, match="datasets"):
        build_demo(tmp_path / "a", datasets=("vox",))
    with pytest.raises(ValueError, match="seed"):
        build_demo(tmp_path / "a", seed=-1)
    (tmp_path / "b" / "mead").mkdir(parents=True)
    (tmp_path / "b" / "mead" / "x").write_text("x")
    with pytest.raises(FileExistsError, match="not empty"):
        build_demo(tmp_path / "b")


def test_espeak_missing_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    with pytest.raises(speech.TTSError, match="espeak-ng"):
        speech.espeak_speech("hello")


def test_missing_speech_asset_names_the_fetch_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(sources.ASSETS_DIR_ENV, str(tmp_path))
    with pytest.raises(sources.AssetError, match="fetch-assets"):
        sources.speech_asset(fetch=False)
    (tmp_path / sources.SPEECH_SUBDIR).mkdir()
    (tmp_path / sources.SPEECH_SUBDIR / sources.SPEECH_FILENAME).write_bytes(b"RIFF tampered")
    with pytest.raises(sources.AssetError, match="sha256"):
        sources.speech_asset(fetch=False)


def _fake_sdist(path: Path, wav: bytes) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in ((sources.SPEECH_MEMBER, wav), (sources.SPEECH_LICENCE_MEMBER, b"licence")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_fetch_refuses_an_archive_with_the_wrong_hash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def fake_run(cmd, **kwargs):  # stands in for `pip download`: drops a forged sdist where pip would
        calls.append(cmd)
        _fake_sdist(Path(cmd[cmd.index("-d") + 1]) / sources.PYSPTK_SDIST_NAME, b"not the arctic wav")
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(sources.subprocess, "run", fake_run)
    with pytest.raises(sources.AssetError, match="expected " + sources.PYSPTK_SDIST_SHA256):
        sources.fetch_speech_asset(tmp_path)
    assert calls and calls[0][1:4] == ["-m", "pip", "download"] and "pysptk==1.0.1" in calls[0]
    assert not (tmp_path / sources.SPEECH_SUBDIR / sources.SPEECH_FILENAME).exists()


def test_extract_member_checks_the_member_hash(tmp_path: Path) -> None:
    archive = tmp_path / "x.tar.gz"
    _fake_sdist(archive, b"forged")
    with pytest.raises(sources.AssetError, match="sha256"):
        sources._extract_member(archive, sources.SPEECH_MEMBER, sources.SPEECH_SHA256)
    with pytest.raises(sources.AssetError, match="no member"):
        sources._extract_member(archive, "pysptk-1.0.1/missing.wav", sources.SPEECH_SHA256)


def test_cli_help_documents_the_options_and_parses_without_heavy_imports() -> None:
    proc = subprocess.run([sys.executable, "-m", "dicetalk_bench.demo_data", "--help"], capture_output=True,
                          text=True, check=True)
    for option in ("--out", "--seed", "--size", "--tts", "--datasets", "fetch-assets"):
        assert option in proc.stdout
    probe = ("import sys; from dicetalk_bench.demo_data.__main__ import build_parser; "
             "a = build_parser().parse_args(['--out', 'x', '--datasets', 'hdtf']); "
             "print(a.datasets, sorted(m for m in ('cv2', 'av', 'scipy', 'mediapipe') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "('hdtf',) []"
    for bad_args in (["--out", "x", "--size", "huge"], ["--out", "x", "--datasets", "vox"]):
        bad = subprocess.run([sys.executable, "-m", "dicetalk_bench.demo_data", *bad_args],
                             capture_output=True, text=True)
        assert bad.returncode == 2 and ("invalid choice" in bad.stderr or "subset" in bad.stderr)


def _median_f0(x: np.ndarray, rate: int = 16000) -> float:
    """Median autocorrelation F0 (60-400 Hz) over loud 40 ms frames."""
    n, f0 = int(0.04 * rate), []
    loud = 0.3 * np.sqrt(np.mean(x**2)) * 2
    for s in range(0, len(x) - n, n // 2):
        fr = x[s: s + n] - x[s: s + n].mean()
        if np.sqrt(np.mean(fr**2)) < loud:
            continue
        ac = np.correlate(fr, fr, mode="full")[n - 1:]
        lo, hi = rate // 400, rate // 60
        f0.append(rate / (lo + int(np.argmax(ac[lo:hi]))))
    return float(np.median(f0))


def test_emotions_change_pitch_tempo_and_energy_of_real_speech() -> None:
    _require_speech_asset()
    x = sources.load_speech(sources.speech_asset())
    out = {e: speech.apply_voice(x, emotions.voice_params(e, 1 if e == "neutral" else 3), 0.0,
                                 np.random.default_rng(0)) for e in ("neutral", "sad", "angry", "surprised")}
    f0 = {e: _median_f0(y) for e, y in out.items()}
    assert f0["sad"] < f0["neutral"] < f0["angry"] < f0["surprised"], f0
    assert f0["surprised"] / f0["neutral"] == pytest.approx(2 ** (4 / 12), rel=0.08)   # +4 semitones
    assert len(out["sad"]) > len(out["neutral"]) > len(out["angry"])                    # tempo 0.85 / 1 / 1.1
    rms = {e: float(np.sqrt(np.mean(y**2))) for e, y in out.items()}
    assert rms["sad"] < rms["neutral"] < rms["angry"]


ESPEAK_HINT = "apt-get install espeak-ng; only demo_data --tts espeak uses it"


def test_espeak_speech_is_real_speech() -> None:
    """Skipped without espeak-ng, except in CI (.ci/run installs it and makes a skip a failure)."""
    require_executable("espeak-ng", ESPEAK_HINT)
    x = speech.espeak_speech("The quick brown fox jumps over the lazy dog.")
    assert x.dtype == np.float32 and x.ndim == 1
    duration_s = x.size / speech.SPEECH_RATE
    assert 1.5 < duration_s < 6.0, duration_s
    # speech alternates loud syllables and pauses: the 20 ms frame energy varies strongly over time
    frame = speech.SPEECH_RATE // 50
    energy = (x[: x.size // frame * frame].reshape(-1, frame) ** 2).mean(axis=1)
    assert energy.max() > 1e-3
    assert (energy < 0.05 * energy.max()).mean() > 0.1
    # and most energy is in the voice band (80 Hz - 4 kHz)
    spec = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(x.size, 1 / speech.SPEECH_RATE)
    assert spec[(freqs > 80) & (freqs < 4000)].sum() / spec.sum() > 0.8


def test_espeak_demo_records_engine_in_manifest(tmp_path: Path) -> None:
    require_executable("espeak-ng", ESPEAK_HINT)
    root = build_demo(tmp_path / "tts", size="test", seed=3, tts="espeak", datasets=("hdtf",))
    man = json.loads((root / MANIFEST_NAME).read_text(encoding="utf-8"))
    assert man["tts"] == "espeak"
    assert man["tts_engine"] and "eSpeak" in man["tts_engine"]


def test_rebuild_with_same_arguments_reuses_the_tree(demo_root: Path, manifest: dict) -> None:
    first = demo_root / manifest["files"][0]["path"]
    mtime = first.stat().st_mtime_ns
    assert build_demo(demo_root, size="test", seed=0) == demo_root
    assert first.stat().st_mtime_ns == mtime  # nothing was rewritten
    with pytest.raises(FileExistsError, match="not empty"):
        build_demo(demo_root, size="test", seed=1)  # other arguments never overwrite an existing tree
