"""Fair marks (comparison groups, failure-rate rule), row calibration and labels that follow the settings."""

from __future__ import annotations

import dataclasses
import json

import pytest
from reports_helpers import CALIBRATED_GENERATOR, metric

from dicetalk_bench import evaluate
from dicetalk_bench.metrics.result import MetricResult
from dicetalk_bench.reports.calibration import row_calibration
from dicetalk_bench.reports.comparability import (MarkingConfig, clip_set, comparable_protocol, comparison_groups,
                                                  excluded_failure_rate, mark_column)
from dicetalk_bench.reports.leaderboard import BootstrapConfig, build_tables
from dicetalk_bench.reports.render import tables_to_csv, tables_to_html, tables_to_latex, write_leaderboard
from dicetalk_bench.reports.runs import find_runs

BOOT = BootstrapConfig(resamples=50, set_resamples=0)
CLIPS16 = [f"c{i:02d}" for i in range(16)]


def fid(value: float, *, mode: str = "tf1", clips=CLIPS16, failed=(), ref: str = "aa" * 32) -> MetricResult:
    """A FID result over ``clips`` (``failed`` of them failed) under resize mode ``mode`` and reference hash ``ref``."""
    return MetricResult(key="fid", value=value, higher_is_better=False, n_videos=len(clips) - len(failed),
                        protocol={"resize_mode": mode, "reference_manifest_sha256": ref, "crop": "none"},
                        extractors=({"key": "inception-fid", "sha256": "ab" * 32, "calibrated": True},),
                        failures={c: "no face" for c in failed}, failure_kinds={c: "no-face" for c in failed},
                        clip_ids=tuple(clips))


def _marks(results, higher=False, **cfg):
    col = mark_column("fid", results, higher, MarkingConfig(**cfg))
    return list(col.marks), col


# ------------------------------------------------------------------------------------------------ comparability
def test_pytorch_fid_row_is_not_marked_best_over_tf1_rows():
    marks, col = _marks([fid(12.0), fid(10.0), fid(5.0, mode="pytorch-fid")])
    assert marks == ["second", "best", None]  # the better pytorch-fid value is not compared with tf1 rows
    assert [g.label for g in col.groups] == ["A", "B"] and col.group_of == ("A", "A", "B")
    assert col.groups[1].differences == ("fid.resize_mode: tf1 vs pytorch-fid",)
    assert "no other row" in col.notes[2]
    # two rows per protocol: each group has its own marks
    marks, col = _marks([fid(12.0), fid(10.0), fid(5.0, mode="pytorch-fid"), fid(6.0, mode="pytorch-fid")])
    assert marks == ["second", "best", "best", "second"] and col.group_of == ("A", "A", "B", "B")


def test_rows_scored_on_different_clip_sets_are_not_ranked_together():
    marks, col = _marks([fid(20.0), fid(30.0), fid(1.0, clips=CLIPS16[:3])])
    assert marks == ["best", "second", None]
    assert col.groups[1].differences == ("clip set: 16 vs 3 clips",)
    # same size, other ids: still different sets
    other = [f"x{i:02d}" for i in range(2)] + CLIPS16[2:]
    _, col = _marks([fid(20.0), fid(30.0), fid(1.0, clips=other)])
    assert col.groups[1].differences == ("clip set: 2 of 16 clip ids differ",)


def test_rows_against_different_reference_sets_are_grouped_with_the_difference_named():
    marks, col = _marks([fid(20.0), fid(30.0), fid(1.0, ref="cd" * 32)])
    assert marks == ["best", "second", None]
    assert col.groups[1].differences == (f"reference set: {'aa' * 6} vs {'cd' * 6}",)


def test_paths_in_older_protocol_records_do_not_split_groups():
    a = fid(10.0)
    b = fid(11.0)
    a = dataclasses.replace(a, protocol={**a.protocol, "videos_dir": "/x/a", "raw_value": 9.9})
    b = dataclasses.replace(b, protocol={**b.protocol, "videos_dir": "/y/b", "raw_value": 11.0})
    assert comparable_protocol(a) == comparable_protocol(b) == fid(1.0).protocol
    assert len(comparison_groups("fid", [a, b])) == 1
    assert _marks([a, b])[0] == ["best", "second"]


