"""Score a method's videos into a results file, and build the HTML leaderboard from results files.

    python -m dicetalk_bench.evaluate --videos DIR --reference DIR --metrics psnr,ssim,fid --method NAME \\
        --dataset mead --out OUTDIR [--weights KEY=PATH] [--allow-unverified] [--seed S] [--leaderboard]
    python -m dicetalk_bench.evaluate --checkpoint CKPT --processed PREPROCESSED_DIR --metrics ... (generate the
        test split of --dataset from a trained checkpoint first, then score it)
    python -m dicetalk_bench.evaluate leaderboard --results OUTDIR/results --out OUTDIR/leaderboard

Scoring writes ``OUTDIR/results/<dataset>/<method>.json`` (the metrics results document plus method, dataset and
a provenance record, in one atomic write; docs/evaluation.md), the resolved config beside it
(``<method>.config.yaml``) and each reference feature set once to ``OUTDIR/results/reference_features/``. A method
whose file name would clash with another method's results is refused before anything runs. Metrics are
computed by :mod:`dicetalk_bench.metrics` (registry + ``run_score``). Arguments are parsed before anything heavy is
imported, so ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path
from typing import Any, Sequence

from dicetalk_bench.cli_args import HelpFormatter, key_value, non_negative_int, positive_int, scalar
from dicetalk_bench.cli_errors import run_cli

logger = logging.getLogger("dicetalk_bench.evaluate")

DATASETS = ("mead", "hdtf")
SUBCOMMANDS_HELP = """subcommands:
  score (the default, the word may be left out)
      score a method's videos (--videos), or generate the test split from a trained checkpoint first
      (--checkpoint), or score a ceiling (--real) or baseline (--baseline) row built from the test clips; writes
      OUTDIR/results/<dataset>/<method>.json with a provenance record and prints a summary table
  leaderboard
      build the static leaderboard (index.html, results.json/.csv/.tex) from results files:
      python -m dicetalk_bench.evaluate leaderboard --results OUTDIR/results --out OUTDIR/leaderboard
      (see python -m dicetalk_bench.evaluate leaderboard --help)"""
GENERATED_FPS = 25.0  # the model generates one frame per 40 ms of audio (docs/model.md)
AUDIO_RATE = 16000


class EvaluateError(RuntimeError):
    """A problem the user must fix (missing folder, nothing to score, generation not available)."""


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """The resolved evaluation settings (saved beside the results; its hash goes into the provenance)."""

    method: str
    dataset: str
    metrics: tuple[str, ...]
    out: str
    videos: str | None = None
    reference: str | None = None
    checkpoint: str | None = None
    processed: str | None = None
    weights: dict[str, str] = dataclasses.field(default_factory=dict)
    allow_unverified: bool = False
    seed: int = 0
    device: str = "cpu"
    batch_size: int = 16
    force_small_set: bool = False
    cache_dir: str | None = None
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    keep_going: bool = False
    sample_steps: int = 25
    max_clips: int | None = None
    frame_rate: str | None = None  # release | native; None: from the checkpoint's frame_stride
    baseline: str | None = None  # static | shuffled-audio | shifted-audio (a baseline row from the test clips)
    real: bool = False  # the ceiling row: the real test clips scored as a method
    workers: int = 0  # generation and FVD features: 0 = in this process; N = a LocalCluster of N one-thread workers
    scheduler: str | None = None  # generation and FVD features on the Dask cluster at this address
    window_batch: int | None = None  # generation: windows per network call; None: the device's default


# ------------------------------------------------------------------------------------------------------- parsing


def _level(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), got {text!r}") from None
    if not 0 < v < 1:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), got {v}")
    return v



def _fraction(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}") from None
    if not 0 <= v <= 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {v}")
    return v


def build_score_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m dicetalk_bench.evaluate",
        usage="%(prog)s [score] (--videos DIR | --checkpoint CKPT | --baseline KIND | --real) --metrics M,... "
              "--method NAME --dataset {mead,hdtf} --out OUTDIR [options]\n"
              "       %(prog)s leaderboard --results OUTDIR/results --out OUTDIR/leaderboard [options]",
        description=SUBCOMMANDS_HELP,
        formatter_class=HelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--videos", type=Path, help="folder of the method's generated videos (clip id = relative "
                                                "path without suffix)")
    src.add_argument("--checkpoint", type=Path, help="trained checkpoint (step folder or run folder): generate the "
                                                    "test split of --dataset from --processed first")
    src.add_argument("--baseline", choices=("static", "shifted-audio", "shuffled-audio"),
                     help="a baseline row built from the test clips of --processed: static (the first frame held "
                          "still), shuffled-audio (each clip with another clip's audio), shifted-audio (audio 5 frames "
                          "late); never marked")
    src.add_argument("--real", action="store_true",
                     help="the ceiling row: the real test clips of --processed scored as a method (per-video "
                          "metrics against themselves; FID/KID/FVD between two disjoint halves of the split); "
                          "never marked")
    p.add_argument("--processed", type=Path, help="preprocessing output (clips.parquet, videos/, ...) used with "
                                                 "--checkpoint, --baseline and --real")
    p.add_argument("--reference", type=Path, help="folder of reference / ground-truth videos (with --checkpoint: "
                                                 "default the processed test clips)")
    p.add_argument("--metrics", required=True, help="comma-separated metric names "
                                                   "(python -m dicetalk_bench.metrics list)")
    p.add_argument("--method", required=True, help="method name shown in the leaderboard")
    p.add_argument("--dataset", required=True, choices=DATASETS, help="dataset the videos belong to (leaderboard tab)")
    p.add_argument("--out", type=Path, required=True, help="output folder (results/, generated/, leaderboard/)")
    p.add_argument("--weights", type=key_value, action="append", default=[], metavar="KEY=PATH",
                   help="explicit weights file for a registry key, e.g. inception-fid=/path/pt_inception.pth")
    p.add_argument("--allow-unverified", action="store_true",
                   help="accept weights whose sha256 is not the official one (rows marked uncalibrated)")
    p.add_argument("--seed", type=int, default=0, help="seed of metric randomness and of generation")
    p.add_argument("--device", default="cpu", help="torch device")
    p.add_argument("--batch-size", type=positive_int, default=16)
    p.add_argument("--force-small-set", action="store_true",
                   help="compute FID/FVD/KID even on sets below their minimum size (recorded in the result)")
    p.add_argument("--cache-dir", type=Path, default=None, help="reference-feature cache (default: the metrics "
                                                               "package's cache folder)")
    p.add_argument("--no-cache", action="store_true", help="do not use the reference-feature cache")
    p.add_argument("--option", type=key_value, action="append", default=[], metavar="METRIC.NAME=VALUE",
                   help="metric option, e.g. fid.mode=pytorch-fid")
    p.add_argument("--keep-going", action="store_true", help="if a metric fails, still write the others (exit 1)")
    p.add_argument("--sample-steps", type=positive_int, default=25, help="Euler steps when generating (--checkpoint)")
    p.add_argument("--frame-rate", choices=("release", "native"), default=None,
                   help="sampling mode when generating (--checkpoint): release = 12.5 fps + RIFE (weights key "
                        "rife-hdv3, see --weights), native = 25 fps; default: from the checkpoint's frame_stride")
    p.add_argument("--workers", type=non_negative_int, default=0,
                   help="generation (--checkpoint) and FVD feature extraction: 0 = in this process; N = a local Dask "
                        "cluster of N one-thread workers (with --device cuda: one GPU each), each loading the model "
                        "once")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="generation (--checkpoint) and FVD feature extraction on the Dask cluster at this address, "
                        "e.g. tcp://host:8786 (GPU workers started with --resources GPU=1 when --device cuda)")
    p.add_argument("--window-batch", type=positive_int, default=None, metavar="N",
                   help="generation (--checkpoint): N 25-frame windows per network call (speed and memory only; "
                        "frames agree to float rounding); default: as many as fit in free CUDA memory, 4 on the CPU")
    p.add_argument("--max-clips", type=positive_int, default=None,
                   help="generate at most this many test clips (--checkpoint; for quick checks)")
    p.add_argument("--leaderboard", action="store_true",
                   help="afterwards build OUTDIR/leaderboard from every results file in OUTDIR/results")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p


def build_leaderboard_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m dicetalk_bench.evaluate leaderboard",
        description="Build a static leaderboard (index.html, results.json, results.csv, results.tex) from results "
                    "files.", formatter_class=HelpFormatter)
    p.add_argument("--results", type=Path, required=True, help="folder of results files (searched recursively)")
    p.add_argument("--out", type=Path, required=True, help="leaderboard folder to write")
    p.add_argument("--recompute-intervals", action="store_true",
                   help="recompute every interval from the stored per-video values and features at --level, "
                        "--resamples, --set-resamples and --seed (default: show the interval stored with each "
                        "result when it was scored)")
    p.add_argument("--resamples", type=non_negative_int, default=1000,
                   help="bootstrap resamples for per-video metrics when recomputing (0: no interval)")
    p.add_argument("--set-resamples", type=non_negative_int, default=100,
                   help="bootstrap resamples for FID/KID/FVD over stored per-video features when recomputing (0: no "
                        "interval; each costs one recomputation of the metric)")
    p.add_argument("--level", type=_level, default=0.95, help="level of recomputed intervals")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed of recomputed intervals")
    p.add_argument("--max-failure-excess", type=_fraction, default=0.01,
                   help="best/second marks go only to rows whose failure rate is at most the lowest compared row's "
                        "+ this (0.01 = one percentage point); recorded on the page")
    p.add_argument("--published", type=Path, action="append", default=[], metavar="FILE",
                   help="published-rows YAML file (docs/evaluation.md) shown greyed under each table; the rows "
                        "dicetalk_bench ships are always included unless --no-published")
    p.add_argument("--no-published", action="store_true", help="leave out the shipped published rows")
    p.add_argument("--title", default="dicetalk_bench leaderboard")
    p.add_argument("--column-groups", type=_group_order, default=None, metavar="NAMES",
                   help="order of the metric column groups, comma-separated (image = PSNR/SSIM/LPIPS, distribution "
                        "= FID/FVD/KID, sync = Sync-C/D, emotion = emotion accuracy, identity = CSIM); groups left "
                        "out follow in that default order")
    p.add_argument("--sample-clips", type=non_negative_int, default=4,
                   help="test clips shown as stills and videos per row (the same for every row; 0: none)")
    p.add_argument("--sample-seed", type=int, default=0, help="seed of the sample clips' choice (recorded)")
    p.add_argument("--banner", default="", help="a notice shown in bold under the page title (e.g. that the "
                                                "numbers come from random weights)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p


def _group_order(text: str) -> tuple[str, ...]:
    from dicetalk_bench.reports.layout import parse_group_order

    try:
        return parse_group_order(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")


# ------------------------------------------------------------------------------------------------------- leaderboard
def run_leaderboard(results_dir: Path, out_dir: Path, *, resamples: int = 1000, set_resamples: int = 100,
                    level: float = 0.95, seed: int = 0, title: str = "dicetalk_bench leaderboard",
                    max_failure_excess: float = 0.01, recompute_intervals: bool = False,
                    published: Sequence[Path] = (), shipped_published: bool = True,
                    column_groups: Sequence[str] | None = None, sample_clips: int = 4,
                    sample_seed: int = 0, banner: str = "") -> dict[str, Path]:
    """Read every results file under ``results_dir`` and write the leaderboard files into ``out_dir``.

    Cells show the intervals stored in the results; ``recompute_intervals`` recomputes them at these settings
    (the per-video features are then loaded). ``column_groups``: order of the metric groups
    (:mod:`dicetalk_bench.reports.layout`); ``sample_clips`` clips per dataset drawn with ``sample_seed`` are shown
    as stills and videos (:mod:`dicetalk_bench.reports.clip_strip`)."""
    from dicetalk_bench.reports.clip_strip import StripConfig
    from dicetalk_bench.reports.layout import DEFAULT_GROUP_ORDER, PageLayout
    from dicetalk_bench.reports.leaderboard import BootstrapConfig, MarkingConfig, build_tables
    from dicetalk_bench.reports.render import write_leaderboard
    from dicetalk_bench.reports.runs import find_runs

    boot = BootstrapConfig(resamples=resamples, set_resamples=set_resamples, level=level, seed=seed,
                           recompute=recompute_intervals)
    marking = MarkingConfig(max_failure_excess=max_failure_excess)
    runs = find_runs(results_dir, load_features=recompute_intervals and set_resamples > 0)
    from dicetalk_bench.reports.published import load_published

    rows = (load_published() if shipped_published else []) + (load_published(list(published)) if published else [])
    layout = PageLayout(group_order=tuple(column_groups or DEFAULT_GROUP_ORDER))
    paths = write_leaderboard(build_tables(runs, boot, marking, layout), out_dir, boot, title=title, published=rows,
                              strip=StripConfig(n_clips=sample_clips, seed=sample_seed), banner=banner)
    logger.info("leaderboard of %d results files written to %s", len(runs), paths["html"])
    return paths


def _cmd_leaderboard(argv: list[str]) -> int:
    args = build_leaderboard_parser().parse_args(argv)
    _setup_logging(args.verbose)
    from dicetalk_bench.metrics.result import ResultFormatError
    from dicetalk_bench.reports.leaderboard import LeaderboardError
    from dicetalk_bench.reports.published import PublishedRowsError

    try:
        run_leaderboard(args.results, args.out, resamples=args.resamples, set_resamples=args.set_resamples,
                        level=args.level, seed=args.seed, title=args.title,
                        max_failure_excess=args.max_failure_excess,
                        recompute_intervals=args.recompute_intervals, published=args.published,
                        shipped_published=not args.no_published, column_groups=args.column_groups,
                        sample_clips=args.sample_clips, sample_seed=args.sample_seed, banner=args.banner)
    except (FileNotFoundError, ResultFormatError, LeaderboardError, PublishedRowsError) as exc:
        print(f"error: {exc}", file=sys.stderr)  # a set-up error, as every command reports one
        return 1
    return 0


# ------------------------------------------------------------------------------------------------------- generation
#: builds the sampler of a generation run (``"module:function"`` called with a SamplerSpec, or a function)
SAMPLER_LOADER: Any = "dicetalk_bench.model.pipeline:load_sampler"


def _sample_settings(cfg: "EvalConfig") -> tuple[tuple[str, Any], ...]:
    """The sampling settings of a generation run, as sorted (name, value) pairs (they enter every clip's key, except
    the execution-only ones, :data:`~dicetalk_bench.model.split_generation.EXECUTION_SETTINGS`)."""
    settings = {"steps": cfg.sample_steps, "frame_rate": cfg.frame_rate, "rife": cfg.weights.get("rife-hdv3"),
                "allow_unverified": cfg.allow_unverified}
    if cfg.window_batch is not None:
        settings["window_batch"] = cfg.window_batch
    return tuple(sorted(settings.items()))


def _test_rows(processed: Path, dataset: str) -> list[dict[str, Any]]:
    manifest = processed / "clips.parquet"
    if not manifest.is_file():
        raise EvaluateError(f"--processed {processed}: no clips.parquet; pass the output folder of "
                            "python -m dicetalk_bench.preprocess")
    import pyarrow.parquet as pq

    rows = pq.read_table(manifest).to_pylist()
    test = [r for r in rows if r.get("dataset") == dataset and r.get("split") == "test" and r.get("status") == "ok"]
    if not test:
        n_ds = sum(r.get("dataset") == dataset for r in rows)
        raise EvaluateError(f"{manifest}: no {dataset} clips with split 'test' and status 'ok' ({len(rows)} rows, "
                            f"{n_ds} of dataset {dataset}); preprocess the {dataset} test identities first")
    return sorted(test, key=lambda r: r["clip_id"])


def _link_or_copy(src: Path, dst: Path) -> None:
    import shutil

    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists() or dst.is_symlink():
        dst.unlink()
    try:
        dst.symlink_to(src.resolve())
    except OSError:
        shutil.copy2(src, dst)


def _check_whisper_records(folder: Path, rows: Sequence[dict[str, Any]], processed: Path) -> None:
    """A training checkpoint's Whisper weights against the ones that made the processed audio features (read from
    the first test clip's Parquet metadata; no model is loaded)."""
    import json

    import pyarrow.parquet as pq

    from dicetalk_bench.preprocessing.audio_features import table_metadata

    state = folder / "state.json"
    if not state.is_file() or not rows or not rows[0].get("audio_features"):
        return
    want = (json.loads(state.read_text()).get("records") or {}).get("whisper") or {}
    try:
        got = table_metadata(pq.read_schema(processed / rows[0]["audio_features"])).get("whisper", {})
    except (OSError, ValueError):  # an unreadable clip is that clip's failure, recorded when it is generated
        return
    if want.get("sha256") and got.get("sha256") and want["sha256"] != got["sha256"]:
        raise EvaluateError(f"--processed {processed}: its audio features were made with the Whisper weights "
                            f"{got.get('file')} (sha256 {got.get('sha256')}), but checkpoint {folder} was trained with "
                            f"{want.get('file')} (sha256 {want.get('sha256')}); preprocess with the same whisper-tiny")


