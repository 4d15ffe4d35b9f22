"""The whole chain on the built-in demo data, stage by stage, each stage reused when its outputs are complete.

demo data -> preprocessing (``--whisper random:0``) -> random metric extractor weights -> emotion embedder ->
tiny DICE-Talk -> ``evaluate --checkpoint`` on the test split -> the ceiling row (``--real``) and the three
baseline rows -> leaderboard. Every stage calls the command's own ``main`` in this process with the arguments
that command documents, so the demo is the README's commands run in order.

A stage is complete when its marker ``OUT/stages/<stage>.json`` exists (written after the stage succeeded) and
records the same settings; a rerun then reuses it. A marker of other settings (another preset into the same
folder) is refused as a set-up error. Set-up errors of a stage's command end the demo (the command has already
printed its one ``error:`` line); per-item failures are recorded by the stages themselves and the run goes on.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from dicetalk_bench.errors import SetupError

logger = logging.getLogger(__name__)

#: where the example configs live (the repository's configs/ folder; the demo is run from a checkout)
CONFIGS_DIR = Path(__file__).resolve().parent.parent / "configs"

#: metrics of the demo's leaderboard and the extractor weights keys they read (random weights, see the banner).
#: CSIM (ArcFace-R100, about 15 s per clip on one idle CPU core) is left out to keep the demo near 20 minutes.
DEMO_METRICS: tuple[str, ...] = ("fid", "fvd", "sync-c", "sync-d", "emo-acc", "psnr", "ssim", "lpips")
#: every metric the demo's summary table may show, in the page's order
TABLE_METRICS: tuple[str, ...] = ("fid", "kid", "fvd", "sync-c", "sync-d", "emo-acc", "csim", "psnr", "ssim", "lpips")
#: registry key of each extractor -> the metrics that read it (with their default options)
EXTRACTOR_METRICS: dict[str, tuple[str, ...]] = {
    "inception-fid": ("fid", "kid"), "i3d-400": ("fvd",), "syncnet": ("sync-c", "sync-d"),
    "emotion-fan": ("emo-acc",), "arcface-r100": ("csim",), "lpips-alex": ("lpips",)}
RANDOM_EXTRACTORS: tuple[str, ...] = tuple(EXTRACTOR_METRICS)
BASELINES: tuple[str, ...] = ("static", "shuffled-audio", "shifted-audio")
METHOD = "DICE-Talk (tiny demo)"
CEILING = "real video (ceiling)"

BANNER = ("Demo numbers: every column was computed with random, uncalibrated extractor weights (python -m "
          "dicetalk_bench.weights make-random) on a few tiny demo clips, and the method row comes from a tiny "
          "DICE-Talk trained for {steps} steps on random Whisper and SVD weights. They show that the "
          "pipeline runs end to end, not the quality of any method; the published rows are the papers' own numbers.")

WHISPER_NOTE = ("demo: --whisper random:0 = a random, uncalibrated Whisper encoder, because the demo installs no "
                "real Whisper weights (every output records it; see docs/weights.md)")
SVD_NOTE = ("demo: svd=random:0 = a tiny random SVD folder under the tiny DICE-Talk (configs/train_tiny.yaml); the "
            "checkpoint records it as uncalibrated")
EXTRACTOR_NOTE = ("demo: every metric uses random extractor weights (python -m dicetalk_bench.weights make-random, "
                  "seed 0), accepted with --allow-unverified: every results file and the leaderboard mark them "
                  "uncalibrated; FID/FVD run on the few demo clips with --force-small-set (recorded)")


class DemoStageFailed(SetupError):
    """A stage's command stopped with a set-up error; it has printed its own ``error:`` line."""

    def __init__(self, stage: str, code: int):
        super().__init__(f"stage {stage!r} stopped (exit status {code})")
        self.stage = stage
        self.code = code


