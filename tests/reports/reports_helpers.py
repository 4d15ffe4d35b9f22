"""Helpers of the reports tests (a uniquely named module: conftest modules of other folders share the name)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from dicetalk_bench.metrics.result import MetricResult

# the pretrained weights a checkpoint records (state.json "records"), here the published files
CALIBRATED_GENERATOR = {
    "svd": {"key": "svd-xt", "file": "/w/svd", "sha256": "5d" * 32, "calibrated": True, "pinned_by": "published"},
    "whisper": {"key": "whisper-tiny", "file": "/w/whisper", "sha256": "3a" * 32, "calibrated": True,
                "pinned_by": "published"},
}


def metric(key: str, value: float | None, higher: bool, per_video: dict[str, float] | None = None, *,
           calibrated: bool = True, features=None, reference_features=None, protocol=None) -> MetricResult:
    ext = ({"key": "inception-fid", "file": "/w/pt_inception.pth", "sha256": "ab" * 32, "calibrated": calibrated},)
    per_video = per_video or {}
    return MetricResult(key=key, value=value, higher_is_better=higher,
                        n_videos=len(per_video) or (len(features) if features else 3),
                        protocol=protocol or {"note": f"protocol of {key}"}, extractors=ext, per_video=per_video,
                        features=features, reference_features=reference_features)


def results_writer(root: Path) -> Callable[..., Path]:
    """writer(method, dataset, [MetricResult...], **provenance) -> path of the results file written under ``root``
    (``root/<dataset>/<method>.json``) with the real save API; ``writer.root`` is ``root``."""
    from dicetalk_bench.reports.runs import safe_file_stem, write_run

    def write(method: str, dataset: str, results, **prov) -> Path:
        provenance = {"toolkit_version": "0.1.0", "git_commit": "c0ffee" * 6, "date_utc": "2026-01-02T03:04:05Z",
                      "config_hash": "0123456789abcdef", "seed": 0,
                      "checkpoint": {"sha256": "fe" * 32, "path": "/ckpt", "weights": CALIBRATED_GENERATOR},
                      "extractors": [], **prov}
        return write_run(results, root / dataset / f"{safe_file_stem(method)}.json", method=method, dataset=dataset,
                         provenance=provenance)

    write.root = root
    return write