def generated_dir(out_dir: Path, dataset: str, method: str, *, check: bool = True) -> Path:
    """The folder a method's generated test clips go to: ``out_dir/generated/<method>``; the clip ids start with
    the dataset (``mead/M003/front/...``), so the files lie at ``generated/<method>/mead/M003/...``.

    Results of earlier versions, filed under ``generated/<dataset>/<method>/<dataset>/...``, are still read (and
    reused) where that folder exists. With ``check``, a folder that already holds another dataset's clips of the
    same method name is refused (its videos would enter this dataset's FID/FVD)."""
    from dicetalk_bench.reports.runs import safe_file_stem

    stem = safe_file_stem(method)
    old = Path(out_dir) / "generated" / dataset / stem / dataset
    if old.is_dir():
        return old.parent
    folder = Path(out_dir) / "generated" / stem
    if check and folder.is_dir():
        others = sorted(p.name for p in folder.iterdir() if p.is_dir() and p.name in DATASETS and p.name != dataset)
        if others:
            raise EvaluateError(f"{folder} already holds the {', '.join(others)} clips of method {method!r}; "
                                f"score the {dataset} clips under another --method name or --out folder")
    return folder


def generate_test_split(cfg: EvalConfig, out_dir: Path) -> tuple[Path, Path, dict[str, Any]]:
    """Generate every test clip of ``cfg.dataset`` in ``cfg.processed`` with ``cfg.checkpoint``, restartably.

    Writes ``out_dir/generated/<method>/<clip_id>.mp4`` (:func:`generated_dir`; 25 fps, with the clip's audio, plus a sidecar
    record per clip; :mod:`dicetalk_bench.model.split_generation`) and, unless a reference folder was given, links
    the processed ground-truth clips into ``out_dir/reference/<dataset>/``. A clip already generated with the same
    checkpoint, settings and inputs is reused. ``cfg.workers`` / ``cfg.scheduler`` shard the clips over Dask
    workers (each loads the model once). Returns (videos folder, reference folder, generation record for the
    provenance). Set-up errors (a wrong checkpoint kind, other Whisper weights, a processed folder without the
    split, a broken checkpoint, a GPU worker without CUDA) stop before any clip is written; a clip whose own input
    is unusable is recorded with its reason and the run goes on.
    """
    from dicetalk_bench.model import split_generation as sg
    from dicetalk_bench.model.checkpoint_kind import check_generator_files, generator_checkpoint
    from dicetalk_bench.model.release import ReleaseSources
    from dicetalk_bench.reports.provenance import checkpoint_weights, tree_sha256
    from dicetalk_bench.reports.runs import safe_file_stem

    processed = Path(cfg.processed)  # checked by the caller
    folder = generator_checkpoint(cfg.checkpoint, command="evaluate --checkpoint")
    check_generator_files(folder)
    rows = _test_rows(processed, cfg.dataset)
    if cfg.max_clips is not None:
        rows = rows[: cfg.max_clips]
    try:
        jobs = sg.make_jobs(rows, cfg.dataset, "test")
    except ValueError as exc:
        raise EvaluateError(f"{processed / 'clips.parquet'}: {exc}") from None
    _check_whisper_records(folder, rows, processed)
    use_gpu = str(cfg.device).startswith("cuda") and (cfg.workers > 0 or cfg.scheduler is not None)
    spec = sg.SamplerSpec(checkpoint=str(folder), checkpoint_sha256=tree_sha256(folder), data_root=str(processed),
                          settings=_sample_settings(cfg), device=cfg.device, seed=cfg.seed, loader=SAMPLER_LOADER,
                          use_gpu=use_gpu, sources=ReleaseSources.from_weights(cfg.weights, cfg.allow_unverified))
    if cfg.workers == 0 and cfg.scheduler is None:
        sg.cached_sampler(spec)  # load and check the model once, here, before any clip is written
    gen_dir = generated_dir(out_dir, cfg.dataset, cfg.method)
    summary = sg.generate_split(jobs, spec, gen_dir, workers=cfg.workers, scheduler=cfg.scheduler)
    if not summary.generated and not summary.reused:
        first = next(iter(summary.failures.items()))
        raise EvaluateError(f"generation failed for all {len(jobs)} test clips (e.g. {first[0]}: {first[1]})")
    if cfg.reference is not None:
        reference = Path(cfg.reference)
    else:
        reference = out_dir / "reference" / cfg.dataset
        for row in rows:
            _link_or_copy(processed / row["video"], reference / f"{row['clip_id']}.mp4")
    made_by = dict(summary.sampler or {})
    record = {"path": str(folder), "sha256": spec.checkpoint_sha256, "n_test_clips": len(rows),
              **summary.record(), "generation_failures": dict(summary.failures),
              "sample_steps": cfg.sample_steps, "fps": sg.GENERATED_FPS, "settings_sha256": spec.settings_sha256,
              "sampler_version": sg.SAMPLER_VERSION, "frame_rate": made_by.get("frame_rate"),
              "processed": str(processed), "kind": made_by.get("kind"), "label": made_by.get("label"),
              "frame_stride": made_by.get("frame_stride"), "release": made_by.get("release"),
              "weights": checkpoint_weights(folder) or made_by.get("records")}
    return gen_dir, reference, record


