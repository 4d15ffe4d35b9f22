"""HSEmotion EfficientNet-B0 AffectNet-8: parameter layout, pickled model -> safetensors through the registry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dicetalk_bench import weights
from dicetalk_bench.metrics import hsemotion as hs
from dicetalk_bench.metrics.emotion import HSEMOTION_8_LABELS, MEAD_EMOTIONS, score_emotion, to_mead_logits

KEYS_TSV = Path(__file__).resolve().parents[1] / "data" / "hsemotion_enet_b0_8.tsv"


def _reference_keys() -> list[tuple[str, tuple[int, ...]]]:
    lines = KEYS_TSV.read_text().splitlines()
    assert lines[0].startswith("# source: HSE-asavchenko/face-emotion-recognition@d0ac879")
    out = []
    for ln in lines[1:]:
        name, shape = ln.split("\t")
        out.append((name, tuple(int(v) for v in shape.strip("()").split(",") if v.strip())))
    return out


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Random weights in the official format (a whole pickled model), converted once as the docs say."""
    d = tmp_path_factory.mktemp("hse")
    mp = pytest.MonkeyPatch()
    mp.setenv(weights.WEIGHTS_DIR_ENV, str(d / "wdir"))  # convert records its pin there
    try:
        pt = weights.make_random(hs.WEIGHTS_KEY, d, seed=0)
        out = weights.convert(hs.WEIGHTS_KEY, pt, d / "enet_b0_8_best_afew.safetensors", trust_pickle=True)
        yield pt, out
    finally:
        mp.undo()


def test_parameter_names_and_shapes_equal_the_reference() -> None:
    model = hs.build_enet_b0_8()
    ours = [(k, tuple(v.shape)) for k, v in model.state_dict().items()]
    ref = _reference_keys()
    assert len(ref) == 360
    assert ours == ref  # names, shapes and order


def test_pickled_file_is_refused_then_converted_file_loads(converted: tuple[Path, Path],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    pt, out = converted
    monkeypatch.setenv(weights.WEIGHTS_DIR_ENV, str(out.parent / "wdir"))
    obj = torch.load(pt, map_location="cpu", weights_only=False)
    assert isinstance(obj, torch.nn.Module)  # the official format: a whole pickled model
    with pytest.raises(weights.WeightsError, match="convert"):
        hs.load_hsemotion(pt, allow_unverified=True)
    clf, record = hs.load_hsemotion(out)  # accepted through the pin that convert recorded
    assert record["sha256"] == weights.file_sha256(out) and record["calibrated"] is False
    ref = obj.state_dict()
    for k, v in clf.model.state_dict().items():
        torch.testing.assert_close(v, ref[k], rtol=0, atol=0)


def test_inference_matches_the_hsemotion_transform(converted: tuple[Path, Path],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    pt, out = converted
    monkeypatch.setenv(weights.WEIGHTS_DIR_ENV, str(out.parent / "wdir"))
    clf, _ = hs.load_hsemotion(out)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (3, 224, 224, 3), dtype=np.uint8)
    logits = clf.frame_logits(frames)
    assert logits.shape == (3, 8) and np.isfinite(logits).all()
    # independent reference: ToTensor + Normalize(ImageNet mean/std) by hand, then the pickled model itself
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255.0
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    x = (x - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)
    with torch.no_grad():
        ref = torch.load(pt, map_location="cpu", weights_only=False).eval()(x).numpy()
    np.testing.assert_allclose(logits, ref, rtol=1e-4, atol=1e-4)
    # batch-size independence, and other frame sizes resized to 224
    np.testing.assert_allclose(clf.frame_logits(frames[:1]), logits[:1], rtol=1e-4, atol=1e-4)
    assert clf.frame_logits(rng.integers(0, 256, (2, 96, 96, 3), dtype=np.uint8)).shape == (2, 8)
    with pytest.raises(ValueError, match="uint8"):
        clf.frame_logits(frames.astype(np.float32))


def test_label_map_onto_mead(converted: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    assert HSEMOTION_8_LABELS == ("Anger", "Contempt", "Disgust", "Fear", "Happiness", "Neutral", "Sadness",
                                  "Surprise")
    assert sorted(hs.HSEmotionClassifier.label_map[lab] for lab in HSEMOTION_8_LABELS) == sorted(MEAD_EMOTIONS)
    eye = to_mead_logits(np.eye(8), HSEMOTION_8_LABELS, hs.HSEmotionClassifier.label_map)
    assert [MEAD_EMOTIONS[i] for i in eye.argmax(axis=1)] == ["angry", "contempt", "disgusted", "fear", "happy",
                                                               "neutral", "sad", "surprised"]
    _, out = converted
    monkeypatch.setenv(weights.WEIGHTS_DIR_ENV, str(out.parent / "wdir"))
    clf, _ = hs.load_hsemotion(out)
    frames = np.random.default_rng(1).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    acc = score_emotion(clf, {"a": frames, "b": frames[::-1]}, {"a": "happy", "b": "sad"}, aggregation="majority")
    assert acc.n_videos == 2 and set(acc.predictions.values()) <= set(MEAD_EMOTIONS)


class _FixedDetector:
    def detect(self, frame):
        from dicetalk_bench.preprocessing.faces import Detection

        kps = np.array([[38, 36], [58, 36], [48, 48], [48, 60], [28, 40], [68, 40]], np.float32)
        return [Detection(box_xyxy=np.array([24, 16, 72, 72], np.float32), keypoints=kps, score=0.99)]


def test_emo_acc_with_hsemotion_through_the_registry(converted: tuple[Path, Path], tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from dicetalk_bench import media
    from dicetalk_bench.metrics.registry import ScoreRequest, compute_metrics

    _, out = converted
    monkeypatch.setenv(weights.WEIGHTS_DIR_ENV, str(out.parent / "wdir"))
    rng = np.random.default_rng(0)
    for cid in ("M003_happy_001", "W009_sad_002"):
        media.write_video(tmp_path / "gen" / f"{cid}.mp4", rng.integers(40, 220, (6, 96, 96, 3), dtype=np.uint8), 25.0)
    request = ScoreRequest(videos=tmp_path / "gen", weights={hs.WEIGHTS_KEY: str(out)},
                           options={"emo-acc.classifier": "hsemotion", "faces.detector": _FixedDetector()})
    (res,) = compute_metrics(["emo-acc"], request)
    assert res.n_videos == 2 and not res.failures and res.value in (0.0, 50.0, 100.0)
    assert res.protocol["classifier"].startswith("HSEmotion") and res.protocol["aggregation"] == "mean-logit"
    assert res.extractors[0]["key"] == hs.WEIGHTS_KEY and not res.calibrated