@dataclasses.dataclass(frozen=True)
class DemoPreset:
    """Sizes of one demo run.

    ``speakers``/``views`` select the MEAD clips to preprocess (None: all of the demo tree); ``crop_size`` is the
    face-crop side in pixels; ``embedder_steps``/``generator_steps`` the training steps of the tiny configs;
    ``max_clips`` the test clips generated and scored per row (None: the whole test split); ``fid_frame_stride``
    scores every n-th frame for FID (InceptionV3 at 299 px is the costliest extractor on a CPU; recorded in each
    result's protocol)."""

    name: str
    demo_size: str = "test"
    speakers: tuple[str, ...] | None = None
    views: tuple[str, ...] | None = ("front",)
    crop_size: int = 64
    preprocess_workers: int = 2
    embedder_steps: int = 100
    generator_steps: int = 200
    resolution: int = 32
    sample_steps: int = 4
    max_clips: int | None = None
    metrics: tuple[str, ...] = DEMO_METRICS
    fid_frame_stride: int = 10

    def settings(self, *fields: str) -> dict[str, Any]:
        """The named fields (all when none is named): what a stage's marker records."""
        values = dataclasses.asdict(self)
        return {k: values[k] for k in (fields or values)}


#: ``readme``: the README's first command (about 20 minutes on an idle 2-core machine); ``smoke``: the smallest
#: run of every stage (the test suite's)
PRESETS: dict[str, DemoPreset] = {
    "readme": DemoPreset(name="readme", speakers=("M003", "W009", "M005", "M007", "W011", "W014"),
                         embedder_steps=100, generator_steps=200, max_clips=8),
    "smoke": DemoPreset(name="smoke", speakers=("M005", "M007", "W009"), preprocess_workers=0, embedder_steps=4,
                        generator_steps=2, resolution=32, sample_steps=1, max_clips=4,
                        metrics=("fid", "psnr", "ssim"), fid_frame_stride=25),
}


@dataclasses.dataclass(frozen=True)
class StageOutcome:
    """One stage of a run: ``status`` "ran" or "reused", wall seconds of this run (0 when reused) and of the run
    that made it."""

    name: str
    status: str
    seconds: float
    made_in_s: float


@dataclasses.dataclass(frozen=True)
class DemoPaths:
    """The folders of a demo run under ``out``."""

    out: Path

    @property
    def raw(self) -> Path:
        return self.out / "raw"

    @property
    def processed(self) -> Path:
        return self.out / "processed"

    @property
    def extractors(self) -> Path:
        return self.out / "random_extractors"

    @property
    def embedder(self) -> Path:
        return self.out / "embedder"

    @property
    def generator(self) -> Path:
        return self.out / "generator"

    @property
    def evaluation(self) -> Path:
        return self.out / "eval"

    @property
    def leaderboard(self) -> Path:
        return self.out / "eval" / "leaderboard"

    @property
    def stages(self) -> Path:
        return self.out / "stages"


def _marker(paths: DemoPaths, stage: str) -> Path:
    return paths.stages / f"{stage.replace(' ', '_')}.json"


def run_stage(paths: DemoPaths, stage: str, settings: dict[str, Any], work: Callable[[], None],
              echo: Callable[[str], None] = print) -> StageOutcome:
    """Run ``work`` unless the stage's marker records ``settings`` (then it is reused); write the marker after it
    succeeded. A marker of other settings is refused (:class:`SetupError`)."""
    marker = _marker(paths, stage)
    if marker.is_file():
        done = json.loads(marker.read_text())
        if done.get("settings") != json.loads(json.dumps(settings)):
            raise SetupError(f"{paths.out} holds the stage {stage!r} of other demo settings "
                             f"({marker}); use another --out folder or delete {paths.out}")
        echo(f"[{stage}] reused ({done.get('seconds', 0):.0f} s when it ran)")
        return StageOutcome(stage, "reused", 0.0, float(done.get("seconds", 0.0)))
    echo(f"[{stage}] ...")
    start = time.perf_counter()
    work()
    seconds = time.perf_counter() - start
    marker.parent.mkdir(parents=True, exist_ok=True)
    tmp = marker.with_suffix(".tmp")
    tmp.write_text(json.dumps({"stage": stage, "settings": settings, "seconds": round(seconds, 1)}, indent=1))
    tmp.replace(marker)
    echo(f"[{stage}] done in {seconds:.0f} s")
    return StageOutcome(stage, "ran", seconds, seconds)


