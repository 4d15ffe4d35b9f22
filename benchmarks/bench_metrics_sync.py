"""Sync-C/D benchmarks: the `fast` path against a syncnet_python-style path on the same video, and `fast` lip
windows per second against a plain batched forward of the lip CNN on pre-stacked windows (the floor).

Run: ``python -m pytest benchmarks/bench_metrics_sync.py --benchmark-only``. Random SyncNet / S3FD weights (timing
only). The syncnet_python-style baseline repeats the original pipeline's work on one face track:
  1. re-encode to 25 fps (PyAV H.264 here; the original calls ffmpeg) and decode again;
  2. dump every frame as JPEG and read it back with cv2.imread (run_pipeline's frame dump);
  3. S3FD (face-alignment's ``s3fd``, same architecture as syncnet_python's) on every frame at scale 0.25;
  4. crop each frame with numpy.pad + slice, write the crops as XVID and read them back;
  5. evaluate(): JPEG dump of the crops, window copies (batches of 20, torch.cat) and the per-frame pdist loop.
The fast path decodes once, takes the stored face track (or tracks the face with BlazeFace, as for a generated
video never preprocessed), crops in memory and runs whole-clip chunks. Two sources: a 320x320 25 fps clip (a
small generated-video size) and a 1920x1080 30 fps clip (MEAD's source format) with the astronaut's face; each
fast benchmark stores its speed-up over the baseline on the same source in ``extra_info``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from dicetalk_bench import media, weights
from dicetalk_bench.metrics.sync import (VIDEO_FPS, calc_pdist_loop, score_sync_video, scores_from_distances,
                                         sync_scores_fast, sync_scores_parity)
from dicetalk_bench.metrics.sync_crop import crop_params
from dicetalk_bench.metrics.syncnet import load_syncnet
from dicetalk_bench.preprocessing.faces import FaceTrack

N_FRAMES = 50  # 2 s at 25 fps -> 45 windows


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    torch.set_grad_enabled(False)
    path = weights.make_random("syncnet", tmp_path_factory.mktemp("sn"), seed=0)
    return load_syncnet(path, allow_unverified=True)[0]


SOURCES = {  # name -> (width, height, source fps, face box at 25 fps)
    "320x320_25fps": (320, 320, 25.0, np.array([80, 40, 240, 200], np.float32)),
    "1920x1080_30fps": (1920, 1080, 30.0, np.array([760, 290, 1180, 710], np.float32)),  # MEAD's source format
}


def _source_frames(width: int, height: int, n: int, box: np.ndarray) -> np.ndarray:
    """A still background with the astronaut's face (public domain) in ``box``, moving by a pixel per frame."""
    from skimage import data

    x1, y1, x2, y2 = box.astype(int)
    face = cv2.resize(data.astronaut()[30:250, 120:340], (x2 - x1, y2 - y1), interpolation=cv2.INTER_AREA)
    yy, xx = np.mgrid[0:height, 0:width]
    bg = np.stack([(xx * 255 // width), (yy * 255 // height), np.full_like(xx, 120)], -1).astype(np.uint8)
    frames = np.repeat(bg[None], n, 0)
    for t in range(n):
        frames[t, y1:y2, x1 + t % 2:x2 + t % 2] = face
    return frames


@pytest.fixture(scope="module", params=list(SOURCES))
def clip(request, tmp_path_factory):
    width, height, fps, box = SOURCES[request.param]
    n_src = int(round(N_FRAMES / VIDEO_FPS * fps))
    frames = _source_frames(width, height, n_src, box)
    t = np.arange(int(N_FRAMES / VIDEO_FPS * 16000)) / 16000
    audio = (0.3 * np.sin(2 * np.pi * 300 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    path = media.write_video(tmp_path_factory.mktemp("v") / "clip.mp4", frames, fps, audio=audio, audio_rate=16000,
                             preset="veryfast")
    track = FaceTrack(boxes_xyxy=np.tile(box, (N_FRAMES, 1)), keypoints=np.zeros((N_FRAMES, 6, 2), np.float32),
                      scores=np.ones(N_FRAMES, np.float32), detected=np.ones(N_FRAMES, bool), fps=VIDEO_FPS,
                      frame_size=(width, height))
    return request.param, path, track, box


def _jpeg_dump_and_read(frames_bgr: np.ndarray, folder: Path) -> np.ndarray:
    for i, f in enumerate(frames_bgr):
        cv2.imwrite(str(folder / f"{i:06d}.jpg"), f)
    return np.stack([cv2.imread(str(folder / f"{i:06d}.jpg")) for i in range(len(frames_bgr))])


def syncnet_python_style(path: Path, model, s3fd_net, box: np.ndarray) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        video = media.read_video(path, fps=VIDEO_FPS)
        audio = media.read_audio(path, 16000)
        re_encoded = media.write_video(tmp / "video.mp4", video.frames, VIDEO_FPS)     # ffmpeg -r 25
        frames = media.read_video(re_encoded).frames[..., ::-1]                      # BGR like cv2
        (tmp / "frames").mkdir()
        frames = _jpeg_dump_and_read(frames, tmp / "frames")                         # run_pipeline frame dump
        for f in frames:                                                              # S3FD on every frame
            small = cv2.resize(f, None, fx=0.25, fy=0.25)
            x = torch.from_numpy(small.astype(np.float32) - np.array([104, 117, 123], np.float32))
            s3fd_net(x.permute(2, 0, 1)[None])
        cx, cy, s = crop_params(np.tile(box, (len(frames), 1)))
        writer = cv2.VideoWriter(str(tmp / "crop.avi"), cv2.VideoWriter_fourcc(*"XVID"), VIDEO_FPS, (224, 224))
        for i, f in enumerate(frames):                                                # crop_video()
            bsi = int(s[i] * 1.8)
            padded = np.pad(f, ((bsi, bsi), (bsi, bsi), (0, 0)), "constant", constant_values=(110, 110))
            my, mx = cy[i] + bsi, cx[i] + bsi
            face = padded[int(my - s[i]):int(my + s[i] * 1.8), int(mx - s[i] * 1.4):int(mx + s[i] * 1.4)]
            writer.write(cv2.resize(face, (224, 224)))
        writer.release()
        cap = cv2.VideoCapture(str(tmp / "crop.avi"))
        crops = []
        while True:
            ok, f = cap.read()
            if not ok:
                break
            crops.append(f)
        (tmp / "eval").mkdir()
        crops = _jpeg_dump_and_read(np.stack(crops), tmp / "eval")                    # evaluate() frame dump
        return sync_scores_parity(model, crops, audio).confidence                     # window copies + pdist loop


@pytest.fixture(scope="module")
def s3fd_net():
    from face_alignment.detection.sfd.net_s3fd import s3fd

    torch.manual_seed(0)
    return s3fd().eval()


_TIMES: dict[tuple[str, str], float] = {}


def _record(benchmark, source: str, name: str) -> None:
    _TIMES[(source, name)] = benchmark.stats.stats.mean
    base = _TIMES.get((source, "baseline"))
    if base is not None and name != "baseline":
        benchmark.extra_info["speedup_vs_syncnet_python_style"] = base / _TIMES[(source, name)]


def test_baseline_syncnet_python_style(benchmark, clip, model, s3fd_net):
    source, path, _, box = clip
    benchmark.group = f"sync per video (2 s, {source})"
    conf = benchmark.pedantic(syncnet_python_style, args=(path, model, s3fd_net, box), rounds=1, iterations=1)
    assert np.isfinite(conf)
    _record(benchmark, source, "baseline")


def test_fast_path_stored_track(benchmark, clip, model):
    source, path, track, _ = clip
    benchmark.group = f"sync per video (2 s, {source})"
    scores = benchmark.pedantic(score_sync_video, args=(path, model), kwargs={"face_track": track}, rounds=2,
                                iterations=1)
    assert scores.n_windows == N_FRAMES - 5
    _record(benchmark, source, "fast_stored_track")


def test_fast_path_tracking_the_face(benchmark, clip, model):
    """A video never preprocessed (a generated one): BlazeFace every few frames via ``faces.track``."""
    source, path, _, _ = clip
    benchmark.group = f"sync per video (2 s, {source})"
    scores = benchmark.pedantic(score_sync_video, args=(path, model), rounds=2, iterations=1)
    assert scores.n_windows == N_FRAMES - 5
    _record(benchmark, source, "fast_tracking")


@pytest.fixture(scope="module")
def crops():
    return np.random.default_rng(1).integers(0, 256, (N_FRAMES, 224, 224, 3), dtype=np.uint8)


def test_floor_plain_batched_lip_forward(benchmark, model, crops):
    benchmark.group = "lip windows per second"
    n_win = N_FRAMES - 5
    x = torch.from_numpy(crops.transpose(3, 0, 1, 2).astype(np.float32))[None]
    windows = torch.cat([x[:, :, t:t + 5] for t in range(n_win)], 0)  # stacked beforehand: not timed
    benchmark.extra_info["windows"] = n_win
    out = benchmark.pedantic(lambda: torch.cat([model.forward_lip(windows[i:i + 20]) for i in range(0, n_win, 20)]),
                             rounds=2, iterations=1)
    assert out.shape == (n_win, 1024)


def test_fast_lip_and_distances(benchmark, model, crops):
    benchmark.group = "lip windows per second"
    audio = np.zeros(N_FRAMES * 640, np.int16)
    benchmark.extra_info["windows"] = N_FRAMES - 5
    scores = benchmark.pedantic(sync_scores_fast, args=(model, crops, audio), rounds=2, iterations=1)
    assert scores.n_windows == N_FRAMES - 5


def test_pdist_loop_vs_vectorised(benchmark):
    benchmark.group = "pdist (1000 windows)"
    from dicetalk_bench.metrics.sync import shift_distance_matrix

    gen = torch.Generator().manual_seed(0)
    v, a = torch.randn((1000, 1024), generator=gen), torch.randn((1000, 1024), generator=gen)
    benchmark.extra_info["loop_s"] = float(np.median([_time(lambda: calc_pdist_loop(v, a, 15)) for _ in range(3)]))
    d = benchmark(shift_distance_matrix, v, a, 15)
    assert scores_from_distances(d).n_windows == 1000


def _time(fn) -> float:
    import time

    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0