def test_clip_set_falls_back_to_per_video_failures_and_features():
    r = metric("psnr", 1.0, True, {"b": 1.0, "a": 2.0})
    assert clip_set(r) == ("a", "b")
    assert clip_set(MetricResult(key="x", value=1.0, higher_is_better=True, n_videos=1, failures={"z": "bad"},
                                 per_video={"y": 1.0})) == ("y", "z")
    assert clip_set(MetricResult(key="x", value=1.0, higher_is_better=True, n_videos=1)) is None


# ------------------------------------------------------------------------------------------------ failures
def test_row_with_more_failures_gets_no_mark_even_with_a_better_value():
    results = [fid(10.0), fid(12.0), fid(3.0, failed=CLIPS16[:2])]  # 12.5 % failed, best value
    marks, col = _marks(results)
    assert marks == ["best", "second", None]
    assert "12.5% of its videos failed and are left out" in col.notes[2] and "(0.0%) + 1 percentage point" in col.notes[2]
    assert len(col.groups) == 1  # same clips attempted: compared, but not marked
    # within the allowed excess it competes; the excess is configurable
    assert _marks(results, max_failure_excess=0.2)[0] == ["second", None, "best"]
    assert _marks([fid(10.0, failed=CLIPS16[:1]), fid(3.0, failed=CLIPS16[:1])])[0] == ["second", "best"]
    with pytest.raises(ValueError, match="max_failure_excess"):
        MarkingConfig(max_failure_excess=2.0)


def test_failures_counted_in_the_value_are_not_held_against_the_row_twice():
    """Emotion accuracy counts a failed video as wrong (it keeps a per-video value of 0): such failures are in the
    number already; only failures left out of the value (e.g. no label) count for the marking rule."""
    ids = [f"v{i}" for i in range(10)]

    def acc(correct: int, counted_wrong: int, left_out: int) -> MetricResult:
        per_video = {c: float(k < correct) for k, c in enumerate(ids[: 10 - left_out])}
        failed = ids[10 - left_out - counted_wrong:]
        return MetricResult(key="emo-acc", value=100 * sum(per_video.values()) / len(per_video),
                            higher_is_better=True, n_videos=len(per_video), per_video=per_video,
                            failures={c: "no face" for c in failed}, clip_ids=tuple(ids))

    a, b, c = acc(6, 0, 0), acc(7, 3, 0), acc(8, 0, 2)
    assert excluded_failure_rate(a) == excluded_failure_rate(b) == 0.0 and b.failure_rate == 0.3
    assert excluded_failure_rate(c) == 0.2
    marks = list(mark_column("emo-acc", [a, b, c], True).marks)
    assert marks == ["second", "best", None]  # b's failures are wrong answers in its 70 %; c left 2 videos out


def test_failure_rate_shows_in_the_cell_and_the_rule_on_the_page(write_results, tmp_path):
    write_results("clean", "mead", [fid(10.0)])
    write_results("clean2", "mead", [fid(11.0)])
    write_results("fails", "mead", [fid(3.0, failed=CLIPS16[:4])])
    assert evaluate.main(["leaderboard", "--results", str(write_results.root), "--out", str(tmp_path / "lb"),
                          "--resamples", "0", "--set-resamples", "0", "--max-failure-excess", "0.05"]) == 0
    doc = json.loads((tmp_path / "lb" / "results.json").read_text())
    assert doc["marking"]["max_failure_excess"] == 0.05
    rows = {r["method"]: r["metrics"]["fid"] for r in doc["datasets"][0]["rows"]}
    assert (rows["clean"]["mark"], rows["clean2"]["mark"], rows["fails"]["mark"]) == ("best", "second", None)
    assert rows["fails"]["failure_rate"] == 0.25 and rows["fails"]["n_attempted"] == 16
    page = (tmp_path / "lb" / "index.html").read_text()
    assert "25.0% failed" in page and "4/16 failed (25.0%)" in page
    assert "lowest compared row's + 5 percentage points" in page
    tex = (tmp_path / "lb" / "results.tex").read_text()
    assert "3.00 {\\scriptsize (25.0\\% failed)}" in tex  # FID at its 2 decimals (reports.layout.DECIMALS)
    assert "fid_failure_rate" in (tmp_path / "lb" / "results.csv").read_text()