def _command(stage: str, main: Callable[..., int], argv: Sequence[str], **kwargs: Any) -> Callable[[], None]:
    """A stage body calling a command's ``main(argv)``; a non-zero exit becomes :class:`DemoStageFailed`."""

    def work() -> None:
        code = main(list(argv), **kwargs)
        if code:
            raise DemoStageFailed(stage, code)

    return work


def config_file(name: str) -> Path:
    """``configs/<name>`` of the checkout; a missing one is a set-up error naming it."""
    path = CONFIGS_DIR / name
    if not path.is_file():
        raise SetupError(f"{path} is missing: run the demo from a checkout of dicetalk_bench (pip install -e .)")
    return path


#: the processed clip whose first frame the demo saves as ``OUT/face.png`` (a test speaker of every preset)
PORTRAIT_CLIP = "mead/W009/front/happy/level_1/001"


def write_portrait(processed: Path, target: Path, clip_id: str = PORTRAIT_CLIP) -> Path:
    """Save the first frame of a processed clip as a PNG (the ``--image`` of the sampling examples in
    docs/model.md): a face crop at the preprocessing's crop size."""
    from PIL import Image

    from dicetalk_bench import media

    frame = media.read_video(processed / "videos" / f"{clip_id}.mp4", max_frames=1).frames[0]
    target.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(frame).save(target)
    return target


def _make_extractors(folder: Path) -> None:
    from dicetalk_bench import weights
    from dicetalk_bench.random_weight_builders import register_random_builders

    register_random_builders()  # the builders register themselves when their owner modules are imported
    for key in RANDOM_EXTRACTORS:
        weights.make_random(key, folder, seed=0)


def extractor_paths(folder: Path) -> dict[str, Path]:
    """Registry key -> the random weights file ``make_random`` wrote into ``folder``."""
    from dicetalk_bench import weights

    return {key: folder / weights.get_entry(key).filename for key in RANDOM_EXTRACTORS}


def _evaluate_argv(paths: DemoPaths, preset: DemoPreset, source: Sequence[str], method: str) -> list[str]:
    argv = [*source, "--processed", str(paths.processed), "--metrics", ",".join(preset.metrics), "--method", method,
            "--dataset", "mead", "--out", str(paths.evaluation), "--force-small-set", "--allow-unverified",
            "--no-cache", "--seed", "0"]
    for key, path in extractor_paths(paths.extractors).items():
        if set(EXTRACTOR_METRICS[key]) & set(preset.metrics):
            argv += ["--weights", f"{key}={path}"]
    if preset.max_clips is not None:
        argv += ["--max-clips", str(preset.max_clips)]
    if "fid" in preset.metrics or "kid" in preset.metrics:
        argv += ["--option", f"fid.frame_stride={preset.fid_frame_stride}"]
    return argv


@dataclasses.dataclass(frozen=True)
class DemoResult:
    """What a demo run did: each stage's outcome, the leaderboard page, the results files by row."""

    stages: tuple[StageOutcome, ...]
    index_html: Path
    results: dict[str, Path]


def results_file(paths: DemoPaths, method: str) -> Path:
    from dicetalk_bench.reports.runs import safe_file_stem

    return paths.evaluation / "results" / "mead" / f"{safe_file_stem(method)}.json"


