"""Tests of dicetalk_bench.media: closed-form fps resampling, round trips, streaming and every error path.

All clips are tiny (64x48, 2 s) and written once per module.
"""

from __future__ import annotations

import errno
import os
from fractions import Fraction
from pathlib import Path

import av
import av.error
import numpy as np
import pytest

from dicetalk_bench import media

H, W, FPS, T = 48, 64, 30, 60  # 2 s clip
SR = 16000


def _smooth_frames(n: int = T, h: int = H, w: int = W) -> np.ndarray:
    """(n, h, w, 3) uint8 slowly varying gradients: little lost to 4:2:0 chroma subsampling."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    t = np.arange(n, dtype=np.float64)[:, None, None]
    r = 40 + 2.0 * xx[None] + t
    g = 60 + 2.0 * yy[None] + 0 * t
    b = 100 + xx[None] + yy[None] - t
    return np.clip(np.stack([r, g, b], axis=-1), 0, 255).astype(np.uint8)


def _sine(freq: float, rate: int, seconds: float, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(rate * seconds))) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _peak_hz(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[np.argmax(spectrum)])


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    return _smooth_frames()


@pytest.fixture(scope="module")
def clip(clip_dir: Path, frames: np.ndarray) -> Path:
    """64x48 30 fps 2 s H.264 (crf 0) + 440 Hz AAC 16 kHz mp4."""
    audio = _sine(440, SR, T / FPS)
    return media.write_video(clip_dir / "clip.mp4", frames, FPS, audio=audio, audio_rate=SR, crf=0, preset="ultrafast")


@pytest.fixture(scope="module")
def silent_clip(clip_dir: Path, frames: np.ndarray) -> Path:
    # default preset (medium): B-frames, so presentation order differs from decode order
    return media.write_video(clip_dir / "silent.mp4", frames[:10], 25, crf=10)


# ------------------------------------------------------------------------------------------------
# resample_indices: closed forms
# ------------------------------------------------------------------------------------------------
def test_resample_30_to_25_closed_form() -> None:
    idx = media.resample_indices(np.arange(60) / 30, 25, 2.0)
    # output k takes the last i with i/30 < (k + 0.5)/25  <=>  i = (6k + 2) // 5
    k = np.arange(50)
    np.testing.assert_array_equal(idx, (6 * k + 2) // 5)
    assert sorted(set(range(60)) - set(idx.tolist())) == list(range(3, 60, 6))  # one drop in every 6


def test_resample_identity_and_duplication() -> None:
    pts = np.arange(50) / 25
    np.testing.assert_array_equal(media.resample_indices(pts, 25, 2.0), np.arange(50))
    np.testing.assert_array_equal(media.resample_indices(pts, 50, 2.0), np.arange(100) // 2)


def test_resample_variable_frame_rate_and_ties() -> None:
    pts = np.array([0.0, 0.04, 0.05, 0.12, 0.20, 0.21, 0.30])
    # slots round(t * 25) = 0, 1, 1.25->1, 3, 5, 5.25->5, 7.5->8 (half rounds up); 0.38 s -> 9.5 -> 10 frames
    expected = [0, 2, 2, 3, 3, 5, 5, 5, 6, 6]
    np.testing.assert_array_equal(media.resample_indices(pts, 25, 0.38), expected)
    # only times relative to the first frame matter
    np.testing.assert_array_equal(media.resample_indices(pts + 7.3, 25, 0.38), expected)


def test_resample_indices_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="non-decreasing"):
        media.resample_indices(np.array([0.0, 0.1, 0.05]), 25, 1.0)
    with pytest.raises(ValueError, match="non-empty"):
        media.resample_indices(np.array([]), 25, 1.0)
    with pytest.raises(ValueError, match="target_fps"):
        media.resample_indices(np.array([0.0]), 0, 1.0)


# ------------------------------------------------------------------------------------------------
# Round trips
# ------------------------------------------------------------------------------------------------
def test_probe(clip: Path) -> None:
    info = media.probe(clip)
    assert (info.has_video, info.has_audio) == (True, True)
    assert (info.width, info.height, info.n_frames) == (W, H, T)
    assert info.fps == pytest.approx(FPS)
    assert info.duration_s == pytest.approx(2.0, abs=1 / FPS)
    assert (info.audio_rate, info.audio_channels) == (SR, 1)
    assert (info.video_codec, info.audio_codec) == ("h264", "aac")


def test_video_round_trip(clip: Path, frames: np.ndarray) -> None:
    video = media.read_video(clip)
    assert video.frames.shape == (T, H, W, 3) and video.frames.dtype == np.uint8
    assert video.fps == pytest.approx(FPS)
    np.testing.assert_allclose(video.pts_s, np.arange(T) / FPS, atol=1e-6)
    diff = np.abs(video.frames.astype(np.int16) - frames.astype(np.int16))
    assert diff.mean() < 1.5 and diff.max() <= 12  # crf 0 is lossless in YUV; only RGB<->YUV 4:2:0 rounding


def test_audio_round_trip(clip: Path) -> None:
    audio = media.read_audio(clip, SR)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(audio.size - 2.0 * SR) <= SR / FPS  # within one video frame
    ref = _sine(440, SR, 2.0)
    n = min(audio.size, ref.size)
    assert np.corrcoef(audio[:n], ref[:n])[0, 1] > 0.99  # no time shift from AAC priming
    assert _peak_hz(audio, SR) == pytest.approx(440, abs=1)
    upsampled = media.read_audio(clip, 48000)
    assert abs(upsampled.size - 2.0 * 48000) <= 48000 / FPS
    assert _peak_hz(upsampled, 48000) == pytest.approx(440, abs=1)


def test_streaming_chunks_equal_read_video(clip: Path) -> None:
    for fps in (None, 25.0):
        whole = media.read_video(clip, fps=fps)
        chunks = list(media.iter_video(clip, chunk_frames=7, fps=fps))
        assert [c.frames.shape[0] for c in chunks[:-1]] == [7] * (len(chunks) - 1)
        assert [c.start_index for c in chunks] == [7 * i for i in range(len(chunks))]
        np.testing.assert_array_equal(np.concatenate([c.frames for c in chunks]), whole.frames)
        np.testing.assert_array_equal(np.concatenate([c.pts_s for c in chunks]), whole.pts_s)


def test_read_video_resampled_30_to_25(clip: Path) -> None:
    source = media.read_video(clip)
    resampled = media.read_video(clip, fps=25)
    assert resampled.fps == 25.0 and resampled.frames.shape[0] == 50
    expected = (6 * np.arange(50) + 2) // 5
    np.testing.assert_allclose(resampled.pts_s, expected / FPS, atol=1e-6)
    np.testing.assert_array_equal(resampled.frames, source.frames[expected])


def test_read_video_max_frames(clip: Path) -> None:
    head = media.read_video(clip, max_frames=10)
    np.testing.assert_array_equal(head.frames, media.read_video(clip).frames[:10])


def _write_vfr(path: Path, pts_ms: list[int]) -> None:
    """H.264 mp4 whose frame i is the constant colour 30 * i, shown at pts_ms[i] milliseconds."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.options = {"crf": "0", "preset": "ultrafast"}
        stream.codec_context.time_base = Fraction(1, 1000)
        for i, p in enumerate(pts_ms):
            frame = av.VideoFrame.from_ndarray(np.full((H, W, 3), 30 * i, np.uint8), format="rgb24")
            frame.pts, frame.time_base = p, Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def test_variable_frame_rate_resampled_to_25(clip_dir: Path) -> None:
    pts_ms = [0, 40, 50, 120, 200, 210, 300]
    path = clip_dir / "vfr.mp4"
    _write_vfr(path, pts_ms)
    source = media.read_video(path)
    np.testing.assert_allclose(source.pts_s, np.array(pts_ms) / 1000, atol=1e-6)
    # the muxer decides how long the last frame lasts; read it independently of media.py
    with av.open(str(path)) as container:
        last = list(container.decode(video=0))[-1]
        end_s = float((last.pts + last.duration) * last.time_base)
    resampled = media.read_video(path, fps=25)
    assert resampled.frames.shape[0] == int(np.floor(end_s * 25 + 0.5))
    colour_index = np.round(resampled.frames[:, H // 2, W // 2, 0] / 30).astype(int)
    np.testing.assert_array_equal(colour_index[:8], [0, 2, 2, 3, 3, 5, 5, 5])  # see the closed-form test
    assert np.all(colour_index[8:] == 6)


def _ffmpeg_fps_filter(path: Path, fps: str) -> np.ndarray:
    """Independent reference: FFmpeg's own ``fps`` filter (what ``ffmpeg -r`` uses) through PyAV's
    filter graph. Returns (N, H, W, 3) uint8 frames."""
    out = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        graph = av.filter.Graph()
        source = graph.add_buffer(template=stream)
        fps_filter = graph.add("fps", f"fps={fps}")
        sink = graph.add("buffersink")
        source.link_to(fps_filter)
        fps_filter.link_to(sink)
        graph.configure()

        def pull() -> None:
            while True:
                try:
                    out.append(graph.pull().to_ndarray(format="rgb24"))
                except (av.error.BlockingIOError, av.error.EOFError):
                    return

        for frame in container.decode(stream):
            graph.push(frame)
            pull()
        graph.push(None)
        pull()
    return np.stack(out)


@pytest.mark.parametrize("name,fps", [("clip", "25"), ("clip", "24"), ("clip", "12.5"), ("clip", "30000/1001"),
                                      ("silent", "50"), ("silent", "30"), ("vfr", "25"), ("vfr", "30")])
def test_resampling_matches_ffmpeg_fps_filter(clip: Path, silent_clip: Path, clip_dir: Path, name: str,
                                              fps: str) -> None:
    if name == "vfr":
        path = clip_dir / "vfr_ref.mp4"
        _write_vfr(path, [0, 40, 50, 120, 200, 210, 300, 333, 390])
    else:
        path = {"clip": clip, "silent": silent_clip}[name]
    reference = _ffmpeg_fps_filter(path, fps)
    ours = media.read_video(path, fps=float(Fraction(fps)))
    assert ours.frames.shape == reference.shape
    np.testing.assert_array_equal(ours.frames, reference)


def test_audio_resample_48k_to_16k_keeps_frequency_and_tail() -> None:
    x = _sine(1000, 48000, 1.0)
    y = media.resample_audio(x, 48000, 16000)
    assert y.dtype == np.float32 and y.shape == (16000,)
    assert _peak_hz(y, 16000) == pytest.approx(1000, abs=1)
    # the flushed tail is signal, not zeros: RMS of the last 10 ms matches a 0.5-amplitude sine
    assert np.sqrt(np.mean(y[-160:] ** 2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.1)
    np.testing.assert_array_equal(media.resample_audio(x, 48000, 48000), x)


def test_read_audio_stereo_wav_is_channel_mean(clip_dir: Path) -> None:
    left, right = _sine(1000, 48000, 1.0, amp=0.6), _sine(1000, 48000, 1.0, amp=0.2)
    path = media.write_audio(clip_dir / "stereo.wav", np.stack([left, right], axis=1), 48000)
    info = media.probe(path)
    assert (info.has_video, info.audio_rate, info.audio_channels, info.audio_codec) == (False, 48000, 2, "pcm_s16le")
    y = media.read_audio(path, 16000)
    assert abs(y.size - 16000) <= 16000 / 25
    assert _peak_hz(y, 16000) == pytest.approx(1000, abs=1)
    # mean of the channels has amplitude 0.4 (a sum or a -3 dB downmix would not)
    assert np.sqrt(np.mean(y[200:-200] ** 2)) == pytest.approx(0.4 / np.sqrt(2), rel=0.02)


def test_write_audio_m4a_round_trip(clip_dir: Path) -> None:
    x = _sine(440, SR, 2.0)
    path = media.write_audio(clip_dir / "tone.m4a", x, SR)
    assert media.probe(path).audio_codec == "aac"
    y = media.read_audio(path, SR)
    assert abs(y.size - x.size) <= SR / 25
    n = min(x.size, y.size)
    assert np.corrcoef(x[:n], y[:n])[0, 1] > 0.99


def test_read_audio_from_avi(clip_dir: Path) -> None:
    path = clip_dir / "clip.avi"
    x = _sine(440, SR, 1.0)
    with av.open(str(path), "w") as container:
        video = container.add_stream("mpeg4", rate=25)
        video.width, video.height, video.pix_fmt = W, H, "yuv420p"
        audio = container.add_stream("pcm_s16le", rate=SR, layout="mono")
        for i in range(25):
            frame = av.VideoFrame.from_ndarray(np.zeros((H, W, 3), np.uint8), format="rgb24")
            frame.pts = i
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode(None):
            container.mux(packet)
        frame = av.AudioFrame.from_ndarray(np.round(x * 32767).astype(np.int16)[None], format="s16", layout="mono")
        frame.sample_rate, frame.pts = SR, 0
        for packet in audio.encode(frame):
            container.mux(packet)
        for packet in audio.encode(None):
            container.mux(packet)
    y = media.read_audio(path, SR)
    assert abs(y.size - x.size) <= SR / 25
    np.testing.assert_allclose(y[: x.size], x[: y.size], atol=1e-3)
    assert media.read_video(path).frames.shape == (25, H, W, 3)


def test_video_writer_chunked_equals_write_video(clip_dir: Path, frames: np.ndarray) -> None:
    path = clip_dir / "chunked.mp4"
    with media.VideoWriter(path, 25, crf=0, preset="ultrafast") as writer:
        writer.write(frames[0])  # a single (H, W, 3) frame
        writer.write(frames[1:20])
    video = media.read_video(path)
    assert video.frames.shape == (20, H, W, 3) and video.fps == 25
    whole = media.read_video(media.write_video(clip_dir / "whole.mp4", frames[:20], 25, crf=0, preset="ultrafast"))
    np.testing.assert_array_equal(video.frames, whole.frames)
    assert not [p for p in clip_dir.iterdir() if ".tmp" in p.name]


# ------------------------------------------------------------------------------------------------
# Error cases
# ------------------------------------------------------------------------------------------------
READERS = [media.probe, media.read_video, media.read_audio, media.iter_video]  # iter_video opens eagerly


@pytest.mark.parametrize("reader", READERS)
def test_missing_file(tmp_path: Path, reader) -> None:
    path = tmp_path / "nope.mp4"
    with pytest.raises(media.MediaNotFoundError, match="does not exist") as info:
        reader(path)
    assert info.value.path == path and str(path) in str(info.value)


@pytest.mark.parametrize("reader", READERS)
def test_folder_instead_of_file(tmp_path: Path, reader) -> None:
    with pytest.raises(media.MediaNotFoundError, match="not a regular file"):
        reader(tmp_path)


@pytest.mark.parametrize("reader", READERS)
def test_zero_length_file(tmp_path: Path, reader) -> None:
    path = tmp_path / "empty.mp4"
    path.touch()
    with pytest.raises(media.EmptyMediaError, match="empty") as info:
        reader(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("reader", READERS)
def test_container_without_samples_is_empty(tmp_path: Path, reader) -> None:
    path = tmp_path / "no_frames.mp4"
    with av.open(str(path), "w") as container:  # a valid mp4 header, but the writer never sent a frame
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        container.start_encoding()
    assert path.stat().st_size > 0
    with pytest.raises(media.EmptyMediaError, match="no video or audio stream with data") as info:
        reader(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("reader", READERS)
def test_random_bytes_are_corrupt(tmp_path: Path, reader) -> None:
    path = tmp_path / "noise.mp4"
    path.write_bytes(np.random.default_rng(0).bytes(20_000))
    with pytest.raises(media.CorruptMediaError, match="cannot open") as info:
        reader(path)
    assert str(path) in str(info.value)


def test_truncated_mp4_without_index_is_corrupt(tmp_path: Path, clip: Path) -> None:
    # PyAV's mp4 muxer writes the index (moov) at the end: the first half of the file cannot be opened
    data = clip.read_bytes()
    path = tmp_path / "half.mp4"
    path.write_bytes(data[: len(data) // 2])
    for reader in READERS:
        with pytest.raises(media.CorruptMediaError, match="cannot open") as info:
            reader(path)
        assert str(path) in str(info.value)


def test_truncated_faststart_mp4_decodes_partially_then_raises(tmp_path: Path, frames: np.ndarray) -> None:
    # With the index first, the demuxer knows there should be 60 frames but finds data for fewer:
    # PyAV stops silently, so media compares against the declared count.
    full = tmp_path / "faststart.mp4"
    with av.open(str(full), "w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.options = {"crf": "0", "preset": "ultrafast"}
        for i, img in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    data = full.read_bytes()
    path = tmp_path / "faststart_half.mp4"
    path.write_bytes(data[: len(data) // 2])
    assert media.probe(path).n_frames == T  # the metadata alone looks fine
    decoded = 0
    with pytest.raises(media.CorruptMediaError, match=rf"declares {T} frames / 2.000 s but only \d+ decoded") as info:
        for chunk in media.iter_video(path, chunk_frames=8):
            decoded += chunk.frames.shape[0]
    assert 0 < decoded < T and f"only {decoded} decoded" in str(info.value)
    assert str(path) in str(info.value)
    with pytest.raises(media.CorruptMediaError):
        media.read_video(path)
    # a caller that only wants the head still gets it
    assert media.read_video(path, max_frames=5).frames.shape[0] == 5


class _FailingContainer:
    """Wraps a real PyAV container; its decode yields two frames then raises PyAV's InvalidDataError."""

    def __init__(self, real) -> None:
        self._real = real

    def __getattr__(self, name):
        return getattr(self._real, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self._real.close()

    def decode(self, *args, **kwargs):
        for i, frame in enumerate(self._real.decode(*args, **kwargs)):
            if i == 2:
                raise av.error.InvalidDataError(errno.EINVAL, "Invalid data found when processing input", "x")
            yield frame


def test_decoder_error_becomes_corrupt_media_error(monkeypatch: pytest.MonkeyPatch, clip: Path) -> None:
    real_open = av.open
    monkeypatch.setattr(media.av, "open", lambda *a, **k: _FailingContainer(real_open(*a, **k)))
    with pytest.raises(media.CorruptMediaError, match="decoding failed after 2 frames") as info:
        media.read_video(clip)
    assert str(clip) in str(info.value)
    with pytest.raises(media.CorruptMediaError, match="audio decoding failed"):
        media.read_audio(clip)


class _StoppingContainer(_FailingContainer):
    """Wraps a real PyAV container; its decode ends silently after ``keep`` frames (a silent truncation)."""

    keep = 10

    def decode(self, *args, **kwargs):
        for i, frame in enumerate(self._real.decode(*args, **kwargs)):
            if i == self.keep:
                return
            yield frame


def test_silently_short_audio_is_corrupt(monkeypatch: pytest.MonkeyPatch, clip: Path) -> None:
    real_open = av.open
    monkeypatch.setattr(media.av, "open", lambda *a, **k: _StoppingContainer(real_open(*a, **k)))
    # 10 AAC frames of 1024 samples = 0.64 s of the declared 2 s
    with pytest.raises(media.CorruptMediaError, match=r"declares 2.000 s but only 0.640 s decoded") as info:
        media.read_audio(clip, SR)
    assert str(clip) in str(info.value)
    with pytest.raises(media.CorruptMediaError, match=rf"declares {T} frames .* but only 10 decoded"):
        media.read_video(clip)


def test_truncated_faststart_audio_is_corrupt(tmp_path: Path, clip: Path) -> None:
    # remux the clip with its index first, then cut it: the AAC decoder meets garbage and errors
    full = tmp_path / "faststart_av.mp4"
    with av.open(str(clip)) as src, av.open(str(full), "w", options={"movflags": "faststart"}) as dst:
        streams = {s.index: dst.add_stream_from_template(s) for s in src.streams}
        for packet in src.demux():
            if packet.dts is not None:
                packet.stream = streams[packet.stream.index]
                dst.mux(packet)
    data = full.read_bytes()
    path = tmp_path / "faststart_av_half.mp4"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(media.CorruptMediaError, match="audio decoding failed|declares") as info:
        media.read_audio(path)
    assert str(path) in str(info.value)


def test_video_without_audio_stream(silent_clip: Path) -> None:
    assert media.probe(silent_clip).has_audio is False
    with pytest.raises(media.MissingStreamError, match="no audio stream") as info:
        media.read_audio(silent_clip)
    assert str(silent_clip) in str(info.value)


def test_audio_file_without_video_stream(clip_dir: Path) -> None:
    path = media.write_audio(clip_dir / "only_audio.wav", _sine(440, SR, 0.5), SR)
    with pytest.raises(media.MissingStreamError, match="no video stream"):
        media.read_video(path)
    with pytest.raises(media.MissingStreamError, match="no video stream"):
        media.iter_video(path)  # raised on the call, before any next()


def test_odd_frame_size_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "odd.mp4"
    with pytest.raises(media.MediaWriteError, match="63x48") as info:
        media.write_video(path, np.zeros((3, 48, 63, 3), np.uint8), 25)
    assert str(path) in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_unwritable_output_folder(tmp_path: Path, frames: np.ndarray) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    for path in (blocker / "out.mp4", blocker / "sub" / "out.mp4"):
        with pytest.raises(media.MediaWriteError, match="cannot create") as info:
            media.write_video(path, frames[:2], 25)
        assert str(path) in str(info.value)
    with pytest.raises(media.MediaWriteError, match="writing audio failed"):
        media.write_audio(blocker / "out.wav", _sine(440, SR, 0.1), SR)
    if os.geteuid() != 0:  # root ignores permission bits; the check above covers that case
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(media.MediaWriteError):
            media.write_video(locked / "out.mp4", frames[:2], 25)
        assert list(locked.iterdir()) == []


def test_exception_inside_writer_removes_temp_file(tmp_path: Path, frames: np.ndarray) -> None:
    path = tmp_path / "aborted.mp4"
    with pytest.raises(RuntimeError, match="boom"):
        with media.VideoWriter(path, 25, audio=_sine(440, SR, 1.0), audio_rate=SR, preset="ultrafast") as writer:
            writer.write(frames[:5])
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_writer_rejects_bad_frames(tmp_path: Path, frames: np.ndarray) -> None:
    path = tmp_path / "bad.mp4"
    with pytest.raises(media.MediaWriteError, match="differs from the first"):
        with media.VideoWriter(path, 25, preset="ultrafast") as writer:
            writer.write(frames[:2])
            writer.write(np.zeros((1, 32, 32, 3), np.uint8))
    with pytest.raises(media.MediaWriteError, match="uint8"):
        media.write_video(path, frames[:2].astype(np.float32), 25)
    with pytest.raises(media.MediaWriteError, match="unsupported audio suffix"):
        media.write_audio(tmp_path / "x.mp3", _sine(440, SR, 0.1), SR)
    assert list(tmp_path.iterdir()) == []
