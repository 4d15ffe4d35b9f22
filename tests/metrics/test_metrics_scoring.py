"""Scoring a list of metrics: one call per compute function, --keep-going, and the reference-feature cache folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from dicetalk_bench.errors import SetupError
from dicetalk_bench.metrics import registry
from dicetalk_bench.metrics.registry import MetricSpec, ScoreRequest
from dicetalk_bench.metrics.result import MetricResult, load_results
from dicetalk_bench.metrics.scoring import default_cache_dir, run_score, score_metrics

CALLS: list[tuple[str, ...]] = []


def _good(request: ScoreRequest):
    CALLS.append(request.metrics)
    return [MetricResult(key=k, value=float(len(k)), higher_is_better=True, n_videos=0, environment={})
            for k in request.metrics]


def _broken(request: ScoreRequest):
    CALLS.append(request.metrics)
    raise RuntimeError("this metric is broken")


@pytest.fixture
def toys():
    names = {"toy-good-a": "_good", "toy-good-b": "_good", "toy-broken": "_broken"}
    for name, func in names.items():
        registry.register(MetricSpec(name, True, name, f"{__name__}:{func}"))
    CALLS.clear()
    try:
        yield
    finally:
        for name in names:
            registry.unregister(name)


def test_one_call_per_compute_function_in_the_order_asked(toys, tmp_path):
    results, failed = score_metrics(["toy-good-b", "toy-good-a"], ScoreRequest(videos=tmp_path))
    assert [r.key for r in results] == ["toy-good-b", "toy-good-a"] and failed == []
    assert CALLS == [("toy-good-b", "toy-good-a")]


def test_a_failing_metric_stops_the_run_unless_keep_going(toys, tmp_path):
    with pytest.raises(RuntimeError, match="broken"):
        score_metrics(["toy-broken", "toy-good-a"], ScoreRequest(videos=tmp_path))
    assert CALLS == [("toy-broken",)]  # nothing after the failure ran
    results, failed = score_metrics(["toy-broken", "toy-good-a"], ScoreRequest(videos=tmp_path), keep_going=True)
    assert [r.key for r in results] == ["toy-good-a"] and failed == ["toy-broken"]


def test_run_score_writes_what_was_scored_and_reports_a_failure_in_its_exit_code(toys, tmp_path):
    out = tmp_path / "r.json"
    assert run_score(["toy-good-a", "toy-broken"], ScoreRequest(videos=tmp_path), out, keep_going=True) == 1
    assert [r.key for r in load_results(out)] == ["toy-good-a"]
    assert run_score(["toy-good-a"], ScoreRequest(videos=tmp_path), tmp_path / "ok.json") == 0


def test_when_every_metric_fails_no_results_file_is_written(toys, tmp_path):
    out = tmp_path / "r.json"
    with pytest.raises(SetupError, match=r"every requested metric failed \(toy-broken\)"):
        run_score(["toy-broken"], ScoreRequest(videos=tmp_path), out, keep_going=True)
    assert not out.exists()


def test_default_cache_dir_follows_xdg_cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "dicetalk_bench" / "metrics"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == Path(tmp_path / "home" / ".cache" / "dicetalk_bench" / "metrics")
