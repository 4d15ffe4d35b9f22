"""train-emotion: our own MEAD classifier trained on the preprocessed demo, its checkpoint, and Emo-Acc with it.

The built-in test-size demo (8 speakers; EAT's test speakers M003, M030, W009, W015 held out) is preprocessed
through the pipeline API (front view, level 3 + neutral: 72 clips of 2 s, 64 px crops), the recipe is trained
through the CLI, and its held-out-speaker accuracy must clear chance (12.5 %) by a wide margin (asserted >= 50 %;
measured 94.4 %, 34 of 36 videos).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from dicetalk_bench.metrics import emotion_train as et
from dicetalk_bench.metrics.__main__ import main as metrics_main
from dicetalk_bench.metrics.emotion import MEAD_EMOTIONS
from dicetalk_bench.metrics.emotion_own_training import fit_softmax

from emotrain_helpers import preprocess_demo_videos

TEST_SPEAKERS = ("M003", "M030", "W009", "W015")


@pytest.fixture(scope="module")
def processed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("emotrain")
    return preprocess_demo_videos(root / "raw", root / "out")


@pytest.fixture(scope="module")
def trained(processed: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    ckpt = tmp_path_factory.mktemp("ckpt") / "own_emotion.safetensors"
    assert metrics_main(["train-emotion", "--processed", str(processed), "--out", str(ckpt), "--seed", "0"]) == 0
    return ckpt, json.loads(ckpt.with_suffix(".json").read_text())


# ------------------------------------------------------------------------------------------------ pure parts
def test_frame_sampling_rule() -> None:
    np.testing.assert_array_equal(et.sample_frame_indices(50, 8), [5, 11, 16, 22, 27, 33, 38, 44])
    np.testing.assert_array_equal(et.sample_frame_indices(5, 8), np.arange(5))
    with pytest.raises(ValueError, match="0 frames"):
        et.sample_frame_indices(0, 8)
    with pytest.raises(ValueError, match="positive"):
        et.sample_frame_indices(10, 0)


def test_region_features_and_speaker_means() -> None:
    proto = et.OwnEmotionProtocol(crop_scale=1.0, input_size=8, region_size=(2, 1),
                                  regions=(("all", (0.0, 0.0, 1.0, 1.0)), ("top", (0.0, 0.0, 1.0, 0.5))))
    crop = np.zeros((1, 8, 8, 3), np.uint8)
    crop[0, :4] = 255  # top half white
    f = et.region_features(crop, proto)
    assert f.shape == (1, proto.n_features) == (1, 12)
    np.testing.assert_allclose(f[0, :6], 0.5, atol=1 / 255)  # whole crop area-averaged to 2x1 (uint8 rounding)
    np.testing.assert_allclose(f[0, 6:], 1.0)   # the top band is all white
    with pytest.raises(ValueError, match="square face crops"):
        et.region_features(np.zeros((1, 8, 6, 3), np.uint8), proto)
    means = et.speaker_means({"a": np.array([[1.0, 2.0]]), "b": np.array([[3.0, 4.0], [5.0, 6.0]]),
                              "c": np.array([[7.0, 8.0]])}, {"a": "S1", "b": "S1", "c": "S2"})
    np.testing.assert_allclose(means["S1"], [3.0, 4.0])  # frames pooled over the speaker's videos
    np.testing.assert_allclose(means["S2"], [7.0, 8.0])
    with pytest.raises(ValueError, match="no speaker"):
        et.speaker_means({"a": np.zeros((1, 2))}, {})


def test_speaker_from_clip_id() -> None:
    assert et.speaker_from_clip_id("M003_angry_001") == "M003"
    assert et.speaker_from_clip_id("mead/W015/front/sad/level_3/028") == "W015"
    assert et.speaker_from_clip_id("clip_001") is None
    assert et.speaker_from_clip_id("M003_vs_W009") is None  # ambiguous


def test_fit_is_seeded_and_learns_a_separable_problem() -> None:
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 20)
    x = rng.normal(size=(60, 5)) + 3.0 * np.eye(3, 5)[y]
    cfg = et.TrainEmotionConfig(epochs=50, seed=1)
    w1, b1 = fit_softmax(x, y, 3, cfg)
    w2, b2 = fit_softmax(x, y, 3, cfg)
    w3, _ = fit_softmax(x, y, 3, et.TrainEmotionConfig(epochs=50, seed=2))
    np.testing.assert_array_equal(w1, w2)
    np.testing.assert_array_equal(b1, b2)
    assert not np.array_equal(w1, w3)
    assert np.mean(np.argmax(x @ w1.T + b1, axis=1) == y) >= 0.9


# ------------------------------------------------------------------------------------------------ the recipe
def test_recipe_beats_chance_on_held_out_speakers(trained: tuple[Path, dict]) -> None:
    ckpt, meta = trained
    m = meta["test_metrics"]
    print(f"own emotion classifier: test-speaker accuracy {m['accuracy']:.1f}% on {m['n_videos']} videos "
          f"(chance {m['chance']:.1f}%), train accuracy {meta['training']['train_accuracy']:.1f}%")
    assert meta["training"]["test_speakers"] == sorted(TEST_SPEAKERS)
    assert not set(meta["training"]["train_speakers"]) & set(TEST_SPEAKERS)
    assert m["n_videos"] == 4 * 8 + 4  # 7 emotions at level 3 + 2 neutral sentences, per test speaker
    assert m["chance"] == pytest.approx(12.5)
    assert m["accuracy"] >= 50.0
    conf = np.array(m["confusion"])
    assert conf.shape == (8, 8) and conf.sum() == m["n_videos"]
    assert np.trace(conf) / conf.sum() * 100 == pytest.approx(m["accuracy"])
    assert list(m["per_class"]) == list(MEAD_EMOTIONS)
    # the protocol is pinned in the JSON
    assert meta["labels"] == list(MEAD_EMOTIONS)
    assert meta["input"]["frames_per_video"] == 8 and meta["input"]["input_size"] == 64
    assert meta["normalisation"]["per_speaker_mean"] is True
    assert len(meta["training"]["train_manifest_sha256"]) == 64 and meta["training"]["seed"] == 0
    assert meta["training"]["failures"] == {}


def _test_crops(processed: Path) -> tuple[dict, dict, dict]:
    """Test-split crops made as the recipe makes them (faces.parquet boxes), with truth and speakers."""
    from dicetalk_bench import media
    from dicetalk_bench.metrics.scoring_faces import square_face_crops

    crops, truth, speakers = {}, {}, {}
    for r in pq.read_table(processed / "clips.parquet").to_pylist():
        if r["split"] != "test":
            continue
        frames = media.read_video(processed / r["video"]).frames
        boxes = np.asarray(pq.read_table(processed / r["faces"]).column("box_crop").to_pylist())
        crops[r["clip_id"]] = square_face_crops(frames, boxes, 1.2, 64)
        truth[r["clip_id"]], speakers[r["clip_id"]] = r["emotion"], r["speaker"]
    return crops, truth, speakers


def test_checkpoint_round_trip_reproduces_the_test_accuracy(trained: tuple[Path, dict], processed: Path) -> None:
    from safetensors.numpy import load_file

    ckpt, meta = trained
    clf, record = et.load_own_classifier(ckpt)
    clf_json, _ = et.load_own_classifier(ckpt.with_suffix(".json"))  # either file names the checkpoint
    tensors = load_file(str(ckpt))
    np.testing.assert_allclose(clf.weight, tensors["weight"])
    np.testing.assert_allclose(clf_json.bias, tensors["bias"])
    assert clf.weight.shape == (8, clf.protocol.n_features)
    assert record == {"key": "own-emotion", "file": str(ckpt), "sha256": meta["weights_sha256"], "calibrated": False}
    crops, truth, speakers = _test_crops(processed)
    acc = et.score_speaker_normalised(clf, crops, truth, speakers)
    assert acc.accuracy == pytest.approx(meta["test_metrics"]["accuracy"])
    np.testing.assert_array_equal(acc.confusion, meta["test_metrics"]["confusion"])
    with pytest.raises(ValueError, match="for_speaker"):
        clf.frame_logits(next(iter(crops.values())))


def test_checkpoint_errors(trained: tuple[Path, dict], tmp_path: Path) -> None:
    ckpt, meta = trained
    with pytest.raises(FileNotFoundError, match="own_emotion.json"):
        shutil.copy(ckpt, tmp_path / ckpt.name)
        et.load_own_classifier(tmp_path / ckpt.name)
    (tmp_path / "own_emotion.json").write_text(json.dumps(meta | {"weights_sha256": "0" * 64}))
    with pytest.raises(ValueError, match="do not belong together"):
        et.load_own_classifier(tmp_path / ckpt.name)
    (tmp_path / "own_emotion.json").write_text("{not json")
    with pytest.raises(ValueError, match="not an own-emotion checkpoint"):
        et.load_own_classifier(tmp_path / ckpt.name)


def test_cli_errors(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="clips.parquet not found"):
        metrics_main(["train-emotion", "--processed", str(tmp_path), "--out", str(tmp_path / "c")])
    with pytest.raises(SystemExit, match="--epochs must be positive"):
        metrics_main(["train-emotion", "--processed", str(tmp_path), "--out", str(tmp_path / "c"), "--epochs", "0"])


def test_emo_acc_with_the_own_classifier_through_the_registry(trained: tuple[Path, dict], processed: Path,
                                                               tmp_path: Path) -> None:
    """The demo's test-speaker crop videos scored by Emo-Acc (BlazeFace tracking on the videos themselves)."""
    from dicetalk_bench.metrics.registry import ScoreRequest, compute_metrics

    ckpt, meta = trained
    videos = tmp_path / "videos"
    videos.mkdir()
    for r in pq.read_table(processed / "clips.parquet").to_pylist():
        if r["speaker"] in ("M003", "W015"):
            (videos / f"{r['speaker']}_{r['emotion']}_{r['level']}_{r['sentence']}.mp4").symlink_to(
                processed / r["video"])
    request = ScoreRequest(videos=videos, options={"emo-acc.classifier": f"own:{ckpt}"})
    (res,) = compute_metrics(["emo-acc"], request)
    print(f"emo-acc (own classifier, BlazeFace crops) on 2 test speakers: {res.value:.1f}% of {res.n_videos}")
    assert res.n_videos == 18 and not res.failures
    assert res.value >= 50.0
    assert res.protocol["aggregation"] == "mean-logit" and res.protocol["crop_scale"] == 1.2
    assert res.protocol["speakers"] == "MEAD actor id parsed from the clip id"
    assert res.extractors[0]["sha256"] == meta["weights_sha256"] and not res.calibrated
    with pytest.raises(ValueError, match="emo-acc.classifier"):
        compute_metrics(["emo-acc"], ScoreRequest(videos=videos, options={"emo-acc.classifier": "own:"}))