SET_METRICS = ("fid", "kid", "fvd")  # distribution metrics: the ceiling compares two disjoint halves of the split


def _linked_reference(cfg: EvalConfig, out_dir: Path, rows: Sequence[dict[str, Any]]) -> Path:
    """The ground-truth folder: ``--reference``, or the processed test clips linked under ``out/reference``."""
    if cfg.reference is not None:
        return Path(cfg.reference)
    processed = Path(cfg.processed)
    reference = out_dir / "reference" / cfg.dataset
    for row in rows:
        _link_or_copy(processed / row["video"], reference / f"{row['clip_id']}.mp4")
    return reference


def split_halves(clip_ids: Sequence[str], seed: int) -> tuple[list[str], list[str]]:
    """Two disjoint halves of ``clip_ids`` (a seeded permutation; the first gets the extra clip when odd)."""
    import numpy as np

    ids = sorted(clip_ids)
    order = np.random.default_rng(seed).permutation(len(ids))
    cut = (len(ids) + 1) // 2
    return sorted(ids[i] for i in order[:cut]), sorted(ids[i] for i in order[cut:])


def reference_row_videos(cfg: EvalConfig, out_dir: Path) -> tuple[Path, Path, dict[str, Any]]:
    """Videos of a ceiling (``--real``) or baseline (``--baseline``) row built from the processed test clips.

    Returns (videos folder, reference folder, the provenance fields of the row: ``row_kind`` and its record)."""
    from dicetalk_bench.baselines import build_baseline
    from dicetalk_bench.model.split_generation import make_jobs

    processed = Path(cfg.processed)
    rows = _test_rows(processed, cfg.dataset)
    if cfg.max_clips is not None:
        rows = rows[: cfg.max_clips]
    make_jobs(rows, cfg.dataset, "test")  # clip ids validated before they become paths
    reference = _linked_reference(cfg, out_dir, rows)
    if cfg.real:
        return reference, reference, {"row_kind": "ceiling", "ceiling": {"n_test_clips": len(rows)}}
    clips = {row["clip_id"]: processed / row["video"] for row in rows}
    folder, record = build_baseline(cfg.baseline, clips, out_dir / "baselines" / cfg.dataset / cfg.baseline,
                                    seed=cfg.seed)
    if record["n_written"] + record["n_reused"] == 0:
        raise EvaluateError(f"the {cfg.baseline} baseline could not be built for any of the {len(rows)} test clips "
                            f"(e.g. {next(iter(record['failures'].items()))})")
    return folder, reference, {"row_kind": "baseline", "baseline": record}


