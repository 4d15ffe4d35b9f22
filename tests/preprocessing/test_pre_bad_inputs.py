"""Each bad input gives a recorded failure with a clear reason; the run goes on and nothing partial remains."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from dicetalk_bench import media
from dicetalk_bench.preprocessing import pipeline
from dicetalk_bench.preprocessing.discovery_mead import discover_mead

from pre_helpers import fast_config, moving_face_frames, speech_like, write_clip

T = 36  # 1.2 s at 30 fps


def _write_vfr(path: Path, frames: np.ndarray, audio: np.ndarray) -> list[float]:
    """H.264 mp4 whose frame durations alternate 1/20 s and 1/40 s (variable frame rate); returns the pts."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    times, t = [], 0.0
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=30)
        s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        s.codec_context.time_base = Fraction(1, 1000)
        a = c.add_stream("aac", rate=16000)
        a.layout = "mono"
        for i, f in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(f, format="rgb24")
            vf.pts, vf.time_base = int(round(t * 1000)), Fraction(1, 1000)
            times.append(t)
            t += 1 / 20 if i % 2 == 0 else 1 / 40
            for p in s.encode(vf):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
        pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16)
        for k in range(0, len(pcm), 1024):
            af_ = av.AudioFrame.from_ndarray(pcm[None, k:k + 1024], format="s16", layout="mono")
            af_.sample_rate, af_.pts = 16000, k
            for p in a.encode(af_):
                c.mux(p)
        for p in a.encode():
            c.mux(p)
    return times


