"""Generating a test split: load once, restart after a kill, reuse by key, shard over Dask workers."""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from dicetalk_bench.fileutil import sha256_file
from dicetalk_bench.model import checkpoint as ckpt
from dicetalk_bench.model import split_generation as sg
from dicetalk_bench.model.train_loop import TrainConfig, train


CLIPS = tuple((f"mead/M003/front/{e}/level_1/00{i}", e, 1) for i, e in enumerate(("happy", "sad", "angry", "fear")))
SETTINGS = (("frame_rate", "native"), ("shift", 7), ("steps", 2), ("window", 25))


@pytest.fixture(scope="module")
def split(tmp_path_factory, priors_dir, svd_dir, preprocessed_writer):
    data = preprocessed_writer(tmp_path_factory.mktemp("split_data"), n_frames=12, size=32, clips=CLIPS)
    cfg = TrainConfig(model="tiny", data_root=data, emotion_source="class-mean", priors_dir=priors_dir, svd=str(svd_dir),
                      allow_unverified=True,
                      out_dir=tmp_path_factory.mktemp("split_run"), num_frames=4, resolution=32, steps=1,
                      checkpoint_every=1)
    train(cfg, device="cpu")
    folder = ckpt.latest_checkpoint(cfg.out_dir)
    rows = pq.read_table(data / "clips.parquet").to_pylist()
    spec = sg.SamplerSpec(checkpoint=str(folder), checkpoint_sha256="c" * 64, data_root=str(data), settings=SETTINGS)
    return data, spec, sg.make_jobs(rows, "mead", "test")


def _hashes(folder: Path) -> dict[str, str]:
    """clip -> sha256 of the generated frames (recorded in each sidecar when the clip was written)."""
    return {str(p.relative_to(folder)): json.loads(p.read_text())["frames_sha256"]
            for p in sorted(folder.rglob("*.mp4.json"))}


def _file_hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): sha256_file(p) for p in sorted(folder.rglob("*.mp4"))}


@pytest.fixture(scope="module")
def serial_run(split, tmp_path_factory):
    import torch

    _, spec, jobs = split
    out = tmp_path_factory.mktemp("serial")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # equal thread counts: Dask workers and the killed run use one thread too
    try:
        summary = sg.generate_split(jobs, spec, out, progress=False)
    finally:
        torch.set_num_threads(threads)
    return out, summary


def test_serial_run_generates_every_clip_loading_once(serial_run, split):
    out, summary = serial_run
    assert len(summary.generated) == len(CLIPS) and not summary.failures
    assert summary.record()["sampler_loads"] <= 1 + sg.sampler_loads()  # this process: one load per spec
    for clip_id, _, _ in CLIPS:
        video = sg.output_path(out, clip_id)
        side = json.loads(sg.sidecar_path(video).read_text())
        assert side["video_sha256"] == sha256_file(video) and side["n_frames"] == 12


def test_unchanged_rerun_regenerates_nothing_and_changes_regenerate(serial_run, split, tmp_path):
    data, spec, jobs = split
    out, _ = serial_run
    again = sg.generate_split(jobs, spec, out, progress=False)
    assert len(again.reused) == len(CLIPS) and not again.generated
    # other sampling settings or another checkpoint: everything again
    other = dataclasses.replace(spec, settings=(("frame_rate", "native"), ("shift", 7), ("steps", 3), ("window", 25)))
    assert sg.generation_key(other, jobs[0], {"x": "1"})[0] != sg.generation_key(spec, jobs[0], {"x": "1"})[0]
    other_ckpt = dataclasses.replace(spec, checkpoint_sha256="d" * 64)
    assert sg.generation_key(other_ckpt, jobs[0], {"x": "1"})[0] != sg.generation_key(spec, jobs[0], {"x": "1"})[0]
    # a processed input changes: only that clip is regenerated
    copy = tmp_path / "copy"
    for p in sorted(out.rglob("*")):
        if p.is_file():
            (copy / p.relative_to(out)).parent.mkdir(parents=True, exist_ok=True)
            (copy / p.relative_to(out)).write_bytes(p.read_bytes())
    faces = data / jobs[1].row["faces"]
    original = faces.read_bytes()
    try:
        table = pq.read_table(faces)
        pq.write_table(table.replace_schema_metadata({b"touched": b"1"}), faces)
        changed = sg.generate_split(jobs, spec, copy, progress=False)
    finally:
        faces.write_bytes(original)
    assert changed.generated == (jobs[1].clip_id,) and len(changed.reused) == len(CLIPS) - 1


