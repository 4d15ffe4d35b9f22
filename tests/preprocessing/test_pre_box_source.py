"""Face-box providers are pluggable (BlazeFace by default) and every box records which one made it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from dicetalk_bench.preprocessing import faces
from dicetalk_bench.preprocessing.crop import CropConfig
from dicetalk_bench.preprocessing.pipeline import PreprocessConfig, detector_keys, faces_table, video_config_hash

BOX = np.array([20.0, 12.0, 44.0, 40.0], np.float32)


class FixedBoxDetector:
    """A scripted stand-in provider: one face at a fixed box on every frame."""

    def detect(self, frame):
        kps = np.tile(((BOX[:2] + BOX[2:]) / 2)[None], (6, 1)).astype(np.float32)
        return [faces.Detection(BOX.copy(), kps, 0.9)]


@pytest.fixture
def fixed_source():
    made = []

    def make(config, frame_size):
        made.append(frame_size)
        return FixedBoxDetector()

    faces.register_box_source(faces.BoxSource("fixed-test", make, lambda config: ("fixed-test-weights",)))
    yield made
    faces.BOX_SOURCES.pop("fixed-test", None)


def test_a_registered_source_makes_and_records_the_boxes(fixed_source):
    frames = np.zeros((12, 64, 72, 3), np.uint8)
    cfg = faces.FaceTrackConfig(box_source="fixed-test", stride=3)
    track = faces.track(frames, fps=25.0, config=cfg)
    assert fixed_source == [(72, 64)] and track.box_source == "fixed-test"
    np.testing.assert_allclose(track.boxes_xyxy, np.tile(BOX, (12, 1)), atol=1e-4)
    mats = np.tile(np.array([[1.0, 0, 0], [0, 1.0, 0]]), (12, 1, 1))
    table = faces_table("c", track, mats, CropConfig(size=64))
    assert set(table.column("box_source").to_pylist()) == {"fixed-test"}
    assert detector_keys(cfg) == ("fixed-test-weights",)
    assert detector_keys(faces.FaceTrackConfig()) == ("blazeface-short", "blazeface-full")


def test_default_source_keeps_the_config_hash_and_another_changes_it(fixed_source):
    default = PreprocessConfig()
    other = dataclasses.replace(default, faces=dataclasses.replace(default.faces, box_source="fixed-test"))
    assert video_config_hash(default) != video_config_hash(other)
    from dicetalk_bench.config import config_hash, to_dict
    from dicetalk_bench.preprocessing.manifest import PREPROCESSING_VERSION

    d = to_dict(default)
    part = {k: d[k] for k in ("fps", "sample_rate", "faces", "crop", "min_face_coverage", "crf", "preset", "fan")}
    part["faces"].pop("box_source")  # outputs made before the provider was a setting stay valid
    assert video_config_hash(default) == config_hash(part | {"version": PREPROCESSING_VERSION})


def test_unknown_source_is_refused_before_decoding(tmp_path):
    with pytest.raises(ValueError, match="'yolo' is not registered; known: .*blazeface"):
        faces.track(tmp_path / "missing.mp4", config=faces.FaceTrackConfig(box_source="yolo"))
    with pytest.raises(ValueError, match="already registered"):
        faces.register_box_source(faces.BOX_SOURCES["blazeface"])


def test_a_detector_passed_in_is_recorded_by_its_name():
    det = FixedBoxDetector()
    assert faces.track(np.zeros((3, 32, 32, 3), np.uint8), detector=det).box_source == "custom"
    det.box_source = "yolov5m-face"
    assert faces.track(np.zeros((3, 32, 32, 3), np.uint8), detector=det).box_source == "yolov5m-face"
