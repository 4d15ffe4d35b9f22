"""Dask orchestration, the CLI (--dry-run, --help), and SIGKILL-then-resume equivalence."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from dicetalk_bench import media
from dicetalk_bench.preprocess import main
from dicetalk_bench.preprocessing import pipeline
from dicetalk_bench.preprocessing.discovery_mead import discover_mead

from pre_helpers import fast_config

CLI_SETS = ["--set", "crop.size=64", "--set", "faces.stride=3", "--set", "faces.model=short",
            "--set", "preset=ultrafast", "--whisper", "random:0", "--no-progress"]


@pytest.fixture(scope="module")
def serial_reference(mini_mead: Path, whisper_random: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ref_out")
    pipeline.run(discover_mead(mini_mead).clips, mini_mead, out, fast_config(), workers=0, progress=False)
    return out


def _same_outputs(a: Path, b: Path) -> None:
    assert pq.read_table(a / "clips.parquet").equals(pq.read_table(b / "clips.parquet"))
    assert pq.read_table(a / "failures.parquet").equals(pq.read_table(b / "failures.parquet"))
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file() and "records" not in p.parts and "_demo_raw" not in p.parts and p.suffix != ".yaml")
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file() and "records" not in p.parts and "_demo_raw" not in p.parts and p.suffix != ".yaml")
    assert files_a == files_b
    for rel in files_a:
        if rel.suffix == ".parquet":
            assert pq.read_table(a / rel).equals(pq.read_table(b / rel)), rel
        elif rel.suffix == ".mp4":
            va, vb = media.read_video(a / rel), media.read_video(b / rel)
            np.testing.assert_array_equal(va.frames, vb.frames)
            np.testing.assert_array_equal(media.read_audio(a / rel), media.read_audio(b / rel))
        else:
            assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    assert not list(b.rglob(".*.tmp*"))


def test_dask_scheduler_address_matches_serial(mini_mead: Path, serial_reference: Path, tmp_path: Path) -> None:
    """A worker process behind a scheduler address (the --scheduler path; --workers N is covered by the
    SIGKILL test below), started as the default cluster is; outputs equal the serial run's. The worker got
    the one-thread flag and the allocator environment in place of Dask's own trim threshold."""
    from distributed import Client

    from dicetalk_bench.allocator import retained_memory_environ

    out = tmp_path / "dask_out"
    with pipeline.local_cluster(1) as cluster:
        with Client(cluster) as client:
            env = next(iter(client.run(lambda: {k: os.environ.get(k) for k in (
                "DICETALK_BENCH_WORKER", "MALLOC_ARENA_MAX", "MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_")}).values()))
        s = pipeline.run(discover_mead(mini_mead).clips, mini_mead, out, fast_config(), scheduler=cluster.scheduler_address,
                         progress=False)
    assert env == {"DICETALK_BENCH_WORKER": "1", **retained_memory_environ()}
    assert "DICETALK_BENCH_WORKER" not in os.environ  # only the workers were marked
    assert (s.n_todo, s.n_ok, s.n_failed) == (5, 5, 0)
    _same_outputs(serial_reference, out)


def test_cli_dry_run_lists_work(mini_mead: Path, serial_reference: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["--dataset", "mead", "--root", str(mini_mead), "--out", str(serial_reference), "--dry-run",
                 *CLI_SETS]) == 0
    text = capsys.readouterr().out
    assert "0 of 5 tasks to do (3 clips, 0 unexpected files)" in text
    assert "done  mead/M003/front/happy/level_1/001" in text
    assert main(["--dataset", "mead", "--root", str(mini_mead), "--out", str(serial_reference), "--dry-run",
                 "--views", "front", *CLI_SETS, "--set", "crop.size=96"]) == 0
    text = capsys.readouterr().out
    assert "2 of 4 tasks to do (2 clips" in text and "todo  mead/W011/front/neutral/level_1/002" in text


def test_cli_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["--dataset", "mead", "--root", str(tmp_path / "none"), "--out", str(tmp_path / "o")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert main(["--dataset", "mead", "--root", str(tmp_path), "--out", str(tmp_path / "o"), "--set", "crop.bogus=1"]) == 2
    assert "unknown key" in capsys.readouterr().err


def test_performance_report_without_bokeh_fails_before_any_work(mini_mead: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "bokeh", None)  # import bokeh -> ImportError
    with pytest.raises(pipeline.PipelineError, match="needs the 'bokeh' package"):
        pipeline.run(discover_mead(mini_mead).clips, mini_mead, tmp_path / "o", fast_config(), workers=1,
                     performance_report=tmp_path / "r.html")
    assert not (tmp_path / "o").exists()


def test_bad_settings_are_refused_before_any_work(mini_mead: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture) -> None:
    rc = main(["--dataset", "mead", "--root", str(mini_mead), "--out", str(tmp_path / "o"), "--workers", "0",
               *CLI_SETS, "--set", "crop.size=65"])
    assert rc == 2 and "crop.size=65: expected an even number" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_help_is_fast() -> None:
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "dicetalk_bench.preprocess", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "--scheduler" in r.stdout
    assert time.perf_counter() - t < 20  # no torch / mediapipe / dask import before parsing (generous on a busy box)


def test_sigkill_then_resume_equals_uninterrupted(mini_mead: Path, serial_reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "dicetalk_bench.preprocess", "--dataset", "mead", "--root", str(mini_mead),
           "--out", str(out), "--workers", "1", *CLI_SETS]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=os.environ.copy())
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            if list((out / "records").rglob("*.json")) if (out / "records").exists() else []:
                break
            if proc.poll() is not None:
                pytest.fail(f"the pipeline exited (rc {proc.returncode}) before any clip finished")
            time.sleep(0.02)
        else:
            pytest.fail("no clip finished within 120 s")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the process group we started: CLI, its Dask scheduler and worker
        proc.wait()
    n_done = len(list((out / "records").rglob("*.json")))
    assert n_done < 5, "the run finished before it was killed; nothing was tested"
    assert not (out / "clips.parquet").exists()
    resumed = pipeline.run(discover_mead(mini_mead).clips, mini_mead, out, fast_config(), workers=0, progress=False)
    assert resumed.n_todo == 5 - n_done
    _same_outputs(serial_reference, out)