def test_window_batch_is_an_execution_detail_outside_the_key(serial_run, split):
    import hashlib

    from dicetalk_bench.model.pipeline import load_sampler

    _, spec, jobs = split
    out, _ = serial_run
    one = dataclasses.replace(spec, settings=tuple(sorted((*spec.settings, ("window_batch", 1)))))
    # the key of runs without the setting is the one earlier versions wrote into their sidecars
    assert spec.settings_sha256 == hashlib.sha256(json.dumps([list(kv) for kv in SETTINGS]).encode()).hexdigest()
    assert one.settings_sha256 == spec.settings_sha256
    assert sg.generation_key(one, jobs[0], {"x": "1"}) == sg.generation_key(spec, jobs[0], {"x": "1"})
    again = sg.generate_split(jobs, one, out, progress=False)
    assert len(again.reused) == len(CLIPS) and not again.generated
    assert load_sampler(one).cfg.window_batch == 1  # the sampler still runs with it


def test_two_workers_equal_the_serial_run_and_load_once_each(serial_run, split, tmp_path):
    _, spec, jobs = split
    out, _ = serial_run
    summary = sg.generate_split(jobs, spec, tmp_path / "dask", workers=2, progress=False)
    assert len(summary.generated) == len(CLIPS)
    assert all(n <= 1 for n in summary.sampler_loads_per_process.values())
    assert _hashes(tmp_path / "dask") == _hashes(out)


def test_kill_and_rerun_keeps_finished_clips(serial_run, split, tmp_path):
    _, spec, jobs = split
    out, _ = serial_run
    target = tmp_path / "killed"
    script = (
        "import pickle, sys\n"
        "from dicetalk_bench.model import split_generation as sg\n"
        f"spec, jobs = pickle.loads(bytes.fromhex({__import__('pickle').dumps((spec, jobs)).hex()!r}))\n"
        f"sg.generate_split(jobs, spec, {str(target)!r}, progress=False)\n")
    proc = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and len(list(target.rglob("*.mp4.json"))) < 1:
            time.sleep(0.05)
            assert proc.poll() is None, "the generation finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    done_before = len(list(target.rglob("*.mp4.json")))
    assert 1 <= done_before < len(CLIPS)
    finished = {k: v for k, v in _file_hashes(target).items() if (target / (k + ".json")).is_file()}
    rerun = sg.generate_split(jobs, spec, target, progress=False)
    assert len(rerun.reused) == done_before and len(rerun.generated) == len(CLIPS) - done_before
    assert _hashes(target) == _hashes(out)  # the same frames as an uninterrupted run
    assert {k: v for k, v in _file_hashes(target).items() if k in finished} == finished  # finished files untouched
    assert not [p for p in target.rglob("*") if p.name.endswith(".tmp.mp4") or ".tmp" in p.name]


def test_full_disk_leaves_no_partial_file_and_the_run_goes_on(split, tmp_path, monkeypatch):
    from dicetalk_bench import media

    _, spec, jobs = split
    real = media.VideoWriter.write

    def write(self, frames):
        if "sad" in str(self.path):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, frames)

    monkeypatch.setattr(media.VideoWriter, "write", write)
    summary = sg.generate_split(jobs, spec, tmp_path / "full", progress=False)
    sad = next(j.clip_id for j in jobs if "sad" in j.clip_id)
    assert set(summary.failures) == {sad} and "No space left" in summary.failures[sad]
    assert len(summary.generated) == len(CLIPS) - 1
    leftovers = [p.name for p in (tmp_path / "full").rglob("*") if p.is_file() and "sad" in str(p)]
    assert leftovers == []


@pytest.mark.parametrize("bad", ["../evil", "/abs/path", "mead//x", "mead/../x", ".hidden", "a\\b", ""])
def test_bad_clip_ids_are_refused(bad):
    with pytest.raises(ValueError, match="clip id"):
        sg.make_jobs([{"clip_id": bad}], "mead", "test")


def test_gpu_requested_without_cuda_stops_before_generating(split, tmp_path):
    _, spec, jobs = split
    with pytest.raises(sg.GpuUnavailableError, match="no CUDA"):
        sg.generate_split(jobs, dataclasses.replace(spec, use_gpu=True), tmp_path / "gpu", progress=False)
    assert not list((tmp_path / "gpu").rglob("*.mp4"))


def test_evaluate_window_batch_flag_reaches_the_sampler_settings_but_not_the_key():
    from dicetalk_bench import evaluate
    from dicetalk_bench.evaluation.generation import sample_settings

    base = ["--checkpoint", "ck", "--processed", "p", "--metrics", "psnr", "--method", "m", "--dataset", "mead",
            "--out", "o"]
    parser = evaluate.build_score_parser()
    with_flag = evaluate._config_from_args(parser.parse_args([*base, "--window-batch", "3"]), ["psnr"])
    without = evaluate._config_from_args(parser.parse_args(base), ["psnr"])
    assert dict(sample_settings(with_flag))["window_batch"] == 3
    assert "window_batch" not in dict(sample_settings(without))  # None: the device's default
    specs = [sg.SamplerSpec("ck", "c" * 64, "p", settings=sample_settings(c)) for c in (with_flag, without)]
    assert specs[0].settings_sha256 == specs[1].settings_sha256
    with pytest.raises(SystemExit):
        parser.parse_args([*base, "--window-batch", "0"])