def test_groups_are_named_on_the_page(write_results, tmp_path):
    write_results("tf1-a", "mead", [fid(10.0)])
    write_results("tf1-b", "mead", [fid(11.0)])
    write_results("ptfid", "mead", [fid(5.0, mode="pytorch-fid", clips=CLIPS16[:3])])
    tables = build_tables(find_runs(write_results.root), BOOT)
    page = tables_to_html(tables, BOOT)
    assert "differs from A: fid.resize_mode: tf1 vs pytorch-fid; clip set: 16 vs 3 clips" in page
    assert '<sup class="grp">B</sup>' in page
    tex = tables_to_latex(tables)
    assert "5.00\\textsuperscript{B}" in tex and "group B: ptfid (fid.resize\\_mode: tf1 vs pytorch-fid" in tex
    doc = json.loads(json.dumps({"g": tables[0].groups["fid"][1].differences}))
    assert doc["g"][0].startswith("fid.resize_mode")


# ------------------------------------------------------------------------------------------------ calibration
RANDOM_GENERATOR = {
    "svd": {"key": "svd-xt", "file": "/run/svd-random", "sha256": None, "calibrated": False, "random_seed": 0},
    "whisper": {"key": "whisper-tiny", "file": "random:0", "sha256": "0" * 64, "calibrated": False,
                "verified_by": "unverified", "pinned_by": None},
}


def test_generator_trained_on_random_weights_makes_its_row_uncalibrated(write_results, tmp_path):
    write_results("real", "mead", [fid(10.0)])
    write_results("toy", "mead", [fid(11.0)], checkpoint={"sha256": "fe" * 32, "weights": RANDOM_GENERATOR})
    write_results("unknown", "mead", [fid(12.0)], checkpoint={"sha256": "fe" * 32})
    write_results("folder", "mead", [fid(13.0)], checkpoint=None)  # scored from --videos: extractors decide
    tables = build_tables(find_runs(write_results.root), BOOT)
    rows = {r.method: r for r in tables[0].rows}
    assert rows["real"].calibrated and rows["folder"].calibrated
    assert not rows["toy"].calibrated and not rows["toy"].cells["fid"].calibrated
    assert rows["toy"].calibration.problems == ("generator trained on random SVD weights",
                                                "generator trained on random Whisper weights")
    assert rows["unknown"].calibration.problems == ("generator's pretrained weights are not recorded in its "
                                                    "checkpoint",)
    page = write_leaderboard(tables, tmp_path / "lb", BOOT)["html"].read_text()
    assert "uncalibrated: generator trained on random SVD weights; generator trained on random Whisper weights" in page
    assert rows["real"].calibration.label() == "calibrated"
    assert row_calibration([fid(1.0)], {"checkpoint": {"weights": CALIBRATED_GENERATOR}}).calibrated
    # training records the release files it started from under "official" ({} when it started from SVD only)
    official = {"dicetalk-unet": {"key": "dicetalk-unet", "sha256": "12" * 32, "calibrated": True, "pinned_by": "user"},
                "dicetalk-emo-model": {"key": "dicetalk-emo-model", "sha256": "34" * 32, "calibrated": False,
                                       "verified_by": "unverified"}}
    cal = row_calibration([fid(1.0)], {"checkpoint": {"weights": {**CALIBRATED_GENERATOR, "official": official}}})
    assert cal.problems == ("generator initialised from unverified dicetalk-emo-model weights",)
    assert cal.pinned_by_user == ("dicetalk-unet",)
    assert row_calibration([fid(1.0)], {"checkpoint": {"weights": {**CALIBRATED_GENERATOR, "official": {}}}}).calibrated


