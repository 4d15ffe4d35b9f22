"""Single decode: the detection pass keeps the frames for the crop pass within ``frame_buffer_mb``.

The kept-frames path, the over-budget fallback (second decode) and budget 0 must give identical outputs,
and the buffer never holds more than its budget.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from dicetalk_bench import media
from dicetalk_bench.preprocessing import pipeline, tasks
from dicetalk_bench.preprocessing.discovery_mead import discover_mead

from pre_helpers import fast_config


def _chunks(n_chunks: int, frames_per_chunk: int = 4, hw: int = 8):
    for c in range(n_chunks):
        frames = np.full((frames_per_chunk, hw, hw, 3), c, np.uint8)
        yield SimpleNamespace(frames=frames, pts_s=np.zeros(frames_per_chunk), start_index=c * frames_per_chunk)


def test_buffer_keeps_all_chunks_within_budget() -> None:
    chunk_bytes = 4 * 8 * 8 * 3
    buf = pipeline.FrameBuffer(_chunks(5), budget_bytes=5 * chunk_bytes)
    seen = list(buf)
    assert len(seen) == 5
    assert buf.chunks is not None and [c.frames[0, 0, 0, 0] for c in buf.chunks] == [0, 1, 2, 3, 4]
    assert all(a is b for a, b in zip(seen, buf.chunks))
    assert buf.peak_bytes == 5 * chunk_bytes


@pytest.mark.parametrize("budget_chunks", [0, 1, 4.5])
def test_buffer_over_budget_drops_and_stays_bounded(budget_chunks: float) -> None:
    chunk_bytes = 4 * 8 * 8 * 3
    budget = int(budget_chunks * chunk_bytes)
    buf = pipeline.FrameBuffer(_chunks(5), budget_bytes=budget)
    seen = [c.frames[0, 0, 0, 0] for c in buf]
    assert seen == [0, 1, 2, 3, 4]  # the stream itself passes through untouched
    assert buf.chunks is None  # the caller must decode again
    assert buf.peak_bytes <= budget


def test_frame_buffer_not_in_config_hash() -> None:
    a = pipeline.video_config_hash(fast_config())
    assert a == pipeline.video_config_hash(fast_config(frame_buffer_mb=0))
    assert a == pipeline.video_config_hash(fast_config(frame_buffer_mb=4096))


def _run_video(clip, root: Path, out: Path, cfg) -> dict:
    p = pipeline.plan([clip], out, cfg)
    recs = [pipeline.run_task(t) for t in p.todo if isinstance(t, pipeline.VideoTask)]
    assert len(recs) == 1 and recs[0]["status"] == "ok", recs
    return recs[0]


def test_single_decode_equals_two_passes(mini_mead: Path, whisper_random: Path, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    clip = discover_mead(mini_mead).clips[0]
    # count decodes: default budget must decode once, budget 0 and a tiny budget twice
    calls: list[Path] = []
    real = media.iter_video

    def counting(path, *a, **k):
        calls.append(Path(path))
        return real(path, *a, **k)

    monkeypatch.setattr(media, "iter_video", counting)
    frame_bytes = 3 * 128 * 128  # mini_mead frames are small; 2 frames' worth forces the fallback mid-clip
    budgets = {"default": None, "zero": 0.0, "tiny": 2 * frame_bytes / 2**20}
    outs, n_decodes = {}, {}
    for name, mb in budgets.items():
        cfg = fast_config() if mb is None else fast_config(frame_buffer_mb=mb)
        calls.clear()
        rec = _run_video(clip, mini_mead, tmp_path / name, cfg)
        n_decodes[name] = len(calls)
        outs[name] = (tmp_path / name / rec["faces"], tmp_path / name / rec["video"])
    assert n_decodes == {"default": 1, "zero": 2, "tiny": 2}
    ref_faces, ref_video = outs["default"]
    ref_frames = media.read_video(ref_video).frames
    assert len(ref_frames) > 2
    for name in ("zero", "tiny"):
        faces, video = outs[name]
        assert faces.read_bytes() == ref_faces.read_bytes(), name
        np.testing.assert_array_equal(media.read_video(video).frames, ref_frames, err_msg=name)


def test_workers_use_single_threaded_codecs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DICETALK_BENCH_WORKER", raising=False)
    assert tasks.codec_threads() is None
    monkeypatch.setenv("DICETALK_BENCH_WORKER", "1")
    assert tasks.codec_threads() == 1


def test_single_threaded_decode_and_encode_match(mini_mead: Path, tmp_path: Path) -> None:
    src = discover_mead(mini_mead).clips[0].video_path
    auto = np.concatenate([c.frames for c in media.iter_video(src, chunk_frames=5, fps=25.0)])
    one = np.concatenate([c.frames for c in media.iter_video(src, chunk_frames=5, fps=25.0, threads=1)])
    np.testing.assert_array_equal(auto, one)  # decoding is exact whatever the thread count
    with media.VideoWriter(tmp_path / "one.mp4", 25.0, preset="ultrafast", threads=1) as w:
        w.write(auto)
    back = media.read_video(tmp_path / "one.mp4").frames
    assert back.shape == auto.shape
    assert np.abs(back.astype(int) - auto.astype(int)).mean() < 3.0


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
def test_bad_frame_buffer_refused(bad: float) -> None:
    with pytest.raises(pipeline.PipelineError, match="frame_buffer_mb"):
        pipeline.validate_config(fast_config(frame_buffer_mb=bad))
