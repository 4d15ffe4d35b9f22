"""End to end: `python -m dicetalk_bench.metrics score` on tiny generated folders with random weights."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest

from dicetalk_bench import media, weights
from dicetalk_bench.metrics import i3d, inception  # noqa: F401  (they register their random-weights builders)
from dicetalk_bench.metrics.__main__ import main
from dicetalk_bench.metrics.frechet import FeatureStats, frechet_distance_from_stats
from dicetalk_bench.metrics.intervals import METHOD_SET
from dicetalk_bench.metrics.result import load_results, reference_set_sha256


def _clip(seed: int, n: int = 10, h: int = 48, w: int = 64) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    return np.stack([np.roll(base, 3 * t, axis=1) for t in range(n)])


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    for i, name in enumerate(("a", "b", "c")):
        media.write_video(root / "gen" / f"{name}.mp4", _clip(i), fps=25)
        media.write_video(root / "ref" / f"{name}.mp4", _clip(10 + i), fps=25)
    media.write_video(root / "gen" / "short.mp4", _clip(5, n=4), fps=25)
    (root / "gen" / "broken.mp4").write_bytes(b"this is not a video")
    wdir = root / "weights"
    inc = weights.make_random("inception-fid", wdir, seed=0)
    i3d = weights.make_random("i3d-400", wdir, seed=0)
    return root, inc, i3d


# the small-set options of each metric (an option no requested metric reads is refused)
_OPTIONS = {"fid": ("fid.frame_stride=3",), "kid": ("kid.subsets=5", "fid.frame_stride=3"),
            "fvd": ("fvd.clip_length=9", "fvd.size=193")}


def _args(root, inc, i3d, out, metrics, *extra):
    options = dict.fromkeys(o for m in metrics.split(",") for o in _OPTIONS[m])
    return ["score", "--videos", str(root / "gen"), "--reference", str(root / "ref"), "--out", str(out),
            "--weights", f"inception-fid={inc}", "--weights", f"i3d-400={i3d}", "--allow-unverified",
            "--cache-dir", str(root / "cache"), "--metrics", metrics,
            *[a for o in options for a in ("--option", o)], *extra]


def test_score_fid_kid_fvd_end_to_end(folders, tmp_path):
    root, inc, i3d = folders
    out = tmp_path / "res.json"
    assert main(_args(root, inc, i3d, out, "fid,kid,fvd", "--force-small-set")) == 0
    res = {r.key: r for r in load_results(out)}
    assert set(res) == {"fid", "kid", "fvd"}
    fid, kid, fvd = res["fid"], res["kid"], res["fvd"]
    for r in (fid, kid, fvd):
        assert r.value is not None and np.isfinite(r.value)
        assert not r.calibrated and r.extractors[0]["calibrated"] is False
        assert "broken" in r.failures and "broken.mp4" in r.failures["broken"]
    assert fid.value >= 0 and fvd.value >= 0  # KID is unbiased: it may be slightly negative
    # FID: every 3rd frame: 3 clips x 4 frames + 2 of the short clip; recomputable from the stored features
    assert fid.n_videos == 4 and fid.n_frames == 14 and fid.features["short"].shape == (2, 2048)
    assert fid.protocol["resize_mode"] == "tf1" and fid.protocol["forced_small_set"] is True
    assert fid.protocol["n_reference_frames"] == 12 and fid.extractors[0]["sha256"] == weights.file_sha256(inc)
    gen = FeatureStats.from_features(np.concatenate(list(fid.features.values())))
    ref = FeatureStats.from_features(np.concatenate(list(fid.reference_features.values())))
    assert frechet_distance_from_stats(gen, ref) == pytest.approx(fid.value, rel=1e-5)
    assert kid.protocol["subset_size"] == 12 and kid.protocol["n_subsets"] == 5 and "std" in kid.extra
    # FVD: one 9-frame clip per video; the 4-frame video is a recorded failure
    assert fvd.n_clips == 3 and fvd.n_videos == 3 and "fewer than the FVD clip length" in fvd.failures["short"]
    assert fvd.protocol["clip_length"] == 9 and fvd.protocol["backend"] == "i3d-400"
    assert fvd.protocol["i3d_bn_eps"] == 1e-5 and fvd.protocol["frame_geometry"] == "squash"
    assert fvd.features["a"].shape == (1, 400) and fvd.extractors[0]["backend"] == "i3d-400"
    # no folder paths or failure reasons in a protocol record (they do not change the number): extra holds them
    for r in (fid, kid, fvd):
        assert str(root) not in json.dumps(r.to_dict()["protocol"]), r.key
        assert r.extra["videos_dir"] == str(root / "gen") and r.extra["reference_dir"] == str(root / "ref")
        assert r.protocol["reference_failed_clips"] == [] and r.protocol["reference_manifest_sha256"]
    assert fid.extra["raw_value"] == pytest.approx(fid.value) and "raw_value" not in fid.protocol
    cached = sorted(p.name.split("-")[0] for p in (root / "cache").glob("*.npz"))
    assert cached == ["fid", "fvd"]
    # intervals computed once at scoring time; each reference set stored once, named by its content hash
    for r in (fid, kid, fvd):
        assert r.interval["method"] == METHOD_SET and r.interval["low"] <= r.interval["high"]
        assert r.interval["seed"] == 0 and r.interval["level"] == 0.95
        assert r.protocol["reference_sha256"] == reference_set_sha256(r.reference_features, r.extractors)
    assert fid.protocol["reference_sha256"] == kid.protocol["reference_sha256"] != fvd.protocol["reference_sha256"]
    assert sorted(p.stem for p in (tmp_path / "reference_features").iterdir()) == sorted(
        {fid.protocol["reference_sha256"], fvd.protocol["reference_sha256"]})


def test_same_set_gives_zero_fid_from_cache(folders, tmp_path, caplog):
    root, inc, i3d = folders
    out = tmp_path / "same.json"
    args = _args(root, inc, i3d, out, "fid", "--force-small-set")
    args[2] = str(root / "ref")  # --videos = the reference folder
    with caplog.at_level("INFO"):
        assert main(args) == 0
    (fid,) = load_results(out)
    assert fid.value == pytest.approx(0.0, abs=1e-6 * fid.protocol["n_reference_frames"])
    assert "using cached reference features" in caplog.text


@pytest.mark.parametrize("metric", ["fid", "kid", "fvd"])
def test_small_set_refused_without_force(folders, tmp_path, metric, capsys):
    root, inc, i3d = folders
    assert main(_args(root, inc, i3d, tmp_path / "x.json", metric)) == 1
    assert "force-small-set" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()


def test_small_set_refused_after_extraction_when_headers_have_no_count(folders, tmp_path, monkeypatch, capsys):
    # without container frame counts the guard runs on the real feature count (after extraction)
    from dicetalk_bench.metrics import fid as fid_mod

    root, inc, i3d = folders
    monkeypatch.setattr(fid_mod, "probed_frame_counts", lambda videos: None)
    assert main(_args(root, inc, i3d, tmp_path / "x.json", "fid")) == 1
    assert "at least 2049 per set" in capsys.readouterr().err and not (tmp_path / "x.json").exists()


def test_usage_errors(folders, tmp_path, capsys):
    root, inc, i3d = folders
    with pytest.raises(SystemExit) as e:
        main(["score", "--videos", str(root / "gen"), "--metrics", "fid", "--out", str(tmp_path / "o.json")])
    assert e.value.code == 2 and "needs --reference" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["score", "--videos", str(root / "gen"), "--metrics", "nope", "--out", str(tmp_path / "o.json")])
    assert e.value.code == 2 and "unknown metric 'nope'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["score", "--videos", str(tmp_path / "missing"), "--metrics", "fid", "--out", "o.json"])
    assert e.value.code == 2 and "not a folder" in capsys.readouterr().err


def test_help_is_fast_and_list_shows_directions():
    t0 = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "dicetalk_bench.metrics", "score", "--help"], capture_output=True,
                         text=True, check=True)
    assert "--reference" in out.stdout and time.monotonic() - t0 < 20
    out = subprocess.run([sys.executable, "-m", "dicetalk_bench.metrics", "list"], capture_output=True, text=True,
                         check=True)
    assert "fid" in out.stdout and "lower is better" in out.stdout
