"""HDTF: time ranges from the annotation file are cut into clips {name}_{k} with their own audio."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from dicetalk_bench import media
from dicetalk_bench.preprocessing import pipeline
from dicetalk_bench.preprocessing.discovery_hdtf import discover_hdtf

from pre_helpers import fast_config, moving_face_frames, speech_like, write_clip


def test_hdtf_time_ranges_become_clips(tmp_path: Path, whisper_random: Path) -> None:
    root = tmp_path / "hdtf"
    root.mkdir()
    (root / "WDA_annotion_time.txt").write_text("\ufeffJaneDoe1.mp4 00:00-00:01 00:01-00:02\n", encoding="utf-8")
    (root / "WDA_crop_ratio.txt").write_text("JaneDoe1_0.mp4 1.2\n")
    frames = moving_face_frames(75, dx=0.3)  # 2.5 s at 30 fps
    write_clip(root / "WDA_JaneDoe1.mp4", frames, fps=30.0, audio=speech_like(2.5))
    d = discover_hdtf(root)
    assert [c.clip_id for c in d.clips] == ["hdtf/WDA_JaneDoe1_0", "hdtf/WDA_JaneDoe1_1"]
    out = tmp_path / "out"
    s = pipeline.run(d.clips, root, out, fast_config(), workers=0, progress=False)
    assert s.n_failed == 0 and s.n_todo == 4
    rows = pq.read_table(out / "clips.parquet").to_pylist()
    assert [r["n_frames"] for r in rows] == [25, 25]
    assert [(r["start_s"], r["end_s"]) for r in rows] == [(0.0, 1.0), (1.0, 2.0)]
    assert all(r["status"] == "ok" and r["speaker"] == "WDA_JaneDoe" for r in rows)
    pts0 = pq.read_table(out / rows[0]["faces"]).column("pts_s").to_numpy()
    pts1 = pq.read_table(out / rows[1]["faces"]).column("pts_s").to_numpy()
    assert pts0[0] == 0.0 and pts0[-1] < 1.0 <= pts1[0] + 1 / 30 and pts1[-1] < 2.0
    # the second clip's muxed audio is the source audio from 1 s on
    a1 = media.read_audio(out / rows[1]["video"])
    src = speech_like(2.5)[16000:32000]
    n = min(len(a1), len(src)) - 2000
    corr = np.corrcoef(a1[1000:n], src[1000:n])[0, 1]
    assert corr > 0.9, corr
    feats = pq.read_table(out / rows[1]["audio_features"])
    assert feats.num_rows == 25
