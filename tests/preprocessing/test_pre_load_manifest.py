"""load_manifest: the clips.parquet manifest as a pandas DataFrame, filtered and typed."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dicetalk_bench.preprocessing import load_manifest


def _write(out, rows):
    pq.write_table(pa.Table.from_pylist(rows), out / "clips.parquet")


def _row(clip_id, emotion, level, split="test", status="ok", dataset="mead"):
    return {"clip_id": clip_id, "dataset": dataset, "speaker": clip_id.split("/")[1], "view": "front",
            "emotion": emotion, "level": level, "split": split, "status": status}


def test_filters_sorts_and_types(tmp_path):
    _write(tmp_path, [_row("mead/W009/front/sad/level_2/002", "sad", 2),
                      _row("mead/M003/front/happy/level_1/001", "happy", 1),
                      _row("mead/M003/front/happy/level_3/003", "happy", 3, status="failed"),
                      _row("mead/M012/front/angry/level_1/001", "angry", 1, split="train")])
    frame = load_manifest(tmp_path, split="test")
    assert list(frame["clip_id"]) == ["mead/M003/front/happy/level_1/001", "mead/W009/front/sad/level_2/002"]
    assert str(frame["level"].dtype) == "Int8" and str(frame["emotion"].dtype) == "category"
    assert len(load_manifest(tmp_path, status=None, split=None)) == 4
    assert len(load_manifest(tmp_path, status="failed")) == 1
    assert len(load_manifest(tmp_path, dataset="hdtf")) == 0


def test_missing_manifest_names_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        load_manifest(tmp_path)
