"""Fixtures of the reports tests: hand-written results files made with the real save/annotate API."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from reports_helpers import CALIBRATED_GENERATOR


@pytest.fixture
def write_results(tmp_path):
    """write_results(method, dataset, [MetricResult...], calibrated_prov=True) -> path of the results file."""
    from dicetalk_bench.reports.runs import safe_file_stem, write_run

    root = tmp_path / "results"

    def write(method: str, dataset: str, results, **prov) -> Path:
        provenance = {"toolkit_version": "0.1.0", "git_commit": "c0ffee" * 6, "date_utc": "2026-01-02T03:04:05Z",
                      "config_hash": "0123456789abcdef", "seed": 0,
                      "checkpoint": {"sha256": "fe" * 32, "path": "/ckpt", "weights": CALIBRATED_GENERATOR},
                      "extractors": [], **prov}
        return write_run(results, root / dataset / f"{safe_file_stem(method)}.json", method=method, dataset=dataset,
                         provenance=provenance)

    write.root = root
    return write


@pytest.fixture
def rng():
    return np.random.default_rng(0)
