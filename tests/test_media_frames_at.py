"""media.read_frames_at: the chosen frames of a stream equal read_video's at those indices, in bounded chunks."""

from __future__ import annotations

import numpy as np
import pytest

from dicetalk_bench import media


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    rng = np.random.default_rng(3)
    frames = rng.integers(0, 256, (45, 32, 48, 3), dtype=np.uint8)
    path = tmp_path_factory.mktemp("frames_at") / "clip.mp4"
    media.write_video(path, frames, fps=25)
    return path, media.read_video(path)


@pytest.mark.parametrize("chunk_frames", [1, 7, 16, 64])
def test_kept_frames_equal_the_whole_read(clip, chunk_frames):
    path, whole = clip
    wanted = [40, 3, 3, 15, 16, 17, 0, 44]
    sel = media.read_frames_at(path, wanted, chunk_frames=chunk_frames)
    assert sel.n_frames == len(whole.frames) == 45
    assert sel.indices.tolist() == sorted(set(wanted))
    assert np.array_equal(sel.frames, whole.frames[sel.indices])


def test_indices_beyond_the_end_are_left_out_and_empty_counts(clip):
    path, whole = clip
    sel = media.read_frames_at(path, [2, 45, 100])
    assert sel.indices.tolist() == [2] and sel.frames.shape == (1, 32, 48, 3)
    assert np.array_equal(sel.frames[0], whole.frames[2])
    count = media.read_frames_at(path, [])
    assert count.n_frames == 45 and count.frames.shape == (0, 32, 48, 3) and count.indices.size == 0


def test_resampled_indices_follow_read_video(clip):
    path, _ = clip
    whole = media.read_video(path, fps=10)
    sel = media.read_frames_at(path, [0, 5, 17], fps=10, chunk_frames=4)
    assert sel.n_frames == len(whole.frames) == 18
    assert np.array_equal(sel.frames, whole.frames[[0, 5, 17]])


def test_errors(clip, tmp_path):
    path, _ = clip
    with pytest.raises(ValueError, match=">= 0"):
        media.read_frames_at(path, [-1])
    with pytest.raises(media.MediaNotFoundError):
        media.read_frames_at(tmp_path / "missing.mp4", [0])
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    with pytest.raises(media.CorruptMediaError):
        media.read_frames_at(broken, [0])
