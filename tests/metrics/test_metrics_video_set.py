"""Video folders, clip ids and the pairing rule of docs/metrics.md ("Video folders and the pairing rule")."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from dicetalk_bench import media
from dicetalk_bench.metrics.video_set import (align_pair, list_videos, pair_videos, pairs_reference_sha256,
                                             read_pair)


def _frames(n, h=32, w=48, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (1, h, w, 3), dtype=np.uint8)
    return np.repeat(base, n, axis=0)


def test_clip_ids_sorted_nested_hidden_ignored(tmp_path):
    for name in ("b.mp4", "a.mp4", "sub/c.mp4"):
        media.write_video(tmp_path / name, _frames(3), fps=10)
    (tmp_path / ".hidden.mp4").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("x")
    vs = list_videos(tmp_path)
    assert vs.clip_ids == ["a", "b", "sub/c"] and len(vs) == 3
    assert vs.get("sub/c").path == tmp_path / "sub" / "c.mp4" and vs.get("zzz") is None
    assert list_videos(tmp_path, recursive=False).clip_ids == ["a", "b"]


def test_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        list_videos(tmp_path / "nope")
    with pytest.raises(ValueError, match="holds no videos"):
        list_videos(tmp_path)
    (tmp_path / "a.mp4").write_bytes(b"x")
    (tmp_path / "a.avi").write_bytes(b"y")
    with pytest.raises(ValueError, match="clip id 'a'"):
        list_videos(tmp_path)


def test_manifest_hash_tracks_content(tmp_path):
    media.write_video(tmp_path / "a.mp4", _frames(3), fps=10)
    h1 = list_videos(tmp_path).manifest_hash()
    assert h1 == list_videos(tmp_path).manifest_hash()
    media.write_video(tmp_path / "a.mp4", _frames(3, seed=1), fps=10)
    assert list_videos(tmp_path).manifest_hash() != h1


def test_pairing_by_clip_id(tmp_path):
    gen, ref = tmp_path / "gen", tmp_path / "ref"
    for name in ("x", "y"):
        media.write_video(gen / f"{name}.mp4", _frames(3), fps=10)
    for name in ("y", "z"):
        media.write_video(ref / f"{name}.mp4", _frames(3), fps=10)
    p = pair_videos(list_videos(gen), list_videos(ref))
    assert [(a.clip_id, b.clip_id) for a, b in p.pairs] == [("y", "y")]
    assert p.missing_reference == ("x",) and p.unmatched_reference == ("z",)


def test_align_cuts_to_shorter_and_resizes_reference():
    gen = np.zeros((5, 8, 10, 3), np.uint8)
    ref = np.full((7, 16, 20, 3), 200, np.uint8)
    pf = align_pair("c", gen, ref, fps=25.0)
    assert pf.generated.shape == pf.reference.shape == (5, 8, 10, 3)
    assert (pf.dropped_generated, pf.dropped_reference, pf.resized_reference) == (0, 2, True)
    assert np.all(pf.reference == 200)  # a constant image stays constant under resizing
    same = align_pair("c", gen, gen[:3], fps=25.0)
    assert not same.resized_reference and same.dropped_generated == 2
    with pytest.raises(ValueError, match="no frames"):
        align_pair("c", gen[:0], gen, fps=25.0)


def test_read_pair_resamples_reference_to_generated_fps(tmp_path):
    ramp = np.stack([np.full((16, 16, 3), 10 * i, np.uint8) for i in range(20)])
    media.write_video(tmp_path / "g" / "c.mp4", ramp[::2], fps=10)   # 10 frames at 10 fps (1 s)
    media.write_video(tmp_path / "r" / "c.mp4", ramp, fps=20)        # 20 frames at 20 fps (1 s)
    g, r = list_videos(tmp_path / "g").get("c"), list_videos(tmp_path / "r").get("c")
    pf = read_pair(g, r)
    assert pf.fps == pytest.approx(10.0) and len(pf.generated) == len(pf.reference) == 10
    # frame k of both stands for time k / 10 s: the reference frame shown then is ramp frame 2k
    np.testing.assert_allclose(pf.reference.mean(axis=(1, 2, 3)), pf.generated.mean(axis=(1, 2, 3)), atol=3)


def test_paired_reference_hash_covers_the_paired_reference_videos_only(tmp_path):
    for name, seed in (("a", 0), ("b", 1)):
        media.write_video(tmp_path / "gen" / f"{name}.mp4", _frames(3, seed=seed), fps=10)
    for name, seed in (("a", 2), ("b", 3), ("extra", 4)):
        media.write_video(tmp_path / "ref" / f"{name}.mp4", _frames(3, seed=seed), fps=10)
    pairing = pair_videos(list_videos(tmp_path / "gen"), list_videos(tmp_path / "ref"))
    lines = "".join(f"{n}\t{hashlib.sha256((tmp_path / 'ref' / f'{n}.mp4').read_bytes()).hexdigest()}\n"
                    for n in ("a", "b"))
    digest = pairs_reference_sha256(pairing)
    assert digest == hashlib.sha256(lines.encode()).hexdigest()  # the unmatched "extra" reference is not in it
    # independent of where the folders are; changes with a reference video's content
    other = tmp_path / "copy"
    for sub in ("gen", "ref"):
        (other / sub).mkdir(parents=True)
        for f in (tmp_path / sub).iterdir():
            (other / sub / f.name).write_bytes(f.read_bytes())
    assert pairs_reference_sha256(pair_videos(list_videos(other / "gen"), list_videos(other / "ref"))) == digest
    media.write_video(other / "ref" / "b.mp4", _frames(3, seed=9), fps=10)
    assert pairs_reference_sha256(pair_videos(list_videos(other / "gen"), list_videos(other / "ref"))) != digest