def score_ceiling(cfg: EvalConfig, request: Any, row: dict[str, Any]) -> tuple[list[Any], list[str]]:
    """Score the real test clips as a method: per-video metrics against themselves; FID/KID/FVD of one half of the
    split against the other (:func:`split_halves`, seeded by ``cfg.seed``; recorded in ``row``)."""
    from dicetalk_bench.metrics.__main__ import score_metrics
    from dicetalk_bench.metrics.registry import required_weights
    from dicetalk_bench.metrics.video_set import list_videos

    names = list(cfg.metrics)
    per_video = [n for n in names if n not in SET_METRICS]
    set_names = [n for n in names if n in SET_METRICS]
    results: list[Any] = []
    failed: list[str] = []

    def options_for(set_metrics: bool) -> dict[str, Any]:  # each call is checked against the options it reads
        return {k: v for k, v in request.options.items() if (k.split(".")[0] in SET_METRICS) == set_metrics}

    def weights_for(set_metrics: bool) -> dict[str, str]:  # leave out the weights only the other call reads
        mine = set(required_weights(set_names if set_metrics else per_video, options_for(set_metrics)))
        theirs = set(required_weights(per_video if set_metrics else set_names, options_for(not set_metrics)))
        return {k: v for k, v in request.weights.items() if k in mine or k not in theirs}

    if per_video:
        r, f = score_metrics(per_video, dataclasses.replace(request, options=options_for(False),
                                                            weights=weights_for(False)), keep_going=cfg.keep_going)
        results += r
        failed += f
    if set_names:
        videos = list_videos(request.videos)
        half_a, half_b = split_halves(videos.clip_ids, cfg.seed)
        halves = Path(cfg.out) / "ceiling_halves" / cfg.dataset
        for name, ids in (("a", half_a), ("b", half_b)):
            by_id = {e.clip_id: e.path for e in videos}
            for cid in ids:
                _link_or_copy(by_id[cid], halves / name / f"{cid}{by_id[cid].suffix}")
        r, f = score_metrics(set_names, dataclasses.replace(request, videos=halves / "a", reference=halves / "b",
                                                            options=options_for(True), weights=weights_for(True)),
                             keep_going=cfg.keep_going)
        results += r
        failed += f
        row["ceiling"] = {**row.get("ceiling", {}), "set_metrics": "one half of the test split against the other",
                          "half_a": half_a, "half_b": half_b, "split_seed": cfg.seed}
    order = {n: i for i, n in enumerate(names)}
    return sorted(results, key=lambda r: order.get(r.key, len(order))), failed


