"""The evaluate CLI end to end on tiny generated videos, its errors, --help cost, and the --checkpoint path."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from dicetalk_bench import evaluate
from dicetalk_bench.evaluation import generation
from dicetalk_bench.config import config_hash, from_dict
from dicetalk_bench.media import read_video, write_video
from dicetalk_bench.metrics.result import load_results
from dicetalk_bench.reports.provenance import tree_sha256
from dicetalk_bench.reports.runs import read_run


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    """ref/: 3 random 64x64 25 fps clips; close/: ref + small noise; far/: ref halved."""
    root = tmp_path_factory.mktemp("clips")
    rng = np.random.default_rng(0)
    for i in range(3):
        base = rng.integers(0, 256, (8, 64, 64, 3), dtype=np.uint8)
        write_video(root / "ref" / f"c{i}.mp4", base, 25.0, crf=0)
        noisy = np.clip(base.astype(int) + rng.integers(-8, 9, base.shape), 0, 255).astype(np.uint8)
        write_video(root / "close" / f"c{i}.mp4", noisy, 25.0, crf=0)
        write_video(root / "far" / f"c{i}.mp4", base // 2, 25.0, crf=0)
    return root


def _score(clips: Path, out: Path, method: str, folder: str, *extra: str) -> int:
    return evaluate.main(["--videos", str(clips / folder), "--reference", str(clips / "ref"), "--metrics",
                          "psnr,ssim", "--method", method, "--dataset", "mead", "--out", str(out), "--no-cache",
                          "--seed", "3", *extra])


def test_help_is_fast_and_imports_no_torch():
    code = ("import sys\nfrom dicetalk_bench.evaluate import main\n"
            "for argv in (['--help'], ['leaderboard', '--help']):\n"
            "    try:\n        main(argv)\n    except SystemExit as e:\n        assert e.code == 0, e.code\n"
            "heavy = [m for m in ('torch', 'av', 'diffusers', 'pyarrow', 'numpy') if m in sys.modules]\n"
            "print('HEAVY', heavy)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stdout
    assert "--checkpoint" in out.stdout and "--set-resamples" in out.stdout
    cli = subprocess.run([sys.executable, "-m", "dicetalk_bench.evaluate", "--help"], capture_output=True, text=True,
                         timeout=60)
    assert cli.returncode == 0 and "leaderboard" in cli.stdout


def test_scores_two_methods_and_builds_the_leaderboard(clips, tmp_path):
    out = tmp_path / "out"
    assert _score(clips, out, "close <b>", "close") == 0
    assert _score(clips, out, "far", "far", "--leaderboard") == 0
    path = out / "results" / "mead" / "close_b.json"
    results = {r.key: r for r in load_results(path)}
    assert set(results) == {"psnr", "ssim"} and results["psnr"].n_videos == 3
    assert results["psnr"].value > 30  # +-8 noise: about 33 dB
    run = read_run(path)
    assert run.method == "close <b>" and run.dataset == "mead"
    prov = run.provenance
    for key in ("toolkit_version", "git_commit", "git_dirty", "packages", "seed", "command_line", "date_utc",
                "config_hash",
                "extractors", "calibrated", "videos_sha256"):
        assert key in prov, key
    assert prov["seed"] == 3 and prov["calibrated"] is True and prov["checkpoint"] is None
    assert prov["packages"]["numpy"] == np.__version__
    assert "--videos" in prov["command_line"]
    assert prov["command_line"][:3] == ["python", "-m", "dicetalk_bench.evaluate"]
    saved = yaml.safe_load((out / "results" / "mead" / "close_b.config.yaml").read_text())
    cfg = from_dict(evaluate.EvalConfig, saved)
    assert cfg.metrics == ("psnr", "ssim") and config_hash(cfg) == prov["config_hash"]
    board = out / "leaderboard"
    page = (board / "index.html").read_text()
    assert "close &lt;b&gt;" in page and "<b>close" not in page
    doc = json.loads((board / "results.json").read_text())
    rows = {r["method"]: r for r in doc["datasets"][0]["rows"]}
    assert rows["close <b>"]["metrics"]["psnr"]["mark"] == "best" and rows["far"]["metrics"]["psnr"]["mark"] == "second"
    assert rows["close <b>"]["metrics"]["psnr"]["ci_low"] <= rows["close <b>"]["metrics"]["psnr"]["value"]
    assert (board / "results.csv").is_file() and (board / "results.tex").is_file()
    # the standalone subcommand gives the same table
    assert evaluate.main(["leaderboard", "--results", str(out / "results"), "--out", str(tmp_path / "lb2"),
                          "--resamples", "100"]) == 0
    doc2 = json.loads((tmp_path / "lb2" / "results.json").read_text())
    assert [r["method"] for r in doc2["datasets"][0]["rows"]] == ["close <b>", "far"]


def test_ground_truth_scored_against_itself_loads_and_builds_the_leaderboard(clips, tmp_path):
    out = tmp_path / "out"
    assert _score(clips, out, "ground truth", "ref", "--leaderboard") == 0
    psnr = {r.key: r for r in load_results(out / "results" / "mead" / "ground_truth.json")}["psnr"]
    assert psnr.value == 100.0 and set(psnr.per_video.values()) == {100.0}  # identical frames: the cap, not inf
    assert psnr.protocol["cap_db"] == 100.0
    assert (psnr.interval["low"], psnr.interval["high"]) == (100.0, 100.0)
    doc = json.loads((out / "leaderboard" / "results.json").read_text())
    cell = doc["datasets"][0]["rows"][0]["metrics"]["psnr"]
    assert cell["value"] == 100.0 and cell["mark"] is None  # a row alone in its comparison group gets no mark


def test_clashing_method_name_is_refused_before_scoring(clips, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    assert _score(clips, out, "A/B", "close") == 0
    import dicetalk_bench.metrics.scoring as scoring

    def no_scoring(*args, **kwargs):
        raise AssertionError("scoring ran although the results file name clashes")

    monkeypatch.setattr(scoring, "score_metrics", no_scoring)
    capsys.readouterr()
    assert _score(clips, out, "A_B", "far") == 1
    assert "holds the results of method 'A/B'" in capsys.readouterr().err
    assert read_run(out / "results" / "mead" / "A_B.json").method == "A/B"


def test_a_failure_before_the_provenance_is_written_leaves_no_results_file(clips, tmp_path, monkeypatch):
    import dicetalk_bench.reports.provenance as provenance

    def broken(**kwargs):
        raise RuntimeError("provenance failed")

    monkeypatch.setattr(provenance, "build_provenance", broken)
    with pytest.raises(RuntimeError, match="provenance failed"):
        _score(clips, tmp_path / "out", "m", "close")
    assert not list((tmp_path / "out").rglob("*.json"))


@pytest.mark.parametrize("argv, message", [
    (["--metrics", "nope"], "unknown metric"),
    (["--metrics", "psnr", "--reference", None], "needs --reference"),
    (["--metrics", "psnr", "--processed", "."], "only used with --checkpoint"),
    (["--metrics", "psnr", "--dataset", "vox"], "invalid choice"),
])
def test_bad_arguments_exit_2_with_a_message(clips, tmp_path, capsys, argv, message):
    base = {"--videos": str(clips / "close"), "--reference": str(clips / "ref"), "--method": "m",
            "--dataset": "mead", "--out": str(tmp_path)}
    pairs = dict(zip(argv[::2], argv[1::2]))
    base.update(pairs)
    args = [x for k, v in base.items() if v is not None for x in (k, v)]
    with pytest.raises(SystemExit) as exc:
        evaluate.main(args)
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_missing_video_folder_and_metric_failure(clips, tmp_path, capsys):
    with pytest.raises(SystemExit):
        evaluate.main(["--videos", str(tmp_path / "none"), "--metrics", "psnr", "--method", "m", "--dataset",
                       "mead", "--out", str(tmp_path)])
    assert "not a folder" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    rc = evaluate.main(["--videos", str(empty), "--reference", str(clips / "ref"), "--metrics", "psnr", "--method",
                        "m", "--dataset", "mead", "--out", str(tmp_path / "o"), "--no-cache"])
    err = capsys.readouterr().err
    assert rc == 1 and "error: video folder" in err and "holds no videos" in err and "Traceback" not in err
    assert not (tmp_path / "o" / "results" / "mead" / "m.json").exists()


def test_leaderboard_errors_name_the_folder(tmp_path, capsys):
    assert evaluate.main(["leaderboard", "--results", str(tmp_path / "nope"), "--out", str(tmp_path / "lb")]) == 1
    assert "nope does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        evaluate.main(["leaderboard", "--results", str(tmp_path), "--out", str(tmp_path / "lb"), "--level", "2"])


# ---------------------------------------------------------------------------------------------- --checkpoint
def _processed(root: Path) -> Path:
    """A preprocessing output with two MEAD test clips (the ref videos) and one train clip."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = []
    yy, xx = np.mgrid[0:64, 0:64]
    for i, split in enumerate(("test", "test", "train")):
        cid = f"mead/M003/front/happy/level_1/00{i}"
        # smooth moving gradients: survive the H.264 re-encode of the generated copy almost unchanged
        frames = np.stack([np.stack([(xx * 2 + t * 3 + 40 * i) % 256, (yy * 3) % 256, np.full_like(xx, 90 + t)], -1)
                           for t in range(8)]).astype(np.uint8)
        audio = (0.2 * np.sin(np.arange(8 * 640) * (0.05 + 0.01 * i))).astype(np.float32)
        write_video(root / "videos" / f"{cid}.mp4", frames, 25.0, crf=0, audio=audio, audio_rate=16000)
        for kind in ("faces", "audio"):  # the stand-in sampler reads neither; their hashes key the generated clips
            (root / kind / f"{cid}.parquet").parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(pa.table({"frame": list(range(8))}), root / kind / f"{cid}.parquet")
        rows.append({"clip_id": cid, "dataset": "mead", "split": split, "status": "ok", "n_frames": 8,
                     "video": f"videos/{cid}.mp4", "faces": f"faces/{cid}.parquet",
                     "audio_features": f"audio/{cid}.parquet", "emotion": "happy"})
    pq.write_table(pa.Table.from_pylist(rows), root / "clips.parquet")
    return root


