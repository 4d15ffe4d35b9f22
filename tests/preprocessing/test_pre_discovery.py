"""Discovery of MEAD / HDTF trees made of empty files (names only matter here)."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from dicetalk_bench.preprocessing.discovery_hdtf import discover_hdtf, load_heldout, parse_timestamp
from dicetalk_bench.preprocessing.discovery_mead import EMOTIONS, VIEWS, discover_mead
from dicetalk_bench.preprocessing.manifest import (
    CLIPS_SCHEMA, DiscoveryError, filter_clips, manifest_table, source_row,
)


def touch(p: Path, data: bytes = b"") -> Path:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    return p


@pytest.fixture
def mead_tree(tmp_path: Path) -> Path:
    root = tmp_path / "mead"
    for actor in ("M003", "W011"):
        for view in ("front", "left_30"):
            touch(root / actor / "video" / view / "neutral" / "level_1" / "001.mp4")
            touch(root / actor / "video" / view / "neutral" / "level_1" / "040.mp4")
            # gap: disgusted/level_3 starts at 028
            touch(root / actor / "video" / view / "disgusted" / "level_3" / "028.mp4")
            touch(root / actor / "video" / view / "disgusted" / "level_3" / "030.mp4")
        touch(root / actor / "audio" / "neutral" / "level_1" / "001.m4a")
        touch(root / actor / "audio" / "neutral" / "level_1" / "040.m4a")
        touch(root / actor / "audio" / "disgusted" / "level_3" / "028.m4a")
    return root


def test_mead_lists_files_with_gaps_and_shares_audio(mead_tree: Path) -> None:
    d = discover_mead(mead_tree)
    assert d.unexpected == ()
    assert len(d.clips) == 2 * 2 * 4
    ids = {c.clip_id for c in d.clips}
    assert "mead/M003/front/disgusted/level_3/028" in ids
    assert not any(c.sentence == "029" for c in d.clips)  # listed, never enumerated
    front = next(c for c in d.clips if c.clip_id == "mead/M003/front/neutral/level_1/040")
    left = next(c for c in d.clips if c.clip_id == "mead/M003/left_30/neutral/level_1/040")
    assert front.audio_id == left.audio_id == "mead/M003/neutral/level_1/040"
    assert front.audio_path == left.audio_path == mead_tree / "M003/audio/neutral/level_1/040.m4a"
    assert (front.speaker, front.view, front.emotion, front.level, front.sentence) == ("M003", "front", "neutral", 1, "040")
    # no audio file for 030 -> the clip carries its own audio id and no audio path
    c030 = next(c for c in d.clips if c.clip_id == "mead/W011/front/disgusted/level_3/030")
    assert c030.audio_path is None and c030.audio_id == c030.clip_id


def test_mead_split_is_eat_identities(mead_tree: Path) -> None:
    d = discover_mead(mead_tree)
    assert {c.speaker: c.split for c in d.clips} == {"M003": "test", "W011": "train"}


def test_mead_reports_unexpected_not_guessed(mead_tree: Path) -> None:
    bad = [
        touch(mead_tree / "M003" / "video" / "front" / "neutral" / "level_2" / "001.mp4").parent,  # neutral level_2
        touch(mead_tree / "M003" / "video" / "front" / "joy" / "level_1" / "001.mp4").parent.parent,  # emotion
        touch(mead_tree / "M003" / "video" / "back" / "happy" / "level_1" / "001.mp4").parent.parent.parent,  # view
        touch(mead_tree / "M003" / "video" / "front" / "happy" / "level_4" / "001.mp4").parent,  # level
        touch(mead_tree / "M003" / "video" / "front" / "happy" / "level_1" / "1.mp4"),  # not 3 digits
        touch(mead_tree / "M003" / "video" / "front" / "happy" / "level_1" / "002.avi"),  # suffix
        touch(mead_tree / "M003" / "images" / "x.png").parent,  # unknown part
        touch(mead_tree / "actor7" / "video" / "front" / "happy" / "level_1" / "001.mp4").parents[4],  # actor name
        touch(mead_tree / "M003" / "audio" / "happy" / "level_2" / "005.m4a"),  # audio without video
        touch(mead_tree / "notes.txt"),
    ]
    touch(mead_tree / ".DS_Store")
    d = discover_mead(mead_tree)
    got = {u.path for u in d.unexpected}
    assert got == set(bad)
    assert all(u.reason for u in d.unexpected)
    reasons = {u.path: u.reason for u in d.unexpected}
    assert "only level_1" in reasons[bad[0]]
    assert len(d.clips) == 16  # nothing extra guessed


def test_mead_full_grid_counts(tmp_path: Path) -> None:
    root = tmp_path / "m"
    for view in VIEWS:
        for emo in EMOTIONS:
            for level in ((1,) if emo == "neutral" else (1, 2, 3)):
                touch(root / "W009" / "video" / view / emo / f"level_{level}" / "001.mp4")
    d = discover_mead(root)
    assert len(d.clips) == 7 * (1 + 7 * 3)
    assert {c.split for c in d.clips} == {"test"}


def test_mead_missing_root(tmp_path: Path) -> None:
    with pytest.raises(DiscoveryError, match="not a folder"):
        discover_mead(tmp_path / "nope")


def _hdtf_tree(root: Path) -> Path:
    # WDA files upstream start with a UTF-8 BOM
    touch(root / "ann" / "WDA_video_url.txt", "\ufeffAmyKlobuchar1 https://x\nBarackObama https://y\n".encode("utf-8"))
    touch(root / "ann" / "WDA_annotion_time.txt", "\ufeffAmyKlobuchar1.mp4 00:35-02:45 03:25-04:00 \nBarackObama.mp4 00:02-02:25 03:00-06:45\n".encode())
    touch(root / "ann" / "WDA_resolution.txt", b"AmyKlobuchar1.mp4 720\nBarackObama.mp4 1080\n")
    touch(root / "ann" / "WDA_crop_wh.txt", b"AmyKlobuchar1_0.mp4 483 390 0 390\n")
    touch(root / "ann" / "WDA_crop_ratio.txt", b"AmyKlobuchar1_0.mp4 1.2\nAmyKlobuchar1_1.mp4 1.0\n")
    touch(root / "RD_annotion_time.txt", b"Radio2.mp4 00:22-01:45\n\n")
    touch(root / "WDA_AmyKlobuchar1.mp4")
    touch(root / "RD_Radio2.mp4")
    return root


def test_hdtf_clips_from_annotations(tmp_path: Path) -> None:
    root = _hdtf_tree(tmp_path / "hdtf")
    d = discover_hdtf(root)
    assert [c.clip_id for c in d.clips] == ["hdtf/RD_Radio2_0", "hdtf/WDA_AmyKlobuchar1_0", "hdtf/WDA_AmyKlobuchar1_1"]
    a0 = d.clips[1]
    assert (a0.start_s, a0.end_s) == (35.0, 165.0)
    assert d.clips[2].start_s == 205.0 and d.clips[2].end_s == 240.0
    assert a0.hdtf_crop_wh == (483, 390, 0, 390) and a0.hdtf_crop_ratio == 1.2 and a0.hdtf_resolution == 720
    assert d.clips[2].hdtf_crop_wh is None and d.clips[2].hdtf_crop_ratio == 1.0
    assert a0.speaker == "WDA_AmyKlobuchar" and d.clips[0].speaker == "RD_Radio2"
    assert a0.audio_id == a0.clip_id
    # RD_Radio2 is on the shipped held-out list; AmyKlobuchar is not
    assert d.clips[0].split == "test" and a0.split == "train"
    assert [m.path.name for m in d.missing] == ["WDA_BarackObama.mp4"]
    assert d.unexpected == ()


def test_hdtf_unexpected_and_bad_lines(tmp_path: Path) -> None:
    root = _hdtf_tree(tmp_path / "hdtf")
    stray = touch(root / "WRA_Someone.mp4")
    junk = touch(root / "notes.md")
    d = discover_hdtf(root)
    assert {u.path for u in d.unexpected} == {stray, junk}
    touch(root / "RD_annotion_time.txt", b"Radio2.mp4 00:22-0x:45\n")
    with pytest.raises(DiscoveryError, match=r"RD_annotion_time.txt:1: bad time range"):
        discover_hdtf(root)
    touch(root / "RD_annotion_time.txt", b"Radio2.mp4 01:22-00:45\n")
    with pytest.raises(DiscoveryError, match="ends before it starts"):
        discover_hdtf(root)


def test_hdtf_no_annotations(tmp_path: Path) -> None:
    touch(tmp_path / "x.mp4")
    with pytest.raises(DiscoveryError, match="no HDTF annotation files"):
        discover_hdtf(tmp_path)


def test_timestamps_and_heldout_file() -> None:
    assert parse_timestamp("01:30") == 90.0
    assert parse_timestamp("1:02:03.5") == 3723.5
    held = load_heldout()
    assert 30 < len(held) < 80 and all(h.split("_")[0] in ("RD", "WDA", "WRA") for h in held)
    # identity-disjoint: numbered videos of one person are all in or all out
    assert ("WDA_AmyKlobuchar0" in held) == ("WDA_AmyKlobuchar1" in held)


def test_manifest_table_schema_and_filter(mead_tree: Path, tmp_path: Path) -> None:
    d = discover_mead(mead_tree)
    kept = filter_clips(d.clips, speakers=["W011"], views=["front"])
    assert len(kept) == 4 and {c.view for c in kept} == {"front"}
    rows = [source_row(c, mead_tree) | {"status": "pending"} for c in reversed(kept)]
    t = manifest_table(rows)
    assert t.schema == CLIPS_SCHEMA
    assert t.column("clip_id").to_pylist() == sorted(c.clip_id for c in kept)
    assert t.column("src_video").to_pylist()[0] == "W011/video/front/disgusted/level_3/028.mp4"
    pq.write_table(t, tmp_path / "clips.parquet")
    assert pq.read_table(tmp_path / "clips.parquet").schema == CLIPS_SCHEMA
