"""Fixtures of the reports tests: hand-written results files made with the real save/annotate API."""

from __future__ import annotations

import numpy as np
import pytest
from reports_helpers import results_writer


@pytest.fixture
def write_results(tmp_path):
    """write_results(method, dataset, [MetricResult...], **provenance) -> path of the results file."""
    return results_writer(tmp_path / "results")


@pytest.fixture
def rng():
    return np.random.default_rng(0)
