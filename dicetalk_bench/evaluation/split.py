"""The test split of a preprocessing output (its ``clips.parquet`` rows) and the ground-truth folder linked from it."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from dicetalk_bench.evaluation.config import EvalConfig, EvaluateError


def read_test_rows(processed: Path, dataset: str) -> list[dict[str, Any]]:
    """The manifest rows of ``dataset`` with split ``test`` and status ``ok`` in ``processed/clips.parquet``, sorted
    by clip id; an :class:`EvaluateError` when the manifest is missing or holds no such row."""
    manifest = processed / "clips.parquet"
    if not manifest.is_file():
        raise EvaluateError(f"--processed {processed}: no clips.parquet; pass the output folder of "
                            "python -m dicetalk_bench.preprocess")
    import pyarrow.parquet as pq

    rows = pq.read_table(manifest).to_pylist()
    test = [r for r in rows if r.get("dataset") == dataset and r.get("split") == "test" and r.get("status") == "ok"]
    if not test:
        n_ds = sum(r.get("dataset") == dataset for r in rows)
        raise EvaluateError(f"{manifest}: no {dataset} clips with split 'test' and status 'ok' ({len(rows)} rows, "
                            f"{n_ds} of dataset {dataset}); preprocess the {dataset} test identities first")
    return sorted(test, key=lambda r: r["clip_id"])


def link_or_copy(src: Path, dst: Path) -> None:
    """Make ``dst`` a symlink to ``src`` (replacing what was there), or a copy where links are not allowed."""
    import shutil

    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists() or dst.is_symlink():
        dst.unlink()
    try:
        dst.symlink_to(src.resolve())
    except OSError:
        shutil.copy2(src, dst)


def linked_reference(cfg: EvalConfig, out_dir: Path, rows: Sequence[dict[str, Any]]) -> Path:
    """The ground-truth folder: ``cfg.reference``, or the processed test clips of ``rows`` linked as
    ``out_dir/reference/<dataset>/<clip_id>.mp4``."""
    if cfg.reference is not None:
        return Path(cfg.reference)
    processed = Path(cfg.processed)
    reference = out_dir / "reference" / cfg.dataset
    for row in rows:
        link_or_copy(processed / row["video"], reference / f"{row['clip_id']}.mp4")
    return reference