@pytest.fixture(scope="module")
def bad_tree(tmp_path_factory: pytest.TempPathFactory, make_face_frames) -> Path:
    root = tmp_path_factory.mktemp("bad") / "mead"
    v = lambda n: root / f"W020/video/front/angry/level_1/{n}.mp4"  # noqa: E731
    a = lambda n: root / f"W020/audio/angry/level_1/{n}.m4a"  # noqa: E731
    speech = speech_like(1.2)
    for n in ("001", "002", "003", "005", "006", "007", "008", "009"):
        a(n).parent.mkdir(parents=True, exist_ok=True)
        media.write_audio(a(n), np.zeros(19200, np.float32) if n == "005" else speech, 16000)
    v("001").parent.mkdir(parents=True, exist_ok=True)
    v("001").write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())  # corrupt
    good = write_clip(root / "tmp_good.mp4", moving_face_frames(T), fps=30.0)
    data = good.read_bytes()
    good.unlink()
    v("002").write_bytes(data[: len(data) * 6 // 10])  # truncated
    v("003").write_bytes(b"")  # zero-length
    write_clip(v("004"), moving_face_frames(T), fps=30.0)  # no audio stream anywhere
    write_clip(v("005"), moving_face_frames(T), fps=30.0)  # silent m4a
    write_clip(v("006"), np.full((T, 128, 128, 3), 90, np.uint8), fps=30.0)  # no face
    two = make_face_frames(T, 128, 160, [(72, np.tile([[80, 30]], (T, 1))), (44, np.tile([[10, 40]], (T, 1)))])
    write_clip(v("007"), two, fps=30.0)  # two faces: the bigger one is kept
    write_clip(v("008"), moving_face_frames(T, dx=6.0), fps=30.0)  # face leaves the frame half way
    _write_vfr(v("009"), moving_face_frames(T), speech)  # variable frame rate, own audio (no m4a needed)
    return root


@pytest.fixture(scope="module")
def bad_run(bad_tree: Path, whisper_random: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("bad_out")
    d = discover_mead(bad_tree)
    summary = pipeline.run(d.clips, bad_tree, out, fast_config(), workers=0, progress=False)
    rows = {r["sentence"]: r for r in pq.read_table(out / "clips.parquet").to_pylist()}
    return d, out, summary, rows


@pytest.mark.parametrize("sentence, pattern", [
    ("001", r"001\.mp4: .*(cannot|invalid|corrupt|decod)"),
    ("002", r"002\.mp4: .*(truncat|cannot|invalid|decod|corrupt)"),
    ("003", r"003\.mp4: .*(zero|empty)"),
    ("004", r"004\.mp4: .*no audio stream"),
    ("005", r"005\.m4a: audio is silent"),
    ("006", r"006\.mp4: no face found"),
    ("008", r"008\.mp4: the face is found on only \d+% of the checked frames"),
])
def test_bad_input_is_recorded_with_its_reason(bad_run, sentence: str, pattern: str) -> None:
    _, out, _, rows = bad_run
    r = rows[sentence]
    assert r["status"] == "failed"
    assert r["failure_reason"] and __import__("re").search(pattern, r["failure_reason"], flags=2), r["failure_reason"]
    assert not (out / f"videos/mead/W020/front/angry/level_1/{sentence}.mp4").exists()


def test_good_inputs_survive_among_bad_ones(bad_run) -> None:
    d, out, summary, rows = bad_run
    assert rows["007"]["status"] == "ok" and rows["007"]["n_face_tracks"] == 2
    assert rows["009"]["status"] == "ok"
    fails = pq.read_table(out / "failures.parquet").to_pylist()
    assert {f["task_id"].rsplit("/", 1)[1] for f in fails} == {"001", "002", "003", "004", "005", "006", "008"}
    assert all(f["reason"] and f["error_type"] for f in fails)
    assert not list(out.rglob(".*.tmp*"))


def test_two_faces_keeps_the_bigger(bad_run) -> None:
    _, out, _, _ = bad_run
    t = pq.read_table(out / "faces/mead/W020/front/angry/level_1/007.parquet")
    box = np.array(t.column("box_src").to_pylist())
    assert np.all(np.abs((box[:, 0] + box[:, 2]) / 2 - 116) < 12)


def test_variable_frame_rate_is_resampled_by_timestamps(bad_run) -> None:
    _, out, _, rows = bad_run
    r = rows["009"]
    # 36 frames whose durations alternate 50 / 25 ms: 18 * 75 ms = 1.35 s -> round(1.35 * 25) = 34 frames
    assert r["n_frames"] == 34
    pts = pq.read_table(out / "faces/mead/W020/front/angry/level_1/009.parquet").column("pts_s").to_numpy()
    assert np.all(np.diff(pts) >= 0)
    assert media.probe(out / r["video"]).fps == 25.0


def test_unexpected_folders_are_reported_and_skipped(bad_tree: Path) -> None:
    (bad_tree / "W020/video/front/angry/level_9").mkdir()
    (bad_tree / "W020/video/backstage").mkdir()
    try:
        d = discover_mead(bad_tree)
        assert {u.path.name for u in d.unexpected} == {"level_9", "backstage"}
        assert len(d.clips) == 9
    finally:
        (bad_tree / "W020/video/front/angry/level_9").rmdir()
        (bad_tree / "W020/video/backstage").rmdir()


def test_unwritable_output_folder(mini_mead: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    clips = discover_mead(mini_mead).clips
    with pytest.raises(pipeline.PipelineError, match=r"output folder .*file/out is not writable"):
        pipeline.run(clips, mini_mead, blocker / "out", fast_config(), workers=0, progress=False)


def test_unwritable_clip_folder_is_a_recorded_failure(mini_mead: Path, whisper_random: Path, tmp_path: Path) -> None:
    clips = [c for c in discover_mead(mini_mead).clips if c.speaker == "M003"]
    out = tmp_path / "out"
    (out / "videos/mead/M003/front/happy").mkdir(parents=True)
    (out / "videos/mead/M003/front/happy/level_1").write_text("a file where a folder must go")
    s = pipeline.run(clips, mini_mead, out, fast_config(), workers=0, progress=False)
    rows = {r["clip_id"]: r for r in pq.read_table(out / "clips.parquet").to_pylist()}
    bad = rows["mead/M003/front/happy/level_1/001"]
    assert bad["status"] == "failed" and "level_1" in bad["failure_reason"]
    assert rows["mead/M003/left_30/happy/level_1/001"]["status"] == "ok"
    assert s.n_failed == 1


def test_write_error_mid_clip_leaves_nothing_partial(mini_mead: Path, whisper_random: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    clips = [c for c in discover_mead(mini_mead).clips if c.speaker == "W011"]
    real_write = media.VideoWriter.write
    calls = {"n": 0}

    def failing_write(self, frames):
        calls["n"] += 1
        if calls["n"] == 2:
            raise media.MediaWriteError(self.path, "No space left on device (simulated)")
        return real_write(self, frames)

    monkeypatch.setattr(media.VideoWriter, "write", failing_write)
    out = tmp_path / "out"
    s = pipeline.run(clips, mini_mead, out, fast_config(chunk_frames=8), workers=0, progress=False)
    row = pq.read_table(out / "clips.parquet").to_pylist()[0]
    assert row["status"] == "failed" and "No space left on device" in row["failure_reason"]
    assert not (out / "videos/mead/W011/front/neutral/level_1/002.mp4").exists()
    assert not (out / "faces/mead/W011/front/neutral/level_1/002.parquet").exists()
    assert not list(out.rglob(".*.tmp*")) and not list(out.rglob("*.tmp.mp4"))
    assert (out / "audio/mead/W011/neutral/level_1/002.parquet").is_file()  # finished work is kept
    # the failure is retried on the next run (and now succeeds)
    monkeypatch.setattr(media.VideoWriter, "write", real_write)
    s2 = pipeline.run(clips, mini_mead, out, fast_config(chunk_frames=8), workers=0, progress=False)
    assert s.n_failed == 1 and s2.n_todo == 1 and s2.n_failed == 0
