"""The emotion of each scored clip: from the clip manifest when there is one, else from MEAD clip ids."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from dicetalk_bench.evaluation.config import EvalConfig
from dicetalk_bench.evaluation.per_emotion import emotion_map, with_per_emotion
from dicetalk_bench.metrics.result import MetricResult

ANGRY = "mead/M003/front/angry/level_1/000"
HAPPY = "mead/W009/left_30/happy/level_3/004"


def _result(key: str, clip_ids: list[str]) -> MetricResult:
    return MetricResult(key=key, value=1.0, higher_is_better=True, n_videos=len(clip_ids), environment={},
                        per_video={c: 1.0 for c in clip_ids}, clip_ids=clip_ids)


def test_without_a_manifest_emotions_come_from_mead_clip_ids(tmp_path):
    cfg = EvalConfig(method="m", dataset="mead", metrics=("psnr",), out=str(tmp_path))
    results = [_result("psnr", [ANGRY, "hdtf/WRA_Someone_000"]), _result("ssim", [HAPPY])]
    assert emotion_map(cfg, results) == {ANGRY: "angry", HAPPY: "happy"}
    assert emotion_map(cfg, [_result("psnr", ["hdtf/WRA_Someone_000"])]) == {}


def test_the_manifest_column_wins_over_the_clip_id(tmp_path):
    rows = [{"clip_id": ANGRY, "dataset": "mead", "emotion": "contempt", "status": "ok", "split": "test"},
            {"clip_id": HAPPY, "dataset": "mead", "emotion": None, "status": "ok", "split": "test"}]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "clips.parquet")
    cfg = EvalConfig(method="m", dataset="mead", metrics=("psnr",), out=str(tmp_path), processed=str(tmp_path))
    assert emotion_map(cfg, [_result("psnr", [ANGRY, HAPPY])]) == {ANGRY: "contempt"}


def test_results_without_set_features_are_returned_unchanged():
    results = [_result("psnr", [ANGRY]), _result("fid", [ANGRY])]
    assert with_per_emotion(results, {ANGRY: "angry"}) == results
    assert with_per_emotion(results, {}) == results