def run_demo(out: str | Path, preset: DemoPreset, *, echo: Callable[[str], None] = print) -> DemoResult:
    """Run (or resume) the whole chain into ``out`` at the sizes of ``preset``; see the module docstring."""
    from dicetalk_bench import evaluate, preprocess, train, train_embedder
    from dicetalk_bench.demo_data import build_demo
    from dicetalk_bench.evaluation.leaderboard import run_leaderboard

    paths = DemoPaths(Path(out))
    outcomes: list[StageOutcome] = []

    def stage(name: str, work: Callable[[], None], fields: Sequence[str], **extra: Any) -> None:
        settings = {**preset.settings(*fields), **extra} if fields else dict(extra)
        outcomes.append(run_stage(paths, name, settings, work, echo))

    embedder_cfg, train_cfg = config_file("embedder_tiny.yaml"), config_file("train_tiny.yaml")
    stage("demo data", lambda: build_demo(paths.raw, size=preset.demo_size, datasets=("mead",)), ["demo_size"])

    pre_argv = ["--dataset", "mead", "--root", str(paths.raw / "mead"), "--out", str(paths.processed),
                "--workers", str(preset.preprocess_workers), "--whisper", "random:0",
                "--set", f"crop.size={preset.crop_size}", "--set", "preset=ultrafast", "--log-level", "WARNING"]
    if preset.speakers:
        pre_argv += ["--speakers", *preset.speakers]
    if preset.views:
        pre_argv += ["--views", *preset.views]
    if not _marker(paths, "preprocess").is_file():
        echo(WHISPER_NOTE)
    stage("preprocess", _command("preprocess", preprocess.main, pre_argv), ["speakers", "views", "crop_size"])
    stage("portrait", lambda: write_portrait(paths.processed, paths.out / "face.png"), [], clip=PORTRAIT_CLIP)
    stage("random extractors", lambda: _make_extractors(paths.extractors), [], keys=list(RANDOM_EXTRACTORS))
    stage("embedder", _command("embedder", train_embedder.main, [
        "--config", str(embedder_cfg), f"data_root={paths.processed}", f"out_dir={paths.embedder}",
        f"steps={preset.embedder_steps}", f"checkpoint_every={max(1, preset.embedder_steps)}"]),
        ["embedder_steps"], config=embedder_cfg.read_text())
    if not _marker(paths, "generator").is_file():
        echo(SVD_NOTE)
    stage("generator", _command("generator", train.main, [
        "--config", str(train_cfg), "--device", "cpu", f"data_root={paths.processed}",
        f"embedder_dir={paths.embedder}", f"out_dir={paths.generator}", f"steps={preset.generator_steps}",
        f"checkpoint_every={max(1, preset.generator_steps)}", f"resolution={preset.resolution}"]),
        ["generator_steps", "resolution"], config=train_cfg.read_text())
    banner = BANNER.format(steps=preset.generator_steps)
    rows = {METHOD: ["--checkpoint", str(paths.generator), "--sample-steps", str(preset.sample_steps)],
            CEILING: ["--real"]}
    rows.update({f"{b} baseline": ["--baseline", b] for b in BASELINES})
    echo(EXTRACTOR_NOTE)
    for method, source in rows.items():
        stage(f"score {method}", _command(f"score {method}", evaluate.main,
                                          _evaluate_argv(paths, preset, source, method), summary=False),
              ["metrics", "max_clips", "fid_frame_stride", *(["sample_steps"] if "--checkpoint" in source else [])])
    stage("leaderboard", lambda: run_leaderboard(paths.evaluation / "results", paths.leaderboard,
                                                 title="dicetalk_bench demo leaderboard", banner=banner),
          [], rows=sorted(rows), banner=banner)
    return DemoResult(tuple(outcomes), paths.leaderboard / "index.html",
                      {method: results_file(paths, method) for method in rows})


def summary_table(result: DemoResult) -> str:
    """One line per leaderboard row (method, ceiling, baselines) and one column per metric, as on the page."""
    from dicetalk_bench.reports.runs import read_run
    from dicetalk_bench.summary_table import format_value, text_table

    runs = {method: read_run(path, load_features=False) for method, path in result.results.items()}
    keys = [k for k in TABLE_METRICS if any(k in r.results for r in runs.values())]
    header = ["row", *(f"{k} {'↑' if next(r.results[k] for r in runs.values() if k in r.results).higher_is_better else '↓'}"
                       for k in keys)]
    header += ["videos", "failed"]
    rows = [[method, *(format_value(run.results[k].value) if k in run.results else "-" for k in keys),
             str(max(r.n_attempted for r in run.results.values())),
             str(max(len(r.failures) for r in run.results.values()))]
            for method, run in runs.items()]
    return text_table(header, rows)


def stages_table(result: DemoResult) -> str:
    """Each stage: ran / reused, and its wall time."""
    from dicetalk_bench.summary_table import text_table

    return text_table(["stage", "status", "wall s"],
                      [[s.name, s.status, f"{(s.seconds if s.status == 'ran' else s.made_in_s):.0f}"]
                       for s in result.stages])
