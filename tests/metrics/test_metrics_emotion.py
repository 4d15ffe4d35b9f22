"""Emotion accuracy: oracle classifier on a synthetic set, label maps, aggregation modes, Emotion-FAN keys/loading."""

from pathlib import Path

import numpy as np
import pytest
import torch

from dicetalk_bench import weights
from dicetalk_bench.metrics.emotion import (EAT_FAN_LABELS, EAT_FAN_TO_MEAD, HSEMOTION_8_LABELS, HSEMOTION_8_TO_MEAD,
                                            MEAD_EMOTIONS, EmotionFAN, aggregate_video, emotion_accuracy,
                                            load_emotion_fan, score_emotion, to_mead_logits)

KEYS_TSV = Path(__file__).resolve().parents[1] / "data" / "emotion_fan_resnet18_at.tsv"

# each emotion is painted as a grey level; the oracle reads it back from the mean colour of the crop
LEVEL = {name: 20 + 25 * i for i, name in enumerate(MEAD_EMOTIONS)}


class OracleClassifier:
    labels = tuple(n.upper() for n in MEAD_EMOTIONS)[::-1]  # its own order and names, to exercise the label map
    label_map = {n.upper(): n for n in MEAD_EMOTIONS}

    def frame_logits(self, frames):
        m = frames.reshape(len(frames), -1).mean(1)
        levels = np.array([LEVEL[self.label_map[lab]] for lab in self.labels], float)
        return -np.abs(m[:, None] - levels[None, :])


def _video(emotion, n=4):
    return np.full((n, 16, 16, 3), LEVEL[emotion], np.uint8)


def test_oracle_three_of_four_right_gives_75_percent():
    truth = {"v1": "happy", "v2": "sad", "v3": "contempt", "v4": "angry"}
    videos = {"v1": _video("happy"), "v2": _video("sad"), "v3": _video("contempt"), "v4": _video("fear")}
    for mode in ("mean-logit", "majority"):
        res = score_emotion(OracleClassifier(), videos, truth, aggregation=mode)
        assert res.accuracy == 75.0 and res.n_videos == 4
        assert res.predictions["v4"] == "fear"
        assert res.per_class == {"angry": 0.0, "contempt": 100.0, "disgusted": None, "fear": None, "happy": 100.0,
                                 "neutral": None, "sad": 100.0, "surprised": None}
        conf = res.confusion
        assert conf.sum() == 4 and np.trace(conf) == 3
        assert conf[MEAD_EMOTIONS.index("angry"), MEAD_EMOTIONS.index("fear")] == 1


def test_failed_videos_are_recorded_not_scored():
    res = score_emotion(OracleClassifier(), {"a": _video("happy"), "b": _video("sad")[:0]},
                        {"a": "happy", "b": "sad"})
    assert res.accuracy == 100.0 and res.n_videos == 1 and "b" in res.failures


def test_label_maps_reach_the_eight_mead_names():
    assert sorted(EAT_FAN_TO_MEAD[lab] for lab in EAT_FAN_LABELS) == sorted(MEAD_EMOTIONS)
    assert sorted(HSEMOTION_8_TO_MEAD[lab] for lab in HSEMOTION_8_LABELS) == sorted(MEAD_EMOTIONS)
    x = np.arange(8.0)[None]
    mead = to_mead_logits(x, EAT_FAN_LABELS, EAT_FAN_TO_MEAD)
    assert mead[0, MEAD_EMOTIONS.index("happy")] == 0 and mead[0, MEAD_EMOTIONS.index("contempt")] == 7
    assert mead[0, MEAD_EMOTIONS.index("surprised")] == 6


def test_seven_class_model_refuses_contempt_videos():
    labels7 = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    map7 = {"angry": "angry", "disgust": "disgusted", "fear": "fear", "happy": "happy", "sad": "sad",
            "surprise": "surprised", "neutral": "neutral"}
    mead = to_mead_logits(np.zeros((2, 7)), labels7, map7)
    assert np.isneginf(mead[:, MEAD_EMOTIONS.index("contempt")]).all()

    class Seven:
        labels, label_map = labels7, map7

        def frame_logits(self, frames):
            return np.zeros((len(frames), 7))

    with pytest.raises(ValueError, match="cannot predict \\['contempt'\\]"):
        score_emotion(Seven(), {"a": _video("happy")}, {"a": "contempt"})
    with pytest.raises(ValueError, match="no MEAD name"):
        to_mead_logits(np.zeros((1, 2)), ("a", "b"), {"a": "happy"})
    with pytest.raises(ValueError, match="one-to-one"):
        to_mead_logits(np.zeros((1, 2)), ("a", "b"), {"a": "happy", "b": "happy"})


