"""End-to-end pipeline on a tiny real MEAD tree, in process (workers=0): outputs, manifests, resume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from dicetalk_bench import media
from dicetalk_bench.preprocessing import audio_features as af
from dicetalk_bench.preprocessing import pipeline
from dicetalk_bench.preprocessing.discovery_mead import discover_mead
from dicetalk_bench.preprocessing.faces import FaceTrackConfig, track

from pre_helpers import fast_config


@pytest.fixture(scope="module")
def mead_run(mini_mead: Path, whisper_random: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("mead_out")
    clips = discover_mead(mini_mead).clips
    summary = pipeline.run(clips, mini_mead, out, fast_config(), workers=0, progress=False)
    return clips, out, summary


def test_outputs_and_manifest(mead_run) -> None:
    clips, out, summary = mead_run
    assert (summary.n_tasks, summary.n_todo, summary.n_ok, summary.n_failed) == (5, 5, 5, 0)
    m = pq.read_table(out / "clips.parquet").to_pylist()
    assert [r["clip_id"] for r in m] == sorted(c.clip_id for c in clips)
    assert all(r["status"] == "ok" and r["failure_reason"] is None for r in m)
    r = m[0]
    assert r["split"] == "test" and r["speaker"] == "M003" and r["n_frames"] == 30 and r["crop_size"] == 64
    assert r["src_fps"] == pytest.approx(30.0) and (r["src_width"], r["src_height"]) == (128, 128)
    assert len(r["src_video_sha256"]) == 64 and r["config_hash"] and r["preprocessing_version"] == "1"
    # both views of M003 share one audio feature file
    assert m[0]["audio_features"] == m[1]["audio_features"] == "audio/mead/M003/happy/level_1/001.parquet"
    assert pq.read_table(out / "failures.parquet").num_rows == 0

    info = media.probe(out / r["video"])
    assert (info.width, info.height, info.fps, info.audio_rate) == (64, 64, 25.0, 16000)
    assert info.video_codec == "h264" and info.has_audio
    assert media.read_video(out / r["video"]).frames.shape == (30, 64, 64, 3)


def test_faces_parquet(mead_run) -> None:
    _, out, _ = mead_run
    t = pq.read_table(out / "faces/mead/M003/front/happy/level_1/001.parquet")
    assert t.num_rows == 30 and t.column("frame").to_pylist() == list(range(30))
    meta = json.loads(t.schema.metadata[b"dicetalk_bench"])
    assert meta["coverage"] == 1.0 and meta["frame_size"] == [128, 128]
    aff = t.column("crop_affine").combine_chunks().to_numpy_ndarray()
    box_src = np.array(t.column("box_src").to_pylist())
    box_crop = np.array(t.column("box_crop").to_pylist())
    # the smoothed face box maps to the crop centre at half the crop size (expand 0.5 -> side = 2 x box)
    centre = (box_crop[:, :2] + box_crop[:, 2:]) / 2
    np.testing.assert_allclose(centre, 32, atol=1e-3)
    np.testing.assert_allclose(np.max(box_crop[:, 2:] - box_crop[:, :2], 1), 32, atol=1e-3)
    assert aff.shape == (30, 2, 3)
    mask = np.array(t.column("mask_box_crop").to_pylist())
    np.testing.assert_allclose(mask[:, 2] - mask[:, 0], 1.1 * (box_crop[:, 2] - box_crop[:, 0]), rtol=1e-4)
    kps = t.column("kps_src").combine_chunks().to_numpy_ndarray()
    assert kps.shape == (30, 6, 2)
    pts = t.column("pts_s").to_numpy()
    assert np.all(np.diff(pts) >= 0) and pts[-1] < 1.2
    assert np.all(box_src[:, 0] < box_src[:, 2])


def test_face_is_centred_in_the_output(mead_run) -> None:
    _, out, _ = mead_run
    tr = track(out / "videos/mead/M003/front/happy/level_1/001.mp4", config=FaceTrackConfig(model="short", stride=2))
    centre = (tr.boxes_xyxy[:, :2] + tr.boxes_xyxy[:, 2:]) / 2
    side = tr.boxes_xyxy[:, 2] - tr.boxes_xyxy[:, 0]
    assert np.all(np.abs(centre - 32) < 4), centre
    assert np.all(np.abs(side - 32) < 6), side


def test_audio_features_file(mead_run) -> None:
    _, out, _ = mead_run
    t = pq.read_table(out / "audio/mead/M003/happy/level_1/001.parquet")
    assert t.num_rows == 30  # 1.2 s * 16000 // 640
    assert t.schema.field("whisper").type == af.WHISPER_TYPE
    meta = af.table_metadata(t)
    assert meta["whisper"]["calibrated"] is False and len(meta["whisper"]["sha256"]) == 64
    wh = t.column("whisper").combine_chunks().to_numpy_ndarray()
    assert wh.shape == (30, 2, 5, 384) and wh.dtype == np.float16
    ipc = af.read_ipc_clip(out / "features.arrow", "mead/M003/happy/level_1/001")
    np.testing.assert_array_equal(ipc["whisper"], wh)


def test_rerun_skips_and_config_change_redoes_only_video(mead_run, mini_mead: Path) -> None:
    clips, out, _ = mead_run
    before = pq.read_table(out / "clips.parquet")
    again = pipeline.run(clips, mini_mead, out, fast_config(), workers=0, progress=False)
    assert again.n_todo == 0
    assert pq.read_table(out / "clips.parquet").equals(before)
    p = pipeline.plan(clips, out, fast_config(crop=dict(size=96)))
    assert {type(t).__name__ for t in p.todo} == {"VideoTask"} and len(p.todo) == 3
    p = pipeline.plan(clips, out, fast_config(audio=dict(silence_peak=2e-3)))
    assert {type(t).__name__ for t in p.todo} == {"AudioTask"} and len(p.todo) == 2