# ------------------------------------------------------------------------------------------------------- scoring
def _config_from_args(args: argparse.Namespace, names: list[str]) -> EvalConfig:
    from dicetalk_bench.metrics.__main__ import default_cache_dir

    return EvalConfig(
        method=args.method, dataset=args.dataset, metrics=tuple(names), out=str(args.out),
        videos=None if args.videos is None else str(args.videos),
        reference=None if args.reference is None else str(args.reference),
        checkpoint=None if args.checkpoint is None else str(args.checkpoint),
        processed=None if args.processed is None else str(args.processed), weights=dict(args.weights),
        allow_unverified=args.allow_unverified, seed=args.seed, device=args.device, batch_size=args.batch_size,
        force_small_set=args.force_small_set,
        cache_dir=None if args.no_cache else str(args.cache_dir or default_cache_dir()),
        options={k: scalar(v) for k, v in args.option}, keep_going=args.keep_going,
        sample_steps=args.sample_steps, max_clips=args.max_clips, frame_rate=args.frame_rate,
        workers=args.workers, scheduler=args.scheduler, window_batch=args.window_batch, baseline=args.baseline,
        real=args.real)


def emotion_map(cfg: EvalConfig, results: Sequence[Any]) -> dict[str, str]:
    """clip id -> emotion of the scored clips: the clip manifest's column with ``--processed``
    (:func:`dicetalk_bench.preprocessing.load_manifest`), else parsed from MEAD clip ids; empty when neither
    names an emotion (e.g. HDTF)."""
    if cfg.processed is not None:
        from dicetalk_bench.preprocessing import load_manifest

        try:
            frame = load_manifest(cfg.processed, status=None)
        except FileNotFoundError:
            frame = None
        if frame is not None and "emotion" in frame.columns:
            return {str(c): str(e) for c, e in zip(frame["clip_id"], frame["emotion"]) if isinstance(e, str)}
    from dicetalk_bench.reports.breakdown import manifest_from_clip_ids

    ids: set[str] = set()
    for r in results:
        ids |= set(r.features or ()) | set(r.reference_features or ()) | set(r.clip_ids) | set(r.per_video)
    frame = manifest_from_clip_ids(sorted(ids))
    return dict(zip(frame["clip_id"], frame["emotion"]))


