"""The test split of a preprocessing output: which manifest rows are read, and how the ground truth is linked."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dicetalk_bench.evaluation.config import EvalConfig, EvaluateError
from dicetalk_bench.evaluation.split import link_or_copy, linked_reference, read_test_rows

MEAD_B = "mead/M003/front/happy/level_1/001"
MEAD_A = "mead/M003/front/angry/level_1/000"


def _manifest(folder: Path, rows: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), folder / "clips.parquet")
    return folder


def _row(clip_id: str, *, dataset: str = "mead", split: str = "test", status: str = "ok") -> dict:
    return {"clip_id": clip_id, "dataset": dataset, "split": split, "status": status,
            "video": f"videos/{clip_id.replace('/', '__')}.mp4"}


def test_only_ok_test_rows_of_the_dataset_are_read_sorted_by_clip_id(tmp_path):
    processed = _manifest(tmp_path / "p", [
        _row(MEAD_B), _row(MEAD_A), _row("mead/M003/front/sad/level_1/002", split="train"),
        _row("mead/M003/front/sad/level_1/003", status="no_face"), _row("hdtf/WRA_Someone_000", dataset="hdtf")])
    assert [r["clip_id"] for r in read_test_rows(processed, "mead")] == [MEAD_A, MEAD_B]
    assert [r["clip_id"] for r in read_test_rows(processed, "hdtf")] == ["hdtf/WRA_Someone_000"]


def test_a_folder_without_a_manifest_or_without_test_rows_is_refused(tmp_path):
    with pytest.raises(EvaluateError, match="no clips.parquet"):
        read_test_rows(tmp_path, "mead")
    processed = _manifest(tmp_path / "p", [_row(MEAD_A, split="train"), _row("hdtf/WRA_Someone_000", dataset="hdtf")])
    with pytest.raises(EvaluateError, match=r"no mead clips with split 'test' and status 'ok' \(2 rows, 1 of dataset"):
        read_test_rows(processed, "mead")


def test_link_or_copy_replaces_what_was_there(tmp_path):
    first, second = tmp_path / "a.mp4", tmp_path / "b.mp4"
    first.write_bytes(b"first")
    second.write_bytes(b"second")
    dst = tmp_path / "deep" / "folder" / "clip.mp4"
    link_or_copy(first, dst)
    assert dst.read_bytes() == b"first"
    link_or_copy(second, dst)  # an existing link is replaced, not followed
    assert dst.read_bytes() == b"second" and first.read_bytes() == b"first"


def test_linked_reference_links_the_test_clips_unless_a_reference_is_given(tmp_path):
    processed = tmp_path / "p"
    rows = [_row(MEAD_A), _row(MEAD_B)]
    for row in rows:
        (processed / row["video"]).parent.mkdir(parents=True, exist_ok=True)
        (processed / row["video"]).write_bytes(row["clip_id"].encode())
    cfg = EvalConfig(method="m", dataset="mead", metrics=("psnr",), out=str(tmp_path / "o"), processed=str(processed))
    reference = linked_reference(cfg, tmp_path / "o", rows)
    assert reference == tmp_path / "o" / "reference" / "mead"
    assert sorted(str(p.relative_to(reference)) for p in reference.rglob("*.mp4")) == [f"{MEAD_A}.mp4", f"{MEAD_B}.mp4"]
    assert (reference / f"{MEAD_B}.mp4").read_bytes() == MEAD_B.encode()
    given = EvalConfig(method="m", dataset="mead", metrics=("psnr",), out=str(tmp_path / "o2"),
                       processed=str(processed), reference=str(tmp_path / "gt"))
    assert linked_reference(given, tmp_path / "o2", rows) == tmp_path / "gt"
    assert not (tmp_path / "o2").exists()
