"""The provenance record: folder hashes, package versions, extractor records, calibration."""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
from reports_helpers import metric

from dicetalk_bench.fileutil import sha256_file
from dicetalk_bench.reports.provenance import build_provenance, extractor_records, package_versions, tree_sha256


def test_tree_hash_is_the_hash_of_sorted_relative_paths_and_file_hashes(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "a.txt").write_bytes(b"x")
    (tmp_path / "b" / "c.bin").write_bytes(b"yz")
    lines = "".join(f"{rel}\t{sha256_file(tmp_path / rel)}\n" for rel in ("a.txt", "b/c.bin"))
    assert tree_sha256(tmp_path) == hashlib.sha256(lines.encode()).hexdigest()
    assert tree_sha256(tmp_path / "a.txt") == hashlib.sha256(b"x").hexdigest()
    before = tree_sha256(tmp_path)
    (tmp_path / "b" / "c.bin").write_bytes(b"yZ")
    assert tree_sha256(tmp_path) != before


def test_package_versions_without_importing():
    v = package_versions(("numpy", "surely-not-installed-pkg"))
    assert v == {"numpy": np.__version__, "surely-not-installed-pkg": None}


def test_extractor_records_are_deduplicated_and_calibration_is_all_of_them():
    a = metric("fid", 1.0, False)
    b = metric("kid", 0.1, False)
    recs = extractor_records([a, b])
    assert len(recs) == 1 and recs[0]["metrics"] == ["fid", "kid"] and recs[0]["calibrated"]
    prov = build_provenance(method="m", dataset="mead", seed=4, argv=["x"], config_hash="h", results=[a, b])
    assert prov["calibrated"] is True and prov["seed"] == 4 and prov["command_line"] == ["x"]
    c = dataclasses.replace(metric("lpips", 0.2, False),
                            extractors=({"key": "lpips-alex", "file": "r", "sha256": "cd" * 32, "calibrated": False},))
    assert build_provenance(method="m", dataset="mead", seed=0, argv=[], config_hash="h",
                            results=[a, c])["calibrated"] is False
