"""FVD feature extraction: bounded reading (``fvd.video_clip_features``: one 16-frame decoding chunk plus the clip's
frames in memory) against the whole-video reading (``fvd.whole_video_clip_features``: every frame decoded into one
array, then the clip cut; the baseline), on the same long videos with the same random I3D, in the same run.

Reports frames decoded per second of both with ``ratio_time_bounded_over_whole``, and the peak resident memory
(``VmHWM``) each reading adds over a child process's state after loading I3D, with
``ratio_peak_bounded_over_whole`` (``extra_info``). Checks the features are equal.

Run: ``python -m pytest benchmarks/bench_metrics_fvd_memory.py --benchmark-only``
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from dicetalk_bench import media, weights
from dicetalk_bench.metrics import fvd
from dicetalk_bench.metrics.i3d import load_i3d
from dicetalk_bench.metrics.video_set import list_videos

logger = logging.getLogger(__name__)
N_VIDEOS, N_FRAMES, H, W = 2, 250, 256, 256
CONFIG = fvd.FVDConfig(clip_length=9, size=193)
_RESULTS: dict[str, object] = {}

_CHILD = textwrap.dedent("""
    import json, sys
    from dicetalk_bench.metrics import fvd
    from dicetalk_bench.metrics.i3d import load_i3d
    from dicetalk_bench.metrics.video_set import list_videos

    def peak_mib():
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024

    model, _ = load_i3d("i3d-400", sys.argv[2], allow_unverified=True)
    reader = {"bounded": fvd.video_clip_features, "whole": fvd.whole_video_clip_features}[sys.argv[3]]
    videos = list_videos(sys.argv[1])
    # a first video through the network, so both readings start from the network's own peak
    fvd.set_clip_features(model, videos, fvd.FVDConfig(clip_length=9, size=193), reader=fvd.video_clip_features)
    before = peak_mib()
    fvd.set_clip_features(model, videos, fvd.FVDConfig(clip_length=9, size=193), reader=reader)
    print(json.dumps({"before": before, "after": peak_mib()}))
""")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("fvd_memory")
    rng = np.random.default_rng(0)
    for i in range(N_VIDEOS):
        base = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
        media.write_video(root / "videos" / f"v{i}.mp4", np.stack([np.roll(base, t, axis=1) for t in range(N_FRAMES)]),
                          fps=25)
    path = weights.make_random("i3d-400", root / "w", seed=0)
    model, _ = load_i3d("i3d-400", path, allow_unverified=True)
    return root, path, model, list_videos(root / "videos")


def _extract(model, videos, reader):
    return fvd.set_clip_features(model, videos, CONFIG, reader=reader)[0]


def _peak_added_mib(root, path, mode: str) -> float:
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(root / "videos"), str(path), mode], capture_output=True,
                          text=True, check=True, timeout=900)
    peaks = json.loads(proc.stdout.strip().splitlines()[-1])
    return peaks["after"] - peaks["before"]


def test_fvd_whole_video_reading_baseline(benchmark, setup):
    root, path, model, videos = setup
    feats = benchmark.pedantic(_extract, args=(model, videos, fvd.whole_video_clip_features), rounds=2, iterations=1)
    _RESULTS["whole_s"] = benchmark.stats.stats.mean
    _RESULTS["whole_feats"] = feats
    _RESULTS["whole_peak_mib"] = _peak_added_mib(root, path, "whole")
    benchmark.extra_info["frames_per_s"] = N_VIDEOS * N_FRAMES / benchmark.stats.stats.mean
    benchmark.extra_info["peak_added_mib"] = _RESULTS["whole_peak_mib"]


def test_fvd_bounded_reading(benchmark, setup):
    root, path, model, videos = setup
    feats = benchmark.pedantic(_extract, args=(model, videos, fvd.video_clip_features), rounds=2, iterations=1)
    bounded_s = benchmark.stats.stats.mean
    peak = _peak_added_mib(root, path, "bounded")
    benchmark.extra_info["frames_per_s"] = N_VIDEOS * N_FRAMES / bounded_s
    benchmark.extra_info["peak_added_mib"] = peak
    if "whole_s" in _RESULTS:
        for cid, f in feats.items():
            assert np.array_equal(f, _RESULTS["whole_feats"][cid]), cid
        time_ratio = bounded_s / _RESULTS["whole_s"]
        peak_ratio = peak / max(_RESULTS["whole_peak_mib"], 1e-9)
        benchmark.extra_info["ratio_time_bounded_over_whole"] = time_ratio
        benchmark.extra_info["ratio_peak_bounded_over_whole"] = peak_ratio
        logger.warning("FVD reading: bounded %.1f frames/s, +%.1f MiB peak; whole %.1f frames/s, +%.1f MiB peak; "
                       "time ratio %.3f, peak ratio %.3f", N_VIDEOS * N_FRAMES / bounded_s, peak,
                       N_VIDEOS * N_FRAMES / _RESULTS["whole_s"], _RESULTS["whole_peak_mib"], time_ratio, peak_ratio)
