"""The face metrics through the metric registry on tiny folders of encoded videos (random weights, fixed detector)."""

import json

import numpy as np
import pytest

from dicetalk_bench import media, weights
from dicetalk_bench.metrics import emotion, identity, pixel, syncnet  # noqa: F401  (random-weights builders)
from dicetalk_bench.metrics.registry import ScoreRequest, compute_metrics
from dicetalk_bench.metrics.result import load_results, save_results
from dicetalk_bench.metrics.scoring_faces import emotion_from_clip_id, square_face_crops
from dicetalk_bench.preprocessing.faces import Detection

SIZE, N = 96, 12
BOX = np.array([24, 16, 72, 72], np.float32)
KPS = np.array([[38, 36], [58, 36], [48, 48], [48, 60], [28, 40], [68, 40]], np.float32)


class FixedDetector:
    def detect(self, frame):
        return [Detection(box_xyxy=BOX, keypoints=KPS, score=0.99)]


class NoFaceDetector:
    def detect(self, frame):
        return []


def _clip(seed):
    rng = np.random.default_rng(seed)
    frames = rng.integers(40, 220, (N, SIZE, SIZE, 3), dtype=np.uint8)
    audio = (0.2 * np.sin(np.arange(N * 640) * 2 * np.pi * (200 + 50 * seed) / 16000)).astype(np.float32)
    return frames, audio


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("sets")
    gen, ref = root / "gen", root / "ref"
    for i, cid in enumerate(["M003_happy_001", "M003_sad_002"]):
        frames, audio = _clip(i)
        media.write_video(ref / f"{cid}.mp4", frames, 25.0, audio=audio, audio_rate=16000, crf=10)
        noisy = np.clip(frames.astype(int) + np.random.default_rng(9).integers(-20, 20, frames.shape), 0, 255)
        media.write_video(gen / f"{cid}.mp4", noisy.astype(np.uint8), 25.0, audio=audio, audio_rate=16000, crf=10)
    # a generated clip without a reference: a failure of the paired metrics, scored by the others
    frames, audio = _clip(5)
    media.write_video(gen / "W009_angry_003.mp4", frames, 25.0, audio=audio, audio_rate=16000, crf=10)
    return gen, ref


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory):
    d = tmp_path_factory.mktemp("w")
    return {k: str(weights.make_random(k, d, seed=0)) for k in ("syncnet", "lpips-alex", "emotion-fan")}


def _request(gen, ref, wts, **options):
    return ScoreRequest(videos=gen, reference=ref, weights=wts, allow_unverified=True,
                        options={"faces.detector": FixedDetector(), **options})


def test_sync_through_the_registry(folders, random_weights, tmp_path):
    gen, _ = folders
    res = compute_metrics(["sync-c", "sync-d"], _request(gen, None, random_weights))
    by_key = {r.key: r for r in res}
    assert set(by_key) == {"sync-c", "sync-d"}
    c, d = by_key["sync-c"], by_key["sync-d"]
    assert c.higher_is_better and not d.higher_is_better
    assert c.n_videos == 3 and not c.failures and c.calibrated is False
    assert c.value == pytest.approx(np.mean(list(c.per_video.values())))
    assert d.value == pytest.approx(np.mean(list(d.per_video.values())))
    assert c.protocol["mode"] == "fast" and c.extractors[0]["key"] == "syncnet"
    save_results(res, tmp_path / "r.json")
    assert load_results(tmp_path / "r.json")[0].value == pytest.approx(res[0].value)


def test_sync_counts_videos_without_a_face(folders, random_weights):
    gen, _ = folders
    req = ScoreRequest(videos=gen, weights=random_weights, allow_unverified=True,
                       options={"faces.detector": NoFaceDetector()})
    c = compute_metrics(["sync-c"], req)[0]
    assert c.value is None and c.n_videos == 0 and c.extra["n_without_face"] == 3 and len(c.failures) == 3
    assert set(c.failure_kinds.values()) == {"no-face"} and c.extra["failure_counts"] == {"no-face": 3}
    assert c.clip_ids == tuple(sorted(c.failures)) and c.failure_rate == 1.0


def test_paired_pixel_metrics(folders, random_weights):
    gen, ref = folders
    res = {r.key: r for r in compute_metrics(["psnr", "ssim", "lpips"], _request(gen, ref, random_weights))}
    for key in ("psnr", "ssim", "lpips"):
        r = res[key]
        assert r.n_videos == 2 and r.n_frames == 2 * N
        assert set(r.per_video) == {"M003_happy_001", "M003_sad_002"}
        assert "no reference" in r.failures["W009_angry_003"]
    assert 15 < res["psnr"].value < 40 and 0 < res["ssim"].value < 1 and res["lpips"].value > 0
    assert res["lpips"].extractors[0]["key"] == "lpips-alex"
    # the protocol holds what changes the number, never a folder path; the reference set by its content hash
    for r in res.values():
        assert str(gen.parent) not in json.dumps(r.to_dict()["protocol"])
        assert r.protocol["reference_sha256"] == res["psnr"].protocol["reference_sha256"]
        assert r.protocol["frame_size_rule"].startswith("reference resized") and r.protocol["reference_resized"] is False


def test_emotion_accuracy_through_the_registry(folders, random_weights, tmp_path):
    gen, _ = folders
    r = compute_metrics(["emo-acc"], _request(gen, None, random_weights))[0]
    assert r.n_videos == 3 and r.value in (0.0, 100 / 3, 200 / 3, 100.0)
    assert r.value == pytest.approx(100 * np.mean(list(r.per_video.values())))
    assert r.protocol["aggregation"] == "attention"
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps({"M003_happy_001": "happy", "M003_sad_002": "sad"}))
    r2 = compute_metrics(["emo-acc"], _request(gen, None, random_weights, **{"emo-acc.labels": str(labels),
                                                                            "emo-acc.aggregation": "majority"}))[0]
    assert r2.n_videos == 2 and "W009_angry_003" in r2.failures
    # the labels file is identified by its content in the protocol; its path is kept in extra only
    assert str(tmp_path) not in json.dumps(r2.to_dict()["protocol"]) and r2.extra["labels_file"] == str(labels)
    assert r2.protocol["labels_sha256"] == weights.file_sha256(labels)


def test_clip_id_labels_and_face_crops():
    assert emotion_from_clip_id("M003_angry_001") == "angry"
    assert emotion_from_clip_id("M003/video/front/disgusted/level_3/001") == "disgusted"
    assert emotion_from_clip_id("M003_fea_3_001") == "fear"
    assert emotion_from_clip_id("clip_001") is None
    assert emotion_from_clip_id("happy_sad") is None  # ambiguous
    frames = np.zeros((1, 50, 50, 3), np.uint8)
    frames[0, 10:30, 10:30] = 200
    crops = square_face_crops(frames, np.array([[10, 10, 30, 30]]), scale=1.0, size=20)
    assert crops.shape == (1, 20, 20, 3) and (crops == 200).all()


def test_csim_through_the_registry(folders, tmp_path):
    gen, ref = folders
    wts = {"arcface-r100": str(weights.make_random("arcface-r100", tmp_path, seed=0))}
    # one pair only (ArcFace-R100 on CPU is slow): a folder holding one generated clip
    one = tmp_path / "one"
    one.mkdir()
    frames = media.read_video(gen / "M003_happy_001.mp4").frames[:3]
    media.write_video(one / "M003_happy_001.mp4", frames, 25.0)
    r = compute_metrics(["csim"], _request(one, ref, wts))[0]
    assert r.n_videos == 1 and -1 <= r.value <= 1 and r.extractors[0]["key"] == "arcface-r100"
