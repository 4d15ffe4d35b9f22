"""Peak memory of scoring FVD and PSNR does not grow with the number of videos.

A child process scores 200 tiny videos (12 frames, 64x64) per set through the registry, after a warm-up run on 4,
and reports its peak resident set (``VmHWM`` of /proc/self/status) after each step. What may grow with the number
of videos is only what is kept per video: 400 FVD feature rows (400 float32 each, 1.6 kB), 200 x 12 PSNR values
and the result records, about 1 MB in all. The stated bound, 32 MiB over the warm-up's peak, leaves room for
allocator and interpreter noise but not for keeping the videos' frames (2 x 200 x 12 x 64 x 64 x 3 bytes = 59 MB)
or their preprocessed clips (4 MB each).

The I3D weights are random ones resolved and loaded through the weights registry, but the network is replaced in
the child by a light stand-in of constant cost (the mean of each clip channel, 400 times): the random I3D takes
about 2.5 s per 9-frame clip on a CPU, 17 minutes for 400 clips. The network's own memory does not depend on the
number of videos (one clip per forward pass here), so the stand-in changes nothing this test measures.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from dicetalk_bench import media, weights

N_VIDEOS, N_FRAMES, SIZE = 200, 12, 64
GROWTH_BOUND_MIB = 32

_CHILD = textwrap.dedent("""
    import json, sys
    from pathlib import Path

    def peak_mib():
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmHWM in /proc/self/status")

    import torch
    from dicetalk_bench.metrics import i3d
    from dicetalk_bench.metrics.registry import ScoreRequest, compute_metrics

    class StandIn(torch.nn.Module):
        def forward(self, x):
            return x.mean(dim=(2, 3, 4)).repeat(1, 134)[:, :400]

    real_load = i3d.load_i3d
    records = {}
    def load_with_stand_in(*args, **kwargs):
        # the random weights, resolved and loaded through the registry once (a second load on top of the first
        # one's freed pages would raise the peak by the model's size, which is not what is measured here)
        if "record" not in records:
            records["record"] = real_load(*args, **kwargs)[1]
        return StandIn(), records["record"]
    i3d.load_i3d = load_with_stand_in

    root, weights_path = Path(sys.argv[1]), sys.argv[2]
    options = {"fvd.clip_length": 9, "fvd.size": 193}
    out = {"baseline": peak_mib()}
    for step in ("warm", "full"):
        request = ScoreRequest(videos=root / step / "gen", reference=root / step / "ref", force_small_set=True,
                               weights={"i3d-400": weights_path}, allow_unverified=True, options=options)
        results = {r.key: r for r in compute_metrics(["fvd", "psnr"], request)}
        out[step] = peak_mib()
        out[step + "_n"] = [results["fvd"].n_clips, results["psnr"].n_videos]
    print(json.dumps(out))
""")


def _clip(rng: np.random.Generator) -> np.ndarray:
    base = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    return np.stack([np.roll(base, t, axis=1) for t in range(N_FRAMES)])


@pytest.mark.slow
def test_peak_memory_does_not_grow_with_the_number_of_videos(tmp_path):
    rng = np.random.default_rng(0)
    for step, n in (("warm", 4), ("full", N_VIDEOS)):
        for i in range(n):
            clip = _clip(rng)
            media.write_video(tmp_path / step / "gen" / f"c{i:03d}.mp4", clip, fps=25)
            media.write_video(tmp_path / step / "ref" / f"c{i:03d}.mp4", np.roll(clip, 1, axis=2), fps=25)
    i3d = weights.make_random("i3d-400", tmp_path / "w", seed=0)
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(tmp_path), str(i3d)], capture_output=True, text=True,
                          timeout=900, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    peaks = json.loads(proc.stdout.strip().splitlines()[-1])
    assert peaks["warm_n"] == [4, 4] and peaks["full_n"] == [N_VIDEOS, N_VIDEOS]
    growth = peaks["full"] - peaks["warm"]
    assert growth < GROWTH_BOUND_MIB, f"peak RSS grew by {growth:.1f} MiB from 4 to {N_VIDEOS} videos ({peaks})"