def test_aggregation_modes_on_crafted_logits():
    # 3 frames vote class 0 weakly, 2 frames vote class 1 strongly: majority -> 0, mean-logit -> 1
    x = np.zeros((5, 8))
    x[:3, 0], x[:3, 1] = 1.0, 0.9
    x[3:, 1] = 10.0
    assert aggregate_video(x, "majority") == 0
    assert aggregate_video(x, "mean-logit") == 1
    # a 2-2 tie in votes goes to the tied class with the larger mean logit
    y = np.zeros((4, 8))
    y[:2, 2], y[2:, 5] = 1.0, 3.0
    assert aggregate_video(y, "majority") == 5
    with pytest.raises(ValueError, match="not a frame-logit mode"):
        aggregate_video(x, "attention")
    with pytest.raises(ValueError, match="unknown aggregation"):
        score_emotion(OracleClassifier(), {"a": _video("happy")}, {"a": "happy"}, aggregation="vote")
    with pytest.raises(ValueError, match="attention"):
        score_emotion(OracleClassifier(), {"a": _video("happy")}, {"a": "happy"}, aggregation="attention")


def test_accuracy_input_errors():
    with pytest.raises(ValueError, match="no true label"):
        emotion_accuracy({"a": "happy"}, {})
    with pytest.raises(ValueError, match="not a MEAD emotion"):
        emotion_accuracy({"a": "joy"}, {"a": "happy"})
    with pytest.raises(ValueError, match="no videos"):
        emotion_accuracy({}, {})


def _reference_keys():
    rows = []
    for line in KEYS_TSV.read_text().splitlines():
        if line and not line.startswith("#"):
            name, shape = line.split("\t")
            rows.append((name, tuple(int(x) for x in shape.strip("()").split(",") if x.strip())))
    return rows


def test_emotion_fan_keys_equal_the_evaluation_eat_layout():
    ours = sorted((k, tuple(v.shape)) for k, v in EmotionFAN().state_dict().items())
    assert ours == sorted(_reference_keys())


def test_emotion_fan_random_checkpoint_loads_and_attention_pooling_matches_eat_formula(tmp_path):
    path = weights.make_random("emotion-fan", tmp_path, seed=0)
    raw = torch.load(path, weights_only=True)
    assert set(raw) == {"epoch", "state_dict", "accuracy", "name"}
    assert all(k.startswith("module.") for k in raw["state_dict"])
    clf, record = load_emotion_fan(path, allow_unverified=True)
    assert record["calibrated"] is False
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (3, 112, 112, 3), dtype=np.uint8)  # resized to 224 inside
    per_frame = clf.frame_logits(frames)
    video = clf.video_logits(frames)
    assert per_frame.shape == (3, 8) and video.shape == (8,)
    # EAT val(): index-matrix form of the second level for one video, written out independently
    f, a = clf._features(frames)
    m = clf.model
    with torch.no_grad():
        index = torch.ones((1, 3))
        vm = index.mm(f * a) / index.mm(a)
        vs = torch.cat([f, index.t().mm(vm)], 1)
        betas = m.beta(vs)
        ref = m.pred_fc2(index.mm(vs * a) / index.mm(a * betas))[0]
    np.testing.assert_allclose(video, ref.numpy(), rtol=1e-5, atol=1e-6)
    # frame logits do not depend on the batch size
    clf.batch_size = 1
    np.testing.assert_allclose(clf.frame_logits(frames), per_frame, rtol=1e-4, atol=1e-5)
    res = score_emotion(clf, {"x": frames}, {"x": "happy"}, aggregation="attention")
    assert res.predictions["x"] == MEAD_EMOTIONS[int(np.argmax(to_mead_logits(video[None], EAT_FAN_LABELS,
                                                                                EAT_FAN_TO_MEAD)[0]))]


def test_emotion_fan_ignores_a_fer_plus_fc_head_and_refuses_wrong_files(tmp_path):
    state = {f"module.{k}": v for k, v in EmotionFAN().state_dict().items()}
    state["module.fc.weight"] = torch.zeros(8, 512)
    state["module.fc.bias"] = torch.zeros(8)
    ok = tmp_path / "ok.pth"
    torch.save({"state_dict": state}, ok)
    load_emotion_fan(ok, allow_unverified=True)
    state.pop("module.pred_fc2.bias")
    bad = tmp_path / "bad.pth"
    torch.save({"state_dict": state}, bad)
    with pytest.raises(weights.WeightsError, match="bad.pth"):
        load_emotion_fan(bad, allow_unverified=True)
    with pytest.raises(ValueError, match="uint8"):
        load_emotion_fan(ok, allow_unverified=True)[0].frame_logits(np.zeros((1, 8, 8, 3), np.float32))
