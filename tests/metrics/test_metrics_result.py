"""MetricResult JSON round trip, features sidecar, schema checks; the metric registry."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dicetalk_bench.metrics import registry
from dicetalk_bench.metrics.registry import MetricRegistryError, MetricSpec, ScoreRequest
from dicetalk_bench.metrics.result import (SCHEMA_VERSION, MetricResult, ResultFormatError, load_results,
                                           reference_set_sha256, save_results, with_reference_sha256)

_EXTRACTOR = {"key": "inception-fid", "file": "/x/pt.pth", "sha256": "ab" * 32, "calibrated": False,
              "verified_by": "unverified"}


def _result(**kw):
    base = dict(key="fid", value=12.5, higher_is_better=False, n_videos=2, n_frames=40,
                protocol={"resize_mode": "tf1", "raw_value": np.float64(12.5), "sizes": (1, 2)},
                extractors=(_EXTRACTOR,), failures={"c": "no frames"},
                features={"a": np.ones((3, 4), np.float32), "b/x": np.zeros((2, 4), np.float32)},
                reference_features={"r": np.full((1, 4), 2.0, np.float32)})
    base.update(kw)
    return MetricResult(**base)


def test_round_trip_with_features(tmp_path):
    r1 = _result()
    r2 = _result(key="psnr", value=30.0, higher_is_better=True, per_video={"a": 29.0, "b/x": 31.0},
                 features=None, reference_features=None)
    path = save_results([r1, r2], tmp_path / "out" / "res.json")
    doc = json.loads(path.read_text())
    assert doc["schema_version"] == SCHEMA_VERSION and len(doc["results"]) == 2
    assert doc["results"][0]["calibrated"] is False
    assert (tmp_path / "out" / "res.features.npz").is_file()
    back = load_results(path)
    assert back[0] == MetricResult.from_dict(with_reference_sha256(r1).to_dict())
    assert back[0].protocol["reference_sha256"] == reference_set_sha256(r1.reference_features, r1.extractors)
    assert back[0].key == "fid" and back[0].value == 12.5 and back[0].failures == {"c": "no frames"}
    assert back[0].protocol["sizes"] == [1, 2] and back[0].extractors[0]["sha256"] == "ab" * 32
    np.testing.assert_array_equal(back[0].features["b/x"], r1.features["b/x"])
    np.testing.assert_array_equal(back[0].reference_features["r"], r1.reference_features["r"])
    assert back[1].per_video == {"a": 29.0, "b/x": 31.0} and back[1].features is None
    assert back[1].environment["numpy"] == np.__version__


def test_shared_feature_arrays_are_stored_once(tmp_path):
    feats = {"a": np.ones((3, 4), np.float32)}
    r1 = _result(features=feats, reference_features=None)
    r2 = _result(key="kid", features=feats, reference_features=None)
    path = save_results([r1, r2], tmp_path / "r.json")
    with np.load(tmp_path / "r.features.npz") as z:
        assert len(z.files) == 1
    back = load_results(path)
    np.testing.assert_array_equal(back[1].features["a"], feats["a"])


def test_calibrated_only_if_every_extractor_is():
    assert not _result().calibrated
    ok = dict(_EXTRACTOR, calibrated=True)
    assert _result(extractors=(ok,)).calibrated
    assert not _result(extractors=(ok, _EXTRACTOR)).calibrated


def test_tampered_features_file_is_refused(tmp_path):
    path = save_results([_result()], tmp_path / "r.json")
    np.savez(tmp_path / "r.features.npz", x=np.zeros(1))
    with pytest.raises(ResultFormatError, match="sha256"):
        load_results(path)
    (tmp_path / "r.features.npz").unlink()
    with pytest.raises(ResultFormatError, match="missing"):
        load_results(path)
    assert load_results(path, load_features=False)[0].features is None


def test_schema_errors(tmp_path):
    p = tmp_path / "r.json"
    with pytest.raises(ResultFormatError, match="does not exist"):
        load_results(p)
    p.write_text("{not json")
    with pytest.raises(ResultFormatError, match="not valid JSON"):
        load_results(p)
    p.write_text(json.dumps({"schema": "other"}))
    with pytest.raises(ResultFormatError, match="not a"):
        load_results(p)
    d = _result(features=None, reference_features=None).to_dict()
    p.write_text(json.dumps({"schema": "dicetalk_bench.metric_results", "schema_version": 99, "results": [d]}))
    with pytest.raises(ResultFormatError, match="schema_version 99"):
        load_results(p)
    with pytest.raises(ResultFormatError, match="unknown fields"):
        MetricResult.from_dict(d | {"bogus": 1})
    with pytest.raises(ResultFormatError, match="missing fields"):
        MetricResult.from_dict({k: v for k, v in d.items() if k != "value"})
    with pytest.raises(ResultFormatError, match="value must be a number"):
        _result(value="12")


def test_registry_directions_and_lookup():
    assert registry.get_metric(registry.FID).higher_is_better is False
    assert registry.get_metric(registry.FVD).needs_reference
    assert {"fid", "kid", "fvd"} <= set(registry.metric_names())
    assert registry.parse_metric_list(" fid, FVD ,fid") == ["fid", "fvd"]
    with pytest.raises(MetricRegistryError, match="unknown metric 'nope'"):
        registry.get_metric("nope")
    with pytest.raises(MetricRegistryError, match="no metric names"):
        registry.parse_metric_list(" , ")


@pytest.mark.parametrize("name", ["FID", "1fid", "fid_x", "", "f id"])
def test_registry_refuses_invalid_names(name):
    with pytest.raises(MetricRegistryError, match="invalid metric name"):
        MetricSpec(name, True, "d", "m:f")


def test_registry_refuses_bad_specs_and_duplicates():
    with pytest.raises(MetricRegistryError, match="module:function"):
        MetricSpec("x", True, "d", "not a path")
    with pytest.raises(MetricRegistryError, match="must be a bool"):
        MetricSpec("x", 1, "d", "m:f")
    with pytest.raises(MetricRegistryError, match="already registered"):
        registry.register(MetricSpec("fid", True, "another", "m:f"))


def _toy_compute(request: ScoreRequest):
    return [MetricResult(key=k, value=float(len(k)), higher_is_better=True, n_videos=0, environment={})
            for k in ("toy-a", "toy-b")]


_CALLS: list[tuple[str, ...]] = []


def _counting_compute(request: ScoreRequest):
    _CALLS.append(request.metrics)
    return _toy_compute(request)


def test_compute_metrics_dispatch_calls_shared_function_once(tmp_path):
    path = f"{__name__}:_counting_compute"
    registry.register(MetricSpec("toy-a", True, "toy a", path))
    registry.register(MetricSpec("toy-b", True, "toy b", path))
    registry.register(MetricSpec("toy-ref", True, "needs ref", path, needs_reference=True))
    try:
        out = registry.compute_metrics(["toy-a", "toy-b"], ScoreRequest(videos=tmp_path))
        assert [r.key for r in out] == ["toy-a", "toy-b"] and _CALLS == [("toy-a", "toy-b")]
        out = registry.compute_metrics(["toy-b"], ScoreRequest(videos=tmp_path))
        assert [r.key for r in out] == ["toy-b"]
        with pytest.raises(MetricRegistryError, match="needs a reference"):
            registry.compute_metrics(["toy-ref"], ScoreRequest(videos=tmp_path))
        registry.register(MetricSpec("toy-missing", True, "x", f"{__name__}:no_such_function"))
        with pytest.raises(MetricRegistryError, match="has no function"):
            registry.compute_metrics(["toy-missing"], ScoreRequest(videos=tmp_path))
    finally:
        for n in ("toy-a", "toy-b", "toy-ref", "toy-missing"):
            registry.unregister(n)


def test_every_builtin_compute_path_imports():
    for name in registry.metric_names():
        assert callable(registry.get_metric(name).load_compute())


def test_package_import_is_light():
    import subprocess
    import sys

    code = ("import sys, dicetalk_bench.metrics, dicetalk_bench.metrics.__main__; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_version_1_files_read_with_empty_new_fields(tmp_path):
    r = MetricResult(key="psnr", value=30.0, higher_is_better=True, n_videos=2, per_video={"a": 29.0, "b": 31.0},
                     failures={"c": "no face"})
    d = r.to_dict()
    for name in ("interval", "failure_kinds", "clip_ids"):
        d.pop(name)
    d["schema_version"] = 1
    p = tmp_path / "old.json"
    p.write_text(json.dumps({"schema": "dicetalk_bench.metric_results", "schema_version": 1, "results": [d]}))
    (back,) = load_results(p)
    assert back.interval is None and back.clip_ids == () and dict(back.failure_kinds) == {}
    assert back.n_attempted == 3 and back.failure_rate == pytest.approx(1 / 3)


def test_failure_rate_counts_recorded_clip_ids():
    r = MetricResult(key="emo-acc", value=50.0, higher_is_better=True, n_videos=2, clip_ids=("a", "b", "c", "d"),
                     failures={"c": "x", "d": "y"}, failure_kinds={"c": "no-face", "d": "too-short"})
    assert r.n_attempted == 4 and r.failure_rate == 0.5
    assert MetricResult.from_dict(r.to_dict()).clip_ids == ("a", "b", "c", "d")


def test_to_frame_one_row_per_attempted_clip():
    r = MetricResult(key="psnr", value=30.0, higher_is_better=True, n_videos=2, per_video={"b": 31.0, "a": 29.0},
                     failures={"c": "no face found"}, failure_kinds={"c": "no-face"}, clip_ids=("a", "b", "c"))
    f = r.to_frame()
    assert list(f["clip_id"]) == ["a", "b", "c"] and set(f["metric"]) == {"psnr"}
    assert f["value"].iloc[:2].tolist() == [29.0, 31.0] and np.isnan(f["value"].iloc[2])
    assert f["failed"].tolist() == [False, False, True] and f["failure_kind"].iloc[2] == "no-face"
    assert f["value"].mean() == pytest.approx(r.value)


def test_non_finite_numbers_round_trip_as_text(tmp_path):
    import math

    r = MetricResult(key="psnr", value=math.inf, higher_is_better=True, n_videos=2,
                     per_video={"a": math.inf, "b": math.nan},
                     interval={"low": -math.inf, "high": math.inf, "level": 0.95, "method": "m", "n_resamples": 1,
                               "seed": 0},
                     extra={"std": math.nan, "parts": [1.0, -math.inf], "label": "inf-free text"})
    path = save_results([r], tmp_path / "r.json")
    doc = json.loads(path.read_text())
    assert doc["results"][0]["value"] == "inf" and doc["results"][0]["per_video"] == {"a": "inf", "b": "nan"}
    back = load_results(path)[0]
    assert back.value == math.inf and back.per_video["a"] == math.inf and math.isnan(back.per_video["b"])
    assert (back.interval["low"], back.interval["high"]) == (-math.inf, math.inf)
    assert math.isnan(back.extra["std"]) and back.extra["parts"] == [1.0, -math.inf]
    assert back.extra["label"] == "inf-free text"


def test_reference_features_are_stored_once_per_set_and_loaded_once(tmp_path):
    ref = {"r1": np.full((2, 4), 2.0, np.float32), "r0": np.arange(8, dtype=np.float32).reshape(2, 4)}
    a = save_results([_result(reference_features=ref), _result(key="kid", reference_features=ref)],
                     tmp_path / "mead" / "a.json", reference_store=tmp_path / "store")
    b = save_results([_result(reference_features=dict(ref))], tmp_path / "mead" / "b.json",
                     reference_store=tmp_path / "store")
    sha = reference_set_sha256(ref, (_EXTRACTOR,))
    assert [p.name for p in (tmp_path / "store").iterdir()] == [f"{sha}.npz"]  # one file for three results
    with np.load(a.with_name("a.features.npz")) as z:  # the sidecar holds generated features only
        assert sorted(z.files) == ["r0_features_0", "r0_features_1", "r1_features_0", "r1_features_1"]
    entry = json.loads(a.read_text())["results"][0]
    assert entry["protocol"]["reference_sha256"] == sha
    assert entry["reference_features_file"] == {"file": f"../store/{sha}.npz", "sha256": sha}
    cache: dict = {}
    ra, rb = load_results(a, reference_cache=cache), load_results(b, reference_cache=cache)
    assert ra[0].reference_features is ra[1].reference_features is rb[0].reference_features  # read once
    np.testing.assert_array_equal(rb[0].reference_features["r0"], ref["r0"])
    assert reference_set_sha256(ref, (_EXTRACTOR,)) != reference_set_sha256(ref, (dict(_EXTRACTOR, sha256="cd"),))
    changed = dict(ref, r1=ref["r1"] + 1e-3)
    assert reference_set_sha256(changed, (_EXTRACTOR,)) != sha


def test_a_modified_reference_store_file_is_refused_with_its_name(tmp_path):
    path = save_results([_result()], tmp_path / "r.json")
    stored = next((tmp_path / "reference_features").iterdir())
    with np.load(stored) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["f0"] = arrays["f0"] + 1.0
    np.savez(stored, **arrays)
    with pytest.raises(ResultFormatError, match=f"{stored.name}.*differs"):
        load_results(path)
    stored.unlink()
    with pytest.raises(ResultFormatError, match="missing"):
        load_results(path)


def test_an_interrupted_write_leaves_no_results_file(tmp_path, monkeypatch):
    import pathlib

    real_write_text = pathlib.Path.write_text

    def half_then_fail(self, data, *args, **kwargs):  # the process dies half-way through writing the JSON
        real_write_text(self, data[: len(data) // 2], *args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(pathlib.Path, "write_text", half_then_fail)
    with pytest.raises(KeyboardInterrupt):
        save_results([_result()], tmp_path / "r.json", header={"provenance": {"seed": 1}})
    monkeypatch.setattr(pathlib.Path, "write_text", real_write_text)
    assert not (tmp_path / "r.json").exists()
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    path = save_results([_result()], tmp_path / "r.json", header={"provenance": {"seed": 1}})
    assert json.loads(path.read_text())["provenance"] == {"seed": 1} and load_results(path)[0].value == 12.5
