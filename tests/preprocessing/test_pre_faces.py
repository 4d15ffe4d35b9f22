"""Face tracking: IoU, linking, interpolation and smoothing maths; BlazeFace on a real face moving in a video."""

from __future__ import annotations

import numpy as np
import pytest

from dicetalk_bench.preprocessing import faces
from dicetalk_bench.preprocessing.faces import Detection, FaceTrackConfig, NoFaceError


def det(box, score=0.9):
    box = np.asarray(box, np.float32)
    kps = np.tile(((box[:2] + box[2:]) / 2)[None], (6, 1))
    return Detection(box, kps, score)


def test_iou_closed_form() -> None:
    a = np.array([[0, 0, 10, 10]])
    b = np.array([[5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 10, 10]])
    np.testing.assert_allclose(faces.iou(a, b), [[50 / 150, 0.0, 1.0]])


def test_linking_keeps_the_largest_persistent_face() -> None:
    dets = []
    for t in range(0, 50, 5):
        small = det([100 + t, 10, 120 + t, 30])   # 20 px face moving right, always present
        big = det([10, 10 + t, 60, 60 + t])       # 50 px face moving down
        dets.append((t, [small, big] if t != 20 else [small]))  # big missed once: interpolated
    tr = faces.build_track(dets, 50, 25.0, (200, 200), FaceTrackConfig(stride=5))
    assert tr.n_tracks == 2
    np.testing.assert_allclose(tr.boxes_xyxy[:, 0], 10, atol=1e-3)
    # linear motion is interpolated exactly and survives Savitzky-Golay smoothing unchanged (away from the end)
    np.testing.assert_allclose(tr.boxes_xyxy[:43, 1], 10 + np.arange(43), atol=1e-3)  # held after 45
    assert tr.detected[0] and not tr.detected[20] and not tr.detected[1]
    assert tr.scores[1] == 0 and tr.scores[5] == pytest.approx(0.9)
    assert tr.coverage() == pytest.approx(9 / 11)  # frames 0..45 step 5 + last (49) checked, 20 and 49 missed


def test_low_iou_starts_a_new_track_and_gaps_expire() -> None:
    dets = [(0, [det([0, 0, 10, 10])]), (5, [det([50, 50, 60, 60])]), (40, [det([0, 0, 10, 10])])]
    tracks = faces.link_tracks(dets, 0.3, max_gap_frames=25)
    assert len(tracks) == 3  # the jump is a new face; the return after 40 frames > 25 is a new track


def test_smoothing_reduces_jitter_but_keeps_linear_motion() -> None:
    rng = np.random.default_rng(0)
    T = 100
    cx = 50 + 0.5 * np.arange(T)
    boxes = np.stack([cx - 20, np.full(T, 10.0), cx + 20, np.full(T, 50.0)], 1)
    noisy = boxes + rng.normal(0, 2, boxes.shape)
    kps = np.zeros((T, 6, 2))
    w = faces.smoothing_window(T, 25.0, 0.28, 2)
    assert w == 7
    sm, _ = faces.smooth_track(noisy, kps, w, 2)
    clean, _ = faces.smooth_track(boxes, kps, w, 2)
    np.testing.assert_allclose(clean, boxes, atol=1e-4)
    assert np.std(np.diff(sm[:, 0])) < 0.5 * np.std(np.diff(noisy[:, 0]))
    assert faces.smoothing_window(3, 25.0, 0.28, 2) == 0  # too short: left as is


def test_no_detections_raise_naming_the_video() -> None:
    with pytest.raises(NoFaceError, match="clip.mp4: no face found"):
        faces.build_track([(0, []), (5, [])], 10, 25.0, (64, 64), FaceTrackConfig(), name="clip.mp4")


def test_blazeface_tracks_a_moving_face(make_face_frames) -> None:
    T = 30
    pos = np.stack([20 + 2 * np.arange(T), np.full(T, 24)], 1)
    frames = make_face_frames(T, 128, 160, [(64, pos)])
    tr = faces.track(frames, fps=25.0, config=FaceTrackConfig(stride=3, model="short"))
    assert tr.boxes_xyxy.shape == (T, 4) and tr.keypoints.shape == (T, 6, 2) and tr.frame_size == (160, 128)
    centre = (tr.boxes_xyxy[:, :2] + tr.boxes_xyxy[:, 2:]) / 2
    offset = centre - (pos + 32)  # detector box centre vs patch centre: a constant offset
    assert np.ptp(offset[:, 0]) < 3 and np.ptp(offset[:, 1]) < 3
    assert np.all(np.abs(offset) < 16)
    assert tr.detected[::3].all() and tr.coverage() == 1.0
    # eyes above the mouth, right eye (image left) left of the left eye
    k = tr.keypoints[0]
    assert k[0, 0] < k[1, 0] and k[0, 1] < k[3, 1]


def test_blazeface_picks_the_bigger_of_two_faces(make_face_frames) -> None:
    T = 10
    big = np.tile([[80, 30]], (T, 1))
    small = np.tile([[10, 40]], (T, 1))
    frames = make_face_frames(T, 128, 160, [(72, big), (44, small)])
    tr = faces.track(frames, config=FaceTrackConfig(stride=3, model="short"))
    assert tr.n_tracks == 2
    cx = (tr.boxes_xyxy[:, 0] + tr.boxes_xyxy[:, 2]) / 2
    assert np.all(np.abs(cx - 116) < 12)


def test_blank_video_has_no_face() -> None:
    with pytest.raises(NoFaceError, match="video array"):
        faces.track(np.full((4, 64, 64, 3), 90, np.uint8), config=FaceTrackConfig(model="short"))
