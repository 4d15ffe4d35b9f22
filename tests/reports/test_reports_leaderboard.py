"""Results files -> tables: direction-aware marks, columns from the registry, CIs, reading results files."""

from __future__ import annotations

import json

import numpy as np
import pytest
from reports_helpers import metric

from dicetalk_bench.metrics.frechet import FeatureStats, frechet_distance
from dicetalk_bench.metrics.intervals import METHOD_MEAN, METHOD_SET, with_interval
from dicetalk_bench.metrics.registry import MetricSpec, register, unregister
from dicetalk_bench.metrics.result import ResultFormatError, load_results, save_results
from dicetalk_bench.reports.leaderboard import (BootstrapConfig, LeaderboardError, build_tables, rank_marks,
                                                set_statistic)
from dicetalk_bench.reports.runs import find_runs, read_run

FAST = BootstrapConfig(resamples=200, set_resamples=20)


def test_rank_marks_follow_the_direction():
    values = [3.0, 1.0, 2.0, None]
    assert rank_marks(values, higher_is_better=True) == ["best", None, "second", None]
    assert rank_marks(values, higher_is_better=False) == [None, "best", "second", None]


def test_rank_marks_ties_share_a_mark_and_single_value_is_best():
    assert rank_marks([1.0, 1.0, 2.0], higher_is_better=False) == ["best", "best", "second"]
    assert rank_marks([5.0], higher_is_better=True) == ["best"]
    assert rank_marks([None, float("nan")], higher_is_better=True) == [None, None]


def test_tables_per_dataset_with_marks_cis_and_registry_order(write_results):
    write_results("good", "mead", [metric("fid", 10.0, False), metric("psnr", 30.0, True, {"a": 29.0, "b": 31.0})])
    write_results("bad", "mead", [metric("fid", 20.0, False), metric("psnr", 20.0, True, {"a": 20.0, "b": 20.0})])
    write_results("mid", "mead", [metric("fid", 15.0, False)])
    write_results("other", "hdtf", [metric("ssim", 0.5, True, {"a": 0.5, "b": 0.5})])
    tables = build_tables(find_runs(write_results.root), FAST)
    assert [t.dataset for t in tables] == ["mead", "hdtf"]
    mead = tables[0]
    # the page's column groups: image quality (PSNR, SSIM, LPIPS) before distribution distances (FID, FVD, KID)
    assert [c.key for c in mead.columns] == ["psnr", "fid"]
    assert [c.arrow for c in mead.columns] == ["\u2191", "\u2193"]
    rows = {r.method: r for r in mead.rows}
    assert rows["good"].cells["fid"].mark == "best" and rows["mid"].cells["fid"].mark == "second"
    assert rows["bad"].cells["fid"].mark is None
    assert rows["good"].cells["psnr"].mark == "best" and rows["bad"].cells["psnr"].mark == "second"
    assert rows["mid"].cells["psnr"].value is None and rows["mid"].cells["psnr"].mark is None
    assert rows["bad"].cells["psnr"].ci == (20.0, 20.0)  # constant per-video values
    lo, hi = rows["good"].cells["psnr"].ci
    assert 29.0 <= lo < 30.0 < hi <= 31.0 and rows["good"].cells["psnr"].ci_method == METHOD_MEAN
    assert rows["good"].cells["fid"].ci is None  # no per-video values and no features stored
    assert rows["good"].cells["psnr"].n_videos == 2
    assert set(mead.glossary) == {"fid", "psnr"}
    assert mead.glossary["fid"][0]["protocol"] == {"note": "protocol of fid"}
    assert sorted(mead.glossary["fid"][0]["methods"]) == ["bad", "good", "mid"]


def test_uncalibrated_extractor_marks_the_row(write_results):
    write_results("cal", "mead", [metric("fid", 1.0, False)])
    write_results("uncal", "mead", [metric("fid", 2.0, False, calibrated=False)])
    rows = {r.method: r for r in build_tables(find_runs(write_results.root), FAST)[0].rows}
    assert rows["cal"].calibrated and not rows["uncal"].calibrated
    assert not rows["uncal"].cells["fid"].calibrated