def test_pinned_i3d_file_makes_an_fvd_row_calibrated_pinned_by_user(write_results, tmp_path, monkeypatch):
    from dicetalk_bench import weights
    from dicetalk_bench.metrics.i3d import load_i3d

    monkeypatch.setenv(weights.WEIGHTS_DIR_ENV, str(tmp_path / "wdir"))
    monkeypatch.setenv(weights.HASH_CACHE_ENV, str(tmp_path / "hash_cache.json"))
    path = weights.make_random("i3d-400", tmp_path / "mine", seed=0)
    _, before = load_i3d("i3d-400", path, allow_unverified=True)
    assert before["calibrated"] is False and before["pinned_by"] is None
    assert weights.main(["verify", "--pin", "i3d-400", str(path)]) == 0
    _, record = load_i3d("i3d-400", path)  # the real loading code: the user pin verifies the file
    assert record["calibrated"] is True and record["pinned_by"] == "user"

    def fvd(value: float, rec) -> MetricResult:
        return MetricResult(key="fvd", value=value, higher_is_better=False, n_videos=16, clip_ids=tuple(CLIPS16),
                            protocol={"backend": "i3d-400", "reference_manifest_sha256": "aa" * 32},
                            extractors=(rec,))

    write_results("pinned", "mead", [fvd(100.0, record)])
    write_results("unverified", "mead", [fvd(90.0, before)])
    tables = build_tables(find_runs(write_results.root), BOOT)
    rows = {r.method: r for r in tables[0].rows}
    assert rows["pinned"].calibrated and rows["pinned"].calibration.pinned_by_user == ("i3d-400",)
    assert rows["pinned"].calibration.label() == "calibrated (pinned by user: i3d-400)"
    assert not rows["unverified"].calibrated
    assert rows["unverified"].calibration.problems == ("unverified i3d-400 weights in the metrics",)
    page = tables_to_html(tables, BOOT)
    assert '<span class="pinned"' in page and ">pinned by user</span>" in page
    assert [line.split(",")[2] for line in tables_to_csv(tables).splitlines() if line.startswith("mead,pinned")] == [
        "True"]
    tex = tables_to_latex(tables)
    assert "pinned$^\\ddagger$" in tex and "pinned by user" in tex and "unverified$^\\dagger$" in tex


# ------------------------------------------------------------------------------------------------ labels
def test_interval_labels_follow_the_level(write_results, tmp_path):
    write_results("a", "mead", [metric("psnr", 30.0, True, {"a": 29.0, "b": 31.0, "c": 30.0})])
    write_results("b", "mead", [metric("psnr", 20.0, True, {"a": 19.0, "b": 21.0, "c": 20.0})])
    boot = BootstrapConfig(resamples=50, set_resamples=0, level=0.8)
    tables = build_tables(find_runs(write_results.root), boot)
    page = tables_to_html(tables, boot)
    assert "80% interval [" in page and "95%" not in page and "percentile bootstrap of the mean over videos)" in page
    assert "Intervals over videos are 80% intervals" in page
    # a stored interval keeps its own level and method
    stored = metric("psnr", 25.0, True, {"a": 24.0, "b": 26.0})
    stored = dataclasses.replace(stored, interval={"low": 24.0, "high": 26.0, "level": 0.9,
                                                   "method": "percentile bootstrap", "n_resamples": 10, "seed": 0})
    write_results("c", "mead", [stored])
    tables = build_tables(find_runs(write_results.root), boot)
    cell = {r.method: r for r in tables[0].rows}["c"].cells["psnr"]
    assert cell.ci == (24.0, 26.0) and cell.ci_level == 0.9
    page = tables_to_html(tables, boot)
    assert "90% interval [24, 26]" in page and "80% / 90% intervals" in page