def with_per_emotion(results: Sequence[Any], emotions: dict[str, str]) -> list[Any]:
    """``results`` with FID/FVD per emotion stored in ``extra["per_emotion"]`` (:mod:`.reports.per_emotion`)."""
    from dicetalk_bench.reports.per_emotion import PER_EMOTION_KEY, per_emotion_record

    out = []
    for r in results:
        record = per_emotion_record(r, emotions) if emotions else None
        out.append(r if record is None else dataclasses.replace(r, extra={**r.extra, PER_EMOTION_KEY: record}))
    return out


def run_evaluation(cfg: EvalConfig, argv: Sequence[str]) -> tuple[Path, int]:
    """Generate (with a checkpoint) and score; returns (results file, exit code of the scoring)."""
    from dicetalk_bench.config import config_hash, save_config
    from dicetalk_bench.metrics.__main__ import score_metrics
    from dicetalk_bench.metrics.preflight import check_weights
    from dicetalk_bench.metrics.registry import ScoreRequest, check_options
    from dicetalk_bench.metrics.video_set import list_videos
    from dicetalk_bench.reports.provenance import build_provenance
    from dicetalk_bench.reports.runs import check_results_target, safe_file_stem, write_run

    out_dir = Path(cfg.out)
    cache_dir = None if cfg.cache_dir is None else Path(cfg.cache_dir)
    # where the videos will be (generate_test_split / reference_row_videos write them); until then the weights
    # pre-flight sizes the face detector from the processed clips
    planned = (generated_dir(out_dir, cfg.dataset, cfg.method, check=False) if cfg.checkpoint is not None
               else Path(cfg.processed) / "videos" if cfg.processed else None)
    request = ScoreRequest(videos=Path(cfg.videos) if cfg.videos else planned,
                           reference=None if cfg.reference is None else Path(cfg.reference),
                           weights=dict(cfg.weights), allow_unverified=cfg.allow_unverified, device=cfg.device,
                           seed=cfg.seed, batch_size=cfg.batch_size, force_small_set=cfg.force_small_set,
                           cache_dir=cache_dir, options=dict(cfg.options), workers=cfg.workers,
                           scheduler=cfg.scheduler)
    results_root = out_dir / "results"
    results_dir = results_root / cfg.dataset
    stem = safe_file_stem(cfg.method)
    path = results_dir / f"{stem}.json"
    # cheap checks first: the results file name, the checkpoint's kind, the options and every weights file the
    # metrics need, before anything is generated or decoded
    check_results_target(path, cfg.method)
    if cfg.checkpoint is not None:
        from dicetalk_bench.model.checkpoint_kind import generator_checkpoint

        generator_checkpoint(cfg.checkpoint, command="evaluate --checkpoint")
    check_options(list(cfg.metrics), request.options)
    check_weights(list(cfg.metrics), request)
    checkpoint_record = None
    row = {"row_kind": "method"}
    if cfg.checkpoint is not None:
        videos, reference, checkpoint_record = generate_test_split(cfg, out_dir)
        request = dataclasses.replace(request, videos=videos, reference=reference)
    elif cfg.baseline is not None or cfg.real:
        videos, reference, row = reference_row_videos(cfg, out_dir)
        request = dataclasses.replace(request, videos=videos, reference=reference)
    else:
        videos, reference = request.videos, request.reference
    if cfg.real:
        results, failed = score_ceiling(cfg, request, row)
    else:
        results, failed = score_metrics(list(cfg.metrics), request, keep_going=cfg.keep_going)
    results = with_per_emotion(results, emotion_map(cfg, results))
    provenance = build_provenance(method=cfg.method, dataset=cfg.dataset, seed=cfg.seed, argv=argv,
                                  config_hash=config_hash(cfg), results=results, checkpoint=checkpoint_record,
                                  videos_sha256=list_videos(videos).manifest_hash(),
                                  extra={"config_file": f"{stem}.config.yaml",
                                         # where the scored and the reference videos are (the page's clip strip)
                                         "videos": str(Path(videos).resolve()),
                                         "reference": None if reference is None else str(Path(reference).resolve())})
    provenance = {**provenance, **row}
    save_config(cfg, results_dir, name=f"{stem}.config.yaml")
    write_run(results, path, method=cfg.method, dataset=cfg.dataset, provenance=provenance,
              reference_store=results_root / "reference_features")
    logger.info("wrote %s", path)
    return path, 1 if failed else 0


