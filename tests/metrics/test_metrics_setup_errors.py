"""Set-up errors stop `metrics score` before any video is decoded; per-video failures are classified by type."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dicetalk_bench import media, weights
from dicetalk_bench.metrics import sync as sync_mod
from dicetalk_bench.metrics import syncnet  # noqa: F401  (registers its random-weights builder)
from dicetalk_bench.metrics.__main__ import main
from dicetalk_bench.metrics.registry import MetricOptionError, ScoreRequest, check_options, compute_metrics
from dicetalk_bench.metrics.result import load_results
from dicetalk_bench.preprocessing.faces import Detection

SIZE, N = 64, 12


class FixedDetector:
    def detect(self, frame):
        return [Detection(box_xyxy=np.array([12, 8, 52, 52], np.float32),
                          keypoints=np.array([[26, 24], [38, 24], [32, 32], [32, 40], [18, 26], [46, 26]],
                                             np.float32), score=0.99)]


def _frames(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(40, 220, (N, SIZE, SIZE, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("setup")
    audio = (0.2 * np.sin(np.arange(N * 640) * 2 * np.pi * 220 / 16000)).astype(np.float32)
    for i, cid in enumerate(["M003_happy_001", "M003_sad_002"]):
        media.write_video(root / "gen" / f"{cid}.mp4", _frames(i), 25.0, audio=audio, audio_rate=16000)
        media.write_video(root / "ref" / f"{cid}.mp4", _frames(i + 10), 25.0, audio=audio, audio_rate=16000)
    # a corrupt generated video (with a valid reference), and a clip whose emotion cannot be told
    (root / "gen" / "M003_angry_003.mp4").write_bytes(b"not a video at all")
    media.write_video(root / "ref" / "M003_angry_003.mp4", _frames(3), 25.0)
    media.write_video(root / "gen" / "clip_004.mp4", _frames(4), 25.0, audio=audio, audio_rate=16000)
    return root / "gen", root / "ref"


@pytest.fixture()
def no_weights(tmp_path, monkeypatch):
    """An empty weights folder and torch hub cache; no per-key environment variables."""
    empty = tmp_path / "empty-weights"
    empty.mkdir()
    monkeypatch.setenv("DICETALK_BENCH_WEIGHTS_DIR", str(empty))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    for key in weights.REGISTRY:
        monkeypatch.delenv(weights.env_var_for(key), raising=False)
    return empty


def _never_decode(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("a video was decoded before the weights pre-flight")

    monkeypatch.setattr(media, "read_video", fail)
    monkeypatch.setattr(sync_mod, "score_sync_video", fail)


def test_sync_without_face_detector_weights_stops_naming_the_fix(folders, no_weights, tmp_path, capsys,
                                                                  monkeypatch):
    gen, _ = folders
    syncnet = weights.make_random("syncnet", tmp_path / "w", seed=0)
    out = tmp_path / "res.json"
    _never_decode(monkeypatch)
    code = main(["score", "--videos", str(gen), "--metrics", "sync-c", "--out", str(out),
                 "--weights", f"syncnet={syncnet}", "--allow-unverified"])
    err = capsys.readouterr().err
    assert code == 1 and not out.exists()
    assert "blazeface-short" in err and "python -m dicetalk_bench.weights fetch blazeface-short" in err
    assert "Traceback" not in err and "weights 'syncnet'" not in err and "1 weights file(s)" in err


def test_every_missing_file_is_listed_once_before_scoring(folders, no_weights, tmp_path, capsys, monkeypatch):
    gen, ref = folders
    out = tmp_path / "res.json"
    _never_decode(monkeypatch)
    code = main(["score", "--videos", str(gen), "--reference", str(ref), "--metrics", "fid,lpips,fvd",
                 "--out", str(out), "--force-small-set"])
    err = capsys.readouterr().err
    assert code == 1 and not out.exists()
    for key in ("inception-fid", "lpips-alex", "i3d-400"):
        assert f"weights {key!r}" in err
    assert "3 weights file(s) missing" in err and "python -m dicetalk_bench.weights fetch inception-fid" in err


def test_option_dependent_weights_are_required(folders, no_weights, tmp_path):
    from dicetalk_bench.metrics.preflight import check_weights

    gen, ref = folders
    req = ScoreRequest(videos=gen, reference=ref, options={"fvd.backend": "i3d-torchscript"})
    with pytest.raises(weights.WeightsError, match="i3d-torchscript") as info:
        check_weights(["fvd"], req)
    assert "'i3d-400'" not in str(info.value)
    # an explicit --weights path is honoured; a detector given as an option needs no BlazeFace file
    syncnet = weights.make_random("syncnet", tmp_path / "w", seed=0)
    req = ScoreRequest(videos=gen, weights={"syncnet": str(syncnet)}, allow_unverified=True,
                       options={"faces.detector": FixedDetector()})
    assert set(check_weights(["sync-c"], req)) == {"syncnet"}
    with pytest.raises(weights.WeightsError, match="unknown weights key 'syncnett'|syncnett"):
        check_weights(["sync-c"], ScoreRequest(videos=gen, weights={"syncnett": str(syncnet)}))


def test_unknown_option_is_refused_naming_the_real_one(folders, tmp_path, capsys):
    gen, ref = folders
    out = tmp_path / "res.json"
    with pytest.raises(SystemExit) as info:
        main(["score", "--videos", str(gen), "--reference", str(ref), "--metrics", "fid", "--out", str(out),
              "--option", "fid.resize_mode=pytorch-fid"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "fid.resize_mode" in err and "Did you mean fid.mode?" in err
    assert "fid.crop" in err and not out.exists()


def test_option_values_and_unrequested_metrics_are_checked():
    with pytest.raises(MetricOptionError, match="'tf1', 'pytorch-fid'"):
        check_options(["fid"], {"fid.mode": "tf2"})
    with pytest.raises(MetricOptionError, match="read by metric 'kid'"):
        check_options(["fid"], {"kid.subsets": 5})
    with pytest.raises(MetricOptionError, match="an integer >= 1"):
        check_options(["fvd"], {"fvd.clips_per_video": 0})
    with pytest.raises(MetricOptionError, match="no such file"):
        check_options(["emo-acc"], {"emo-acc.labels": "/nonexistent/labels.json"})
    check_options(["fid", "kid", "emo-acc"], {"fid.mode": "pytorch-fid", "kid.subsets": 5,
                                              "emo-acc.classifier": "own:/x.safetensors"})
    with pytest.raises(MetricOptionError, match="'own:...'"):
        check_options(["emo-acc"], {"emo-acc.classifier": "own:"})
    # compute_metrics checks its group's options too (the library path, without the CLI)
    with pytest.raises(MetricOptionError, match="Did you mean ssim.mode"):
        compute_metrics(["ssim"], ScoreRequest(videos=".", reference=".", options={"ssim.mdoe": "gaussian"}))


def test_corrupt_video_is_an_unreadable_video_failure_counted(folders):
    gen, ref = folders
    (psnr,) = compute_metrics(["psnr"], ScoreRequest(videos=gen, reference=ref))
    assert psnr.failure_kinds == {"M003_angry_003": "unreadable-video", "clip_004": "missing-reference"}
    assert psnr.failures["M003_angry_003"].startswith("CorruptMediaError")
    assert psnr.extra["failure_counts"] == {"unreadable-video": 1, "missing-reference": 1}
    assert psnr.clip_ids == ("M003_angry_003", "M003_happy_001", "M003_sad_002", "clip_004")
    assert psnr.n_videos == 2 and psnr.failure_rate == 0.5 and psnr.protocol["failure_policy"] == "exclude"


@pytest.mark.parametrize("error", [KeyError("bug"), weights.WeightsNotFoundError("weights 'x' not found")])
def test_other_errors_inside_per_video_code_propagate(folders, monkeypatch, error):
    from dicetalk_bench.metrics import pixel

    def broken(*args, **kwargs):
        raise error

    gen, ref = folders
    monkeypatch.setattr(pixel, "frame_psnr", broken)
    with pytest.raises(type(error)):
        compute_metrics(["psnr"], ScoreRequest(videos=gen, reference=ref))


def test_emotion_accuracy_counts_a_failed_video_as_wrong(folders, tmp_path, monkeypatch):
    gen, _ = folders
    from dicetalk_bench.metrics import emotion

    wts = {"emotion-fan": str(weights.make_random("emotion-fan", tmp_path, seed=0))}
    # an oracle classifier: every video it sees is classified right, so only the failed one can be wrong
    def oracle_score(clf, crops, truth, aggregation="attention"):
        return emotion.emotion_accuracy(dict(truth), truth)

    monkeypatch.setattr(emotion, "score_emotion", oracle_score)
    req = ScoreRequest(videos=gen, weights=wts, allow_unverified=True, options={"faces.detector": FixedDetector()})
    (r,) = compute_metrics(["emo-acc"], req)
    # happy and sad right, angry (corrupt) counted wrong, clip_004 (no label) left out
    assert r.value == pytest.approx(200 / 3) and r.n_videos == 3
    assert r.per_video == {"M003_angry_003": 0.0, "M003_happy_001": 1.0, "M003_sad_002": 1.0}
    assert r.failure_kinds == {"M003_angry_003": "unreadable-video", "clip_004": "no-label"}
    assert r.protocol["failure_policy"] == "count-as-wrong" and r.extra["n_counted_wrong"] == 1
    assert r.n_attempted == 4 and r.failure_rate == 0.5
    json.dumps(r.to_dict())


def test_results_file_records_failure_kinds(folders, tmp_path):
    gen, ref = folders
    out = tmp_path / "r.json"
    assert main(["score", "--videos", str(gen), "--reference", str(ref), "--metrics", "psnr,ssim",
                 "--out", str(out)]) == 0
    for r in load_results(out):
        assert r.failure_kinds["M003_angry_003"] == "unreadable-video" and len(r.clip_ids) == 4


def test_own_emotion_classifier_file_is_checked_up_front(folders, tmp_path):
    from dicetalk_bench.metrics.preflight import check_weights

    gen, _ = folders
    req = ScoreRequest(videos=gen, options={"emo-acc.classifier": f"own:{tmp_path / 'mine'}",
                                            "faces.detector": FixedDetector()})
    with pytest.raises(weights.WeightsError, match="train-emotion"):
        check_weights(["emo-acc"], req)
    (tmp_path / "mine.safetensors").write_bytes(b"x")
    assert check_weights(["emo-acc"], req) == {}