def _checkpoint(root: Path, records: dict | None = None) -> Path:
    folder = root / "run" / "checkpoints" / "step_2"
    folder.mkdir(parents=True)
    (folder / "state.json").write_text(json.dumps({"step": 2, "model": "tiny",
                                                   **({"records": records} if records else {"records": {}})}))
    (folder / "model.safetensors").write_bytes(b"not really weights")
    (folder.parent / "latest").write_text("step_2\n")  # the run's pointer (dicetalk_bench.model.checkpoint)
    return folder


class GroundTruthSampler:
    """Stand-in for the model's sampler (the real one is tested by the model tests): each clip's ground truth."""

    def __init__(self, spec, calls: list) -> None:
        self.spec, self.calls = spec, calls

    def generate_clip(self, row: dict):
        self.calls.append((row["clip_id"], self.spec.checkpoint, self.spec.seed, dict(self.spec.settings)["steps"],
                           self.spec.device))
        return read_video(Path(self.spec.data_root) / row["video"]).frames

    def provenance(self) -> dict:
        return {"kind": "checkpoint", "label": "trained checkpoint", "frame_stride": 2, "frame_rate": "release",
                "release": {"kind": "checkpoint"}, "records": {}}


def test_checkpoint_needs_processed(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        evaluate.main(["--checkpoint", str(tmp_path), "--metrics", "psnr", "--method", "m", "--dataset", "mead",
                       "--out", str(tmp_path / "o")])
    assert exc.value.code == 2 and "--checkpoint needs --processed" in capsys.readouterr().err


def test_checkpoint_that_cannot_load_stops_before_any_clip(tmp_path, capsys):
    """The model is loaded (and checked) once, before generation: a broken checkpoint is a set-up error."""
    proc = _processed(tmp_path / "p")
    rc = evaluate.main(["--checkpoint", str(_checkpoint(tmp_path)), "--processed", str(proc), "--metrics", "psnr",
                        "--method", "m", "--dataset", "mead", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 1 and err.startswith("error:") and "Traceback" not in err
    assert not (tmp_path / "o" / "results").exists()
    assert not list((tmp_path / "o").rglob("*.mp4")) if (tmp_path / "o").exists() else True


def test_model_package_provides_generate():
    # this build has the model's generate() (checked on the source: importing the model costs ~20 s of torch and
    # diffusers imports), so --checkpoint is live; the refusal above is for builds without it
    import ast
    import importlib.util

    source = Path(importlib.util.find_spec("dicetalk_bench.model.pipeline").origin).read_text()
    funcs = {n.name: n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef)}
    assert "generate" in funcs and "load_sampler" in funcs
    assert generation.SAMPLER_LOADER == "dicetalk_bench.model.pipeline:load_sampler"
    args = [a.arg for a in funcs["generate"].args.args + funcs["generate"].args.kwonlyargs]
    assert args[:3] == ["clip_row", "checkpoint", "seed"] and {"data_root", "cfg", "device"} <= set(args)


def test_checkpoint_errors_for_missing_manifest_and_checkpoint(tmp_path, capsys):
    ck = _checkpoint(tmp_path)
    (tmp_path / "empty").mkdir()
    rc = evaluate.main(["--checkpoint", str(ck), "--processed", str(tmp_path / "empty"), "--metrics", "psnr",
                        "--method", "m", "--dataset", "mead", "--out", str(tmp_path / "o")])
    assert rc == 1 and "no clips.parquet" in capsys.readouterr().err
    proc = _processed(tmp_path / "p")
    rc = evaluate.main(["--checkpoint", str(tmp_path / "missing"), "--processed", str(proc), "--metrics", "psnr",
                        "--method", "m", "--dataset", "mead", "--out", str(tmp_path / "o")])
    assert rc == 1 and "no such file" in capsys.readouterr().err
    rc = evaluate.main(["--checkpoint", str(ck), "--processed", str(proc), "--metrics", "psnr", "--method", "m",
                        "--dataset", "hdtf", "--out", str(tmp_path / "o")])
    assert rc == 1 and "no hdtf clips with split 'test'" in capsys.readouterr().err


def test_checkpoint_path_generates_the_test_split_and_scores_it(tmp_path, monkeypatch):
    """Wiring of --checkpoint with a stand-in for the model's generate() that returns the ground truth (the real
    generate() is tested by the model tests): only test clips are generated, with the checkpoint given, and the
    generated clips are scored against the linked ground truth (identical frames: PSNR very high)."""
    calls, loads = [], []
    ck = _checkpoint(tmp_path)
    monkeypatch.setattr(generation, "SAMPLER_LOADER",
                        lambda spec: loads.append(spec) or GroundTruthSampler(spec, calls))
    proc = _processed(tmp_path / "p")
    out = tmp_path / "o"
    rc = evaluate.main(["--checkpoint", str(ck.parent.parent), "--processed", str(proc), "--metrics", "psnr",
                        "--method", "dice", "--dataset", "mead", "--out", str(out), "--sample-steps", "3",
                        "--seed", "9"])
    assert rc == 0
    assert [c[0] for c in calls] == ["mead/M003/front/happy/level_1/000", "mead/M003/front/happy/level_1/001"]
    assert all(Path(c[1]) == ck and c[2] == 9 and c[3] == 3 for c in calls)  # latest step folder of the run
    gen = out / "generated" / "dice" / "mead/M003/front/happy/level_1/000.mp4"  # the dataset once, from the clip id
    assert gen.is_file() and read_video(gen).fps == 25.0 and not (out / "generated" / "mead").exists()
    run = read_run(out / "results" / "mead" / "dice.json")
    assert run.results["psnr"].n_videos == 2 and run.results["psnr"].value > 40
    prov = run.provenance["checkpoint"]
    assert prov["sha256"] == tree_sha256(ck) and prov["n_generated"] == 2 and prov["generation_failures"] == {}
    assert prov["frame_stride"] == 2 and prov["label"] == "trained checkpoint"
    assert prov["n_reused"] == 0 and len(loads) == 1  # the model is loaded once for the whole split
    # an unchanged rerun reuses every clip (nothing generated again) and scores the same
    calls.clear()
    assert evaluate.main(["--checkpoint", str(ck.parent.parent), "--processed", str(proc), "--metrics", "psnr",
                          "--method", "dice", "--dataset", "mead", "--out", str(out), "--sample-steps", "3",
                          "--seed", "9"]) == 0
    again = read_run(out / "results" / "mead" / "dice.json").provenance["checkpoint"]
    assert calls == [] and again["n_reused"] == 2 and again["n_generated"] == 0 and again["label"] == prov["label"]


# ---------------------------------------------------------------------------------------------- set-up errors stop
def _embedder_run(root: Path) -> Path:
    """The files `train_embedder` leaves: a checkpoint whose state says its kind, and the exported embedder."""
    step = root / "emb" / "checkpoints" / "step_0000003"
    step.mkdir(parents=True)
    (step / "state.json").write_text(json.dumps({"step": 3, "kind": "emotion-embedder", "records": {}}))
    (step / "model.safetensors").write_bytes(b"x")
    (step.parent / "latest").write_text(step.name)
    (root / "emb" / "embedder.json").write_text("{}")
    return root / "emb"


@pytest.mark.parametrize("which", ["run", "step"])
def test_embedder_checkpoint_is_refused_by_kind_before_generating(tmp_path, monkeypatch, capsys, which):
    def never(spec):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(generation, "SAMPLER_LOADER", never)
    run = _embedder_run(tmp_path)
    path = run if which == "run" else run / "checkpoints" / "step_0000003"
    rc = evaluate.main(["--checkpoint", str(path), "--processed", str(_processed(tmp_path / "p")), "--metrics",
                        "psnr", "--method", "m", "--dataset", "mead", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 1 and "this is an emotion-embedder" in err and "needs a generator checkpoint from `train`" in err
    assert "Traceback" not in err and not (tmp_path / "o" / "results").exists()


def test_missing_weights_stop_evaluate_with_no_results_file(clips, tmp_path, monkeypatch, capsys):
    from dicetalk_bench import weights

    monkeypatch.setenv("DICETALK_BENCH_WEIGHTS_DIR", str(tmp_path / "no-weights"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.delenv(weights.env_var_for("lpips-alex"), raising=False)
    rc = evaluate.main(["--videos", str(clips / "close"), "--reference", str(clips / "ref"), "--metrics",
                        "psnr,lpips", "--method", "m", "--dataset", "mead", "--out", str(tmp_path / "o"),
                        "--no-cache", "--leaderboard"])
    err = capsys.readouterr().err
    assert rc == 1 and "weights 'lpips-alex'" in err and "python -m dicetalk_bench.weights fetch lpips-alex" in err
    assert not (tmp_path / "o" / "results").exists() and not (tmp_path / "o" / "leaderboard").exists()


def test_evaluate_refuses_an_option_no_metric_reads(clips, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        evaluate.main(["--videos", str(clips / "close"), "--reference", str(clips / "ref"), "--metrics", "ssim",
                       "--method", "m", "--dataset", "mead", "--out", str(tmp_path / "o"),
                       "--option", "ssim.mod=gaussian"])
    assert exc.value.code == 2 and "Did you mean ssim.mode?" in capsys.readouterr().err


def test_generator_trained_on_random_weights_makes_the_evaluated_row_uncalibrated(tmp_path, monkeypatch):
    """The checkpoint's own weights records (state.json, as training writes them for --svd/--whisper random:SEED)
    go into the provenance; the row is uncalibrated although PSNR needs no extractor weights, and the page says
    which part is not calibrated."""
    records = {"svd": {"key": "svd-xt", "file": str(tmp_path / "svd-random"), "sha256": None, "calibrated": False,
                       "random_seed": 0},
               "whisper": {"key": "whisper-tiny", "file": "random:0", "sha256": "0" * 64, "calibrated": False,
                           "verified_by": "unverified", "pinned_by": None}}
    (tmp_path / "svd-random").mkdir()  # the random SVD folder training wrote (sampling loads its VAE from there)
    ck = _checkpoint(tmp_path, records)
    monkeypatch.setattr(generation, "SAMPLER_LOADER", lambda spec: GroundTruthSampler(spec, []))
    out = tmp_path / "o"
    assert evaluate.main(["--checkpoint", str(ck), "--processed", str(_processed(tmp_path / "p")), "--metrics",
                          "psnr", "--method", "toy", "--dataset", "mead", "--out", str(out), "--leaderboard"]) == 0
    prov = read_run(out / "results" / "mead" / "toy.json").provenance
    assert prov["checkpoint"]["weights"] == records
    assert prov["calibrated"] is False and "generator trained on random Whisper weights" in prov["calibration"]
    doc = json.loads((out / "leaderboard" / "results.json").read_text())
    row = doc["datasets"][0]["rows"][0]
    assert row["calibrated"] is False and row["metrics"]["psnr"]["calibrated"] is False
    assert row["calibration"]["problems"] == ["generator trained on random SVD weights",
                                              "generator trained on random Whisper weights"]
    assert "generator trained on random Whisper weights" in (out / "leaderboard" / "index.html").read_text()


def test_other_whisper_weights_stop_before_the_model_loads(tmp_path, monkeypatch, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq

    def never(spec):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(generation, "SAMPLER_LOADER", never)
    (tmp_path / "svd").mkdir()
    ck = _checkpoint(tmp_path, {"svd": {"key": "svd-xt", "file": str(tmp_path / "svd")},
                                "whisper": {"key": "whisper-tiny", "file": "a", "sha256": "a" * 64}})
    proc = _processed(tmp_path / "p")
    features = proc / "audio" / "mead/M003/front/happy/level_1/000.parquet"
    table = pq.read_table(features)
    meta = {b"dicetalk_bench": json.dumps({"whisper": {"file": "b", "sha256": "b" * 64}}).encode()}
    pq.write_table(pa.table(table.columns, names=table.column_names, metadata=meta), features)
    rc = evaluate.main(["--checkpoint", str(ck), "--processed", str(proc), "--metrics", "psnr", "--method", "m",
                        "--dataset", "mead", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 1 and err.startswith("error:") and "preprocess with the same whisper-tiny" in err
    assert not list((tmp_path / "o").rglob("*.mp4")) if (tmp_path / "o").exists() else True


def test_clip_ids_that_are_not_safe_paths_are_refused(tmp_path, monkeypatch, capsys):
    import pyarrow.parquet as pq

    monkeypatch.setattr(generation, "SAMPLER_LOADER", lambda spec: GroundTruthSampler(spec, []))
    (tmp_path / "svd").mkdir()
    ck = _checkpoint(tmp_path, {"svd": {"key": "svd-xt", "file": str(tmp_path / "svd")}})
    proc = _processed(tmp_path / "p")
    rows = pq.read_table(proc / "clips.parquet").to_pylist()
    rows[0]["clip_id"] = "mead/../../escape"
    import pyarrow as pa

    pq.write_table(pa.Table.from_pylist(rows), proc / "clips.parquet")
    rc = evaluate.main(["--checkpoint", str(ck), "--processed", str(proc), "--metrics", "psnr", "--method", "m",
                        "--dataset", "mead", "--out", str(tmp_path / "o")])
    assert rc == 1 and "cannot be used as a file path" in capsys.readouterr().err
    assert not (tmp_path / "escape.mp4").exists() and not list(tmp_path.rglob("escape*"))


# ---------------------------------------------------------------------------------------------- reference rows
def _rows_json(out: Path) -> dict:
    doc = json.loads((out / "leaderboard" / "results.json").read_text())
    return {r["method"]: r for r in doc["datasets"][0]["rows"]}


def test_ceiling_and_baseline_rows_are_typed_and_never_marked(tmp_path):
    proc = _processed(tmp_path / "p")
    out = tmp_path / "o"
    common = ["--processed", str(proc), "--metrics", "psnr,ssim", "--dataset", "mead", "--out", str(out),
              "--no-cache"]
    assert evaluate.main(["--real", "--method", "real video", *common]) == 0
    assert evaluate.main(["--baseline", "static", "--method", "static frame", *common]) == 0
    reference = out / "reference" / "mead"
    # two method rows scored on the same clips: the real videos under another name, and the static baseline's videos
    for method, folder in (("copy", reference), ("still", out / "baselines" / "mead" / "static")):
        assert evaluate.main(["--videos", str(folder), "--reference", str(reference), "--metrics", "psnr,ssim",
                              "--method", method, "--dataset", "mead", "--out", str(out), "--no-cache",
                              "--leaderboard"]) == 0
    rows = _rows_json(out)
    assert rows["real video"]["kind"] == "ceiling" and rows["static frame"]["kind"] == "baseline"
    assert rows["copy"]["kind"] == rows["still"]["kind"] == "method"
    # the ceiling has the best PSNR (100 dB, the cap) but only method rows are ranked
    assert rows["real video"]["metrics"]["psnr"]["value"] == 100.0
    assert rows["real video"]["metrics"]["psnr"]["mark"] is None and rows["static frame"]["metrics"]["psnr"]["mark"] is None
    assert rows["copy"]["metrics"]["psnr"]["mark"] == "best" and rows["still"]["metrics"]["psnr"]["mark"] == "second"
    static = read_run(out / "results" / "mead" / "static_frame.json")
    assert static.provenance["row_kind"] == "baseline" and static.provenance["baseline"]["kind"] == "static"
    assert static.results["psnr"].value < 100.0
    page = (out / "leaderboard" / "index.html").read_text()
    assert 'data-kind="ceiling"' in page and 'data-kind="baseline"' in page


def test_ceiling_set_metrics_compare_two_disjoint_halves(tmp_path, caplog, capsys):
    from dicetalk_bench import weights
    from dicetalk_bench.metrics import inception as _  # noqa: F401  (registers its random-weights builder)

    inception = weights.make_random("inception-fid", tmp_path / "w", seed=0)
    proc = _processed(tmp_path / "p")
    out = tmp_path / "o"
    assert evaluate.main(["--real", "--processed", str(proc), "--metrics", "psnr,fid", "--method", "real",
                          "--dataset", "mead", "--out", str(out), "--no-cache", "--force-small-set",
                          "--allow-unverified", "--weights", f"inception-fid={inception}",
                          "--option", "fid.frame_stride=2"]) == 0  # an FID option beside a per-video metric
    run = read_run(out / "results" / "mead" / "real.json")
    assert run.results["fid"].protocol["frame_stride"] == 2
    assert "not needed by metrics" not in caplog.text  # the Inception weights went to the FID call only
    table = capsys.readouterr().out.splitlines()  # the summary table evaluate ends with
    header = next(i for i, line in enumerate(table) if line.split() == ["metric", "value", "interval", "n", "failures"])
    assert table[header + 2].split()[:3] == ["psnr", "\u2191", "100"]
    assert table[header + 3].split()[:2] == ["fid", "\u2193"] and table[header + 3].split()[-2:] == ["1", "0/1"]
    ceiling = run.provenance["ceiling"]
    ids = {"mead/M003/front/happy/level_1/000", "mead/M003/front/happy/level_1/001"}
    assert set(ceiling["half_a"]) | set(ceiling["half_b"]) == ids and not set(ceiling["half_a"]) & set(ceiling["half_b"])
    assert run.results["psnr"].value == 100.0 and run.results["fid"].value is not None and run.results["fid"].value > 0
    assert run.results["fid"].n_videos == len(ceiling["half_a"])


def test_published_rows_are_shown_greyed_with_their_citation_and_never_marked(clips, tmp_path, capsys):
    out = tmp_path / "out"
    assert _score(clips, out, "close", "close") == 0 and _score(clips, out, "far", "far") == 0
    assert evaluate.main(["leaderboard", "--results", str(out / "results"), "--out", str(out / "lb")]) == 0
    page = (out / "lb" / "index.html").read_text()
    assert "Published (not reproduced here)" in page and "DICE-Talk" in page and "arXiv:2608.14700" in page
    assert "from a secondary summary, not yet checked against the paper" in page and ">CPBD " in page
    doc = json.loads((out / "lb" / "results.json").read_text())
    dice = {(p["method"], p["metric"]): p["value"] for p in doc["published"]}
    assert dice[("DICE-Talk", "emo-acc")] == 42.03 and dice[("Real video", "cpbd")] == 0.47
    assert {r["method"] for r in doc["datasets"][0]["rows"]} == {"close", "far"}  # not ranked rows
    assert evaluate.main(["leaderboard", "--results", str(out / "results"), "--out", str(out / "lb2"),
                          "--no-published"]) == 0
    assert "Published (not reproduced here)" not in (out / "lb2" / "index.html").read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text("schema: other\n")
    capsys.readouterr()
    assert evaluate.main(["leaderboard", "--results", str(out / "results"), "--out", str(out / "lb3"),
                          "--published", str(bad)]) == 1
    assert f"{bad}: not a dicetalk_bench.published_rows document" in capsys.readouterr().err


def test_generated_clips_of_the_old_doubled_layout_are_read_and_reused(tmp_path, monkeypatch):
    """Clips generated under generated/<dataset>/<method>/<dataset>/... by earlier versions are reused in place."""
    calls: list = []
    ck = _checkpoint(tmp_path)
    monkeypatch.setattr(generation, "SAMPLER_LOADER", lambda spec: GroundTruthSampler(spec, calls))
    proc, out = _processed(tmp_path / "p"), tmp_path / "o"
    argv = ["--checkpoint", str(ck), "--processed", str(proc), "--metrics", "psnr", "--method", "dice",
            "--dataset", "mead", "--out", str(out)]
    assert evaluate.main(argv) == 0 and len(calls) == 2
    old = out / "generated" / "mead" / "dice"
    (out / "generated" / "dice").rename(tmp_path / "moved")
    old.mkdir(parents=True)
    (tmp_path / "moved" / "mead").rename(old / "mead")
    assert evaluate.generated_dir(out, "mead", "dice") == old
    calls.clear()
    assert evaluate.main(argv) == 0 and calls == []
    prov = read_run(out / "results" / "mead" / "dice.json").provenance["checkpoint"]
    assert prov["n_reused"] == 2 and not (out / "generated" / "dice").exists()


def test_the_command_lines_keep_the_old_import_paths_of_the_library():
    """``from dicetalk_bench.evaluate import ...`` (and ``metrics.__main__``) name the library's own objects."""
    import dicetalk_bench.metrics.__main__ as metrics_cli
    from dicetalk_bench.evaluation import config, leaderboard, per_emotion, reference_rows, run, summary
    from dicetalk_bench.metrics import scoring

    moved = {"EvalConfig": config, "EvaluateError": config, "DATASETS": config, "generate_test_split": generation,
             "generated_dir": generation, "run_leaderboard": leaderboard, "emotion_map": per_emotion,
             "with_per_emotion": per_emotion, "split_halves": reference_rows, "score_ceiling": reference_rows,
             "reference_row_videos": reference_rows, "run_evaluation": run, "print_summary": summary}
    for name, module in moved.items():
        assert getattr(evaluate, name) is getattr(module, name), name
    assert set(moved) <= set(evaluate.__all__)
    for name in ("score_metrics", "run_score", "default_cache_dir"):
        assert getattr(metrics_cli, name) is getattr(scoring, name), name