def test_direction_disagreeing_with_the_registry_is_refused(write_results):
    write_results("m", "mead", [metric("fid", 1.0, True)])
    with pytest.raises(LeaderboardError, match="registry says False"):
        build_tables(find_runs(write_results.root), FAST)


def test_unregistered_metric_takes_its_direction_from_the_results(write_results):
    write_results("a", "mead", [metric("zz-custom", 1.0, False)])
    write_results("b", "mead", [metric("zz-custom", 2.0, False)])
    table = build_tables(find_runs(write_results.root), FAST)[0]
    assert table.columns[0].key == "zz-custom" and not table.columns[0].higher_is_better
    assert {r.method: r.cells["zz-custom"].mark for r in table.rows} == {"a": "best", "b": "second"}
    write_results("c", "mead", [metric("zz-custom", 3.0, True)])
    with pytest.raises(LeaderboardError, match="other results files say False"):
        build_tables(find_runs(write_results.root), FAST)


def test_registered_direction_is_data_not_template(write_results):
    register(MetricSpec("zz-higher", True, "a test metric", "dicetalk_bench.metrics.registry:get_metric"))
    try:
        write_results("a", "mead", [metric("zz-higher", 1.0, True)])
        write_results("b", "mead", [metric("zz-higher", 2.0, True)])
        table = build_tables(find_runs(write_results.root), FAST)[0]
        assert table.columns[0].description == "a test metric" and table.columns[0].arrow == "\u2191"
        assert {r.method: r.cells["zz-higher"].mark for r in table.rows} == {"a": "second", "b": "best"}
    finally:
        unregister("zz-higher")


def _fid_result(rng, shift: float):
    gen = {f"g{i}": rng.normal(shift, 1.0, size=(6, 4)).astype(np.float32) for i in range(5)}
    ref = {f"r{i}": rng.normal(0.0, 1.0, size=(6, 4)).astype(np.float32) for i in range(5)}
    g = FeatureStats.from_features(np.concatenate([gen[k] for k in sorted(gen)]))
    r = FeatureStats.from_features(np.concatenate([ref[k] for k in sorted(ref)]))
    value = frechet_distance(g.mean(), g.cov(ddof=1), r.mean(), r.cov(ddof=1))
    return metric("fid", value, False, features=gen, reference_features=ref)


def test_cells_show_the_interval_stored_at_scoring_time_without_loading_features(write_results, rng):
    res = with_interval(_fid_result(rng, 2.0), seed=0)
    stat = set_statistic(res)
    assert stat(np.concatenate([res.features[k] for k in sorted(res.features)])) == pytest.approx(res.value)
    assert res.interval["method"] == METHOD_SET
    path = write_results("m", "mead", [res])
    runs = find_runs(write_results.root, load_features=False)
    assert runs[0].results["fid"].features is None
    cell = build_tables(runs, FAST)[0].rows[0].cells["fid"]
    assert cell.ci == (res.interval["low"], res.interval["high"])
    assert cell.ci_method == METHOD_SET and cell.ci_level == 0.95
    assert cell.ci[0] < res.value < cell.ci[1]  # the bias-centred interval holds its own value
    assert path.with_name(path.stem + ".features.npz").is_file()


def test_recomputed_intervals_follow_the_page_settings(write_results, rng):
    res = with_interval(_fid_result(rng, 2.0), seed=0)
    write_results("m", "mead", [res])
    runs = find_runs(write_results.root)
    again = build_tables(runs, BootstrapConfig(set_resamples=50, level=0.8, seed=3, recompute=True))[0]
    cell = again.rows[0].cells["fid"]
    assert cell.ci_method == METHOD_SET and cell.ci_level == 0.8
    assert cell.ci[1] - cell.ci[0] < res.interval["high"] - res.interval["low"]  # 80 % is narrower than 95 %
    twice = build_tables(runs, BootstrapConfig(set_resamples=50, level=0.8, seed=3, recompute=True))[0]
    assert twice.rows[0].cells["fid"].ci == cell.ci  # seeded
    no_set = build_tables(runs, BootstrapConfig(set_resamples=0, recompute=True))[0]
    assert no_set.rows[0].cells["fid"].ci is None


