"""Random FAN / S3FD builders write state dicts that face-alignment's own modules load strictly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dicetalk_bench.preprocessing.landmarks import FanLandmarker, write_random_fan, write_random_s3fd


def test_random_fan_and_s3fd_load_into_face_alignment_modules(tmp_path: Path) -> None:
    from face_alignment.detection.sfd.net_s3fd import s3fd
    from face_alignment.models import FAN

    write_random_fan(tmp_path / "2DFAN4-11f355bf06.pth.tar", seed=1)
    write_random_s3fd(tmp_path / "s3fd-619a316812.pth", seed=1)
    fan = FAN(4)
    fan.load_state_dict(torch.load(tmp_path / "2DFAN4-11f355bf06.pth.tar", weights_only=True), strict=True)
    det = s3fd()
    det.load_state_dict(torch.load(tmp_path / "s3fd-619a316812.pth", weights_only=True), strict=True)
    # same tensors as written (a real round trip, not only matching names)
    ref = torch.load(tmp_path / "2DFAN4-11f355bf06.pth.tar", weights_only=True)
    assert all(torch.equal(v, fan.state_dict()[k]) for k, v in ref.items())


def test_fan_without_weights_names_the_fetch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dicetalk_bench.weights import WeightsNotFoundError

    monkeypatch.setenv("DICETALK_BENCH_WEIGHTS_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    monkeypatch.delenv("DICETALK_BENCH_FAN_2D_WEIGHTS", raising=False)
    with pytest.raises(WeightsNotFoundError, match="python -m dicetalk_bench.weights fetch fan-2d"):
        FanLandmarker()


def test_batched_fan_matches_face_alignment_per_frame(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np

    from dicetalk_bench.preprocessing.landmarks import FanLandmarker

    write_random_fan(tmp_path / "2DFAN4-11f355bf06.pth.tar", seed=3)
    write_random_s3fd(tmp_path / "s3fd-619a316812.pth", seed=3)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    fan = FanLandmarker(fan_path=tmp_path / "2DFAN4-11f355bf06.pth.tar", s3fd_path=tmp_path / "s3fd-619a316812.pth",
                        allow_unverified=True, device="cpu")
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (3, 120, 160, 3), dtype=np.uint8)
    boxes = np.array([[30, 20, 110, 100], [45.5, 10.25, 120, 95], [20, 30, 90, 110.5]], np.float32)
    got = fan.batch(frames, boxes, batch_size=3)
    one = fan.batch(frames, boxes, batch_size=1)
    assert got.shape == (3, 68, 2)
    np.testing.assert_allclose(got, one, atol=1e-3)
    for f, b, g in zip(frames, boxes, got):
        ref = fan._fa.get_landmarks_from_image(f, detected_faces=[b.astype(np.float64)])[0][:, :2]
        np.testing.assert_allclose(g, ref, atol=1e-3)
    np.testing.assert_allclose(fan(frames[1], boxes[1]), got[1], atol=1e-3)
    with pytest.raises(ValueError, match="3 frames but 2 boxes"):
        fan.batch(frames, boxes[:2])


def test_pipeline_writes_fan_landmarks_per_frame(mini_mead, whisper_random, tmp_path, monkeypatch) -> None:
    """fan=true with weights resolved through the per-key variables (random, so allow_unverified)."""
    import numpy as np
    import pyarrow.parquet as pq

    from dicetalk_bench.preprocessing import pipeline
    from dicetalk_bench.preprocessing.discovery_mead import discover_mead
    from dicetalk_bench.preprocessing.landmarks import write_random_fan, write_random_s3fd
    from pre_helpers import fast_config

    fan_file, s3fd_file = tmp_path / "fan.pth.tar", tmp_path / "s3fd.pth"
    write_random_fan(fan_file, 0)
    write_random_s3fd(s3fd_file, 0)
    monkeypatch.setenv("DICETALK_BENCH_FAN_2D_WEIGHTS", str(fan_file))
    monkeypatch.setenv("DICETALK_BENCH_S3FD_WEIGHTS", str(s3fd_file))
    clip = discover_mead(mini_mead).clips[0]
    plan = pipeline.plan([clip], tmp_path / "out", fast_config(fan=True), allow_unverified=True)
    video_tasks = [t for t in plan.todo if isinstance(t, pipeline.VideoTask)]
    assert len(video_tasks) == 1
    record = pipeline.run_task(video_tasks[0])
    assert record["status"] == "ok", record
    table = pq.read_table(pipeline.video_outputs(tmp_path / "out", clip.clip_id)["faces"])
    lmk = np.stack([np.asarray(v, np.float32).reshape(68, 2) for v in table.column("lmk68_src").to_pylist()])
    assert lmk.shape == (table.num_rows, 68, 2) and np.isfinite(lmk).all()
    meta = table.schema.metadata[b"dicetalk_bench"].decode()
    assert '"fan-2d"' in meta and '"calibrated": false' in meta


def test_pipeline_without_fan_weights_stops_before_any_work(mini_mead, whisper_random, tmp_path, monkeypatch) -> None:
    """fan=true is a request: without the FAN / S3FD files the run stops at the start naming both, writes nothing."""
    from dicetalk_bench.preprocessing import pipeline
    from dicetalk_bench.preprocessing.discovery_mead import discover_mead
    from pre_helpers import fast_config

    from dicetalk_bench import weights

    blazeface = weights.resolve("blazeface-short").path  # the detector still needs its (real) model
    monkeypatch.setenv("DICETALK_BENCH_BLAZEFACE_SHORT_WEIGHTS", str(blazeface))
    empty = tmp_path / "no_weights"
    empty.mkdir()
    monkeypatch.setenv("DICETALK_BENCH_WEIGHTS_DIR", str(empty))
    monkeypatch.setenv("TORCH_HOME", str(empty))
    monkeypatch.delenv("DICETALK_BENCH_FAN_2D_WEIGHTS", raising=False)
    monkeypatch.delenv("DICETALK_BENCH_S3FD_WEIGHTS", raising=False)
    out = tmp_path / "out"
    with pytest.raises(pipeline.PipelineError) as info:
        pipeline.run(discover_mead(mini_mead).clips, mini_mead, out, fast_config(fan=True), workers=0, progress=False)
    text = str(info.value)
    assert "'fan-2d'" in text and "'s3fd'" in text and "python -m dicetalk_bench.weights fetch fan-2d" in text
    assert not out.exists()
    # without fan the same run needs neither file
    assert pipeline.preflight_weights(fast_config())["blazeface-short"]["key"] == "blazeface-short"
