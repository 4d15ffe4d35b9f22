"""Helpers of the reports tests (a uniquely named module: conftest modules of other folders share the name)."""

from __future__ import annotations

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