def test_kid_statistic_uses_the_recorded_protocol(rng):
    gen = {f"g{i}": rng.normal(size=(5, 3)) for i in range(4)}
    ref = {f"r{i}": rng.normal(size=(5, 3)) for i in range(4)}
    res = metric("kid", 0.0, False, features=gen, reference_features=ref,
                 protocol={"subset_size": 10, "n_subsets": 5, "seed": 0})
    assert np.isfinite(set_statistic(res)(np.concatenate(list(gen.values()))))
    assert set_statistic(metric("kid", 0.0, False, features=gen, reference_features=ref)) is None
    assert set_statistic(metric("psnr", 1.0, True)) is None


def test_results_files_round_trip_and_keep_the_metrics_format(write_results):
    path = write_results("x <y>", "hdtf", [metric("psnr", 21.5, True, {"a": 21.0, "b": 22.0})], seed=5)
    run = read_run(path)
    assert run.method == "x <y>" and run.dataset == "hdtf" and run.provenance["seed"] == 5
    assert run.results["psnr"].per_video == {"a": 21.0, "b": 22.0}
    assert [r.key for r in load_results(path)] == ["psnr"]  # still a plain metrics results file


def test_plain_metrics_output_is_accepted_with_names_from_the_path(tmp_path):
    save_results([metric("ssim", 0.7, True)], tmp_path / "results" / "mead" / "plain.json")
    run = find_runs(tmp_path / "results")[0]
    assert (run.method, run.dataset) == ("plain", "mead")


def test_bad_results_folders_are_reported_with_the_file(tmp_path, write_results):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        find_runs(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ResultFormatError, match="holds no results files"):
        find_runs(tmp_path / "empty")
    write_results("m", "mead", [metric("fid", 1.0, False)])
    bad = write_results.root / "mead" / "notes.json"
    bad.write_text(json.dumps({"hello": 1}))
    with pytest.raises(ResultFormatError, match="notes.json"):
        find_runs(write_results.root)
    bad.unlink()
    dup = write_results.root / "mead" / "sub" / "copy.json"
    dup.parent.mkdir()
    dup.write_text((write_results.root / "mead" / "m.json").read_text())
    with pytest.raises(ResultFormatError, match="two results files"):
        find_runs(write_results.root)


def test_a_method_whose_file_name_clashes_with_another_method_is_refused(write_results):
    from dicetalk_bench.reports.runs import ResultsCollisionError

    first = write_results("A/B", "mead", [metric("psnr", 20.0, True, {"a": 20.0, "b": 20.0})])
    with pytest.raises(ResultsCollisionError, match="'A_B'.*'A/B'.*A_B"):
        write_results("A_B", "mead", [metric("psnr", 30.0, True, {"a": 30.0, "b": 30.0})])
    assert read_run(first).method == "A/B" and read_run(first).results["psnr"].value == 20.0  # untouched
    write_results("A/B", "mead", [metric("psnr", 25.0, True, {"a": 25.0, "b": 25.0})])  # same method: overwrite
    assert read_run(first).results["psnr"].value == 25.0


@pytest.mark.parametrize("damage", ["truncated", "bad field", "no features file"])
def test_a_bad_results_file_is_named_with_the_fix(write_results, rng, damage):
    write_results("fine", "mead", [metric("psnr", 20.0, True, {"a": 20.0, "b": 20.0})])
    path = write_results("broken", "mead", [_fid_result(rng, 1.0)])
    text = path.read_text()
    if damage == "truncated":
        path.write_text(text[: len(text) // 2])
    elif damage == "bad field":
        path.write_text(text.replace('"higher_is_better"', '"higher_is_worse"', 1))
    else:
        path.with_name(path.stem + ".features.npz").unlink()
    with pytest.raises(ResultFormatError, match=f"{path}.*Delete {path}.*score that method again"):
        find_runs(write_results.root)