def print_summary(path: Path) -> None:
    """Print the summary table (metric, value, interval, n, failures) of a results file."""
    from dicetalk_bench.reports.runs import read_run
    from dicetalk_bench.summary_table import results_table

    run = read_run(path, load_features=False)
    print(f"{run.method} on {run.dataset} ({path}):")
    print(results_table(list(run.results.values())))


def _cmd_score(argv: list[str], *, summary: bool = True) -> int:
    parser = build_score_parser()
    args = parser.parse_args(argv)
    _setup_logging(args.verbose)
    from dicetalk_bench.metrics.registry import MetricRegistryError, check_options, get_metric, parse_metric_list

    try:
        names = parse_metric_list(args.metrics)
    except MetricRegistryError as exc:
        parser.error(str(exc))
    if not args.method.strip():
        parser.error("--method must not be empty")
    source = "--checkpoint" if args.checkpoint is not None else (
        "--baseline" if args.baseline else ("--real" if args.real else None))
    if source is not None:
        if args.processed is None:
            parser.error(f"{source} needs --processed DIR (the preprocessing output holding the test split)")
        if not args.processed.is_dir():
            parser.error(f"--processed {args.processed}: not a folder")
    else:
        if args.processed is not None:
            parser.error("--processed is only used with --checkpoint, --baseline or --real")
        if not args.videos.is_dir():
            parser.error(f"--videos {args.videos}: not a folder")
        for n in names:
            if get_metric(n).needs_reference and args.reference is None:
                parser.error(f"metric {n!r} needs --reference DIR")
    if args.reference is not None and not args.reference.is_dir():
        parser.error(f"--reference {args.reference}: not a folder")
    try:
        check_options(names, {k: scalar(v) for k, v in args.option})
    except MetricRegistryError as exc:
        parser.error(str(exc))
    cfg = _config_from_args(args, names)
    full_argv = ["python", "-m", "dicetalk_bench.evaluate", *argv]
    written: list[Path] = []

    def score() -> int:
        path, exit_code = run_evaluation(cfg, full_argv)
        written.append(path)
        return exit_code

    code = run_cli(score, verbose=args.verbose)  # a set-up error: one line on stderr, exit 1, no results file
    if summary and written:
        print_summary(written[0])
    if args.leaderboard and written:
        lb = _cmd_leaderboard(["--results", str(args.out / "results"), "--out", str(args.out / "leaderboard"),
                               "--seed", str(args.seed)])
        code = code or lb
    return code


def main(argv: Sequence[str] | None = None, *, summary: bool = True) -> int:
    """The command line; ``summary=False`` leaves out the summary table printed after scoring."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "leaderboard":
        return _cmd_leaderboard(argv[1:])
    if argv and argv[0] == "score":
        argv = argv[1:]
    return _cmd_score(argv, summary=summary)


if __name__ == "__main__":
    raise SystemExit(main())
