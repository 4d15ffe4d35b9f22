"""Generate the test split of a dataset from a trained checkpoint (``evaluate --checkpoint``), restartably.

The clips are written by :mod:`dicetalk_bench.model.split_generation`; this module checks the inputs first (the
checkpoint's kind and files, the test rows, the Whisper weights), chooses the folder (:func:`generated_dir`) and
returns the generation record that goes into the provenance.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from dicetalk_bench.evaluation.config import DATASETS, EvalConfig, EvaluateError
from dicetalk_bench.evaluation.split import linked_reference, read_test_rows

#: builds the sampler of a generation run (``"module:function"`` called with a SamplerSpec, or a function)
SAMPLER_LOADER: Any = "dicetalk_bench.model.pipeline:load_sampler"


def sample_settings(cfg: EvalConfig) -> tuple[tuple[str, Any], ...]:
    """The sampling settings of a generation run, as sorted (name, value) pairs (they enter every clip's key, except
    the execution-only ones, :data:`~dicetalk_bench.model.split_generation.EXECUTION_SETTINGS`)."""
    settings = {"steps": cfg.sample_steps, "frame_rate": cfg.frame_rate, "rife": cfg.weights.get("rife-hdv3"),
                "allow_unverified": cfg.allow_unverified}
    if cfg.window_batch is not None:
        settings["window_batch"] = cfg.window_batch
    return tuple(sorted(settings.items()))


def check_whisper_records(folder: Path, rows: Sequence[dict[str, Any]], processed: Path) -> None:
    """A training checkpoint's Whisper weights against the ones that made the processed audio features (read from
    the first test clip's Parquet metadata; no model is loaded); an :class:`EvaluateError` when they differ."""
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

    Writes ``out_dir/generated/<method>/<clip_id>.mp4`` (:func:`generated_dir`; 25 fps, with the clip's audio, plus
    a sidecar record per clip; :mod:`dicetalk_bench.model.split_generation`) and, unless a reference folder was
    given, links the processed ground-truth clips into ``out_dir/reference/<dataset>/``. A clip already generated
    with the same checkpoint, settings and inputs is reused. ``cfg.workers`` / ``cfg.scheduler`` shard the clips
    over Dask workers (each loads the model once). Returns (videos folder, reference folder, generation record for
    the provenance). Set-up errors (a wrong checkpoint kind, other Whisper weights, a processed folder without the
    split, a broken checkpoint, a GPU worker without CUDA) stop before any clip is written; a clip whose own input
    is unusable is recorded with its reason and the run goes on.
    """
    from dicetalk_bench.model import split_generation as sg
    from dicetalk_bench.model.checkpoint_kind import check_generator_files, generator_checkpoint
    from dicetalk_bench.model.release import ReleaseSources
    from dicetalk_bench.reports.provenance import checkpoint_weights, tree_sha256

    processed = Path(cfg.processed)  # checked by the caller
    folder = generator_checkpoint(cfg.checkpoint, command="evaluate --checkpoint")
    check_generator_files(folder)
    rows = read_test_rows(processed, cfg.dataset)
    if cfg.max_clips is not None:
        rows = rows[: cfg.max_clips]
    try:
        jobs = sg.make_jobs(rows, cfg.dataset, "test")
    except ValueError as exc:
        raise EvaluateError(f"{processed / 'clips.parquet'}: {exc}") from None
    check_whisper_records(folder, rows, processed)
    use_gpu = str(cfg.device).startswith("cuda") and (cfg.workers > 0 or cfg.scheduler is not None)
    spec = sg.SamplerSpec(checkpoint=str(folder), checkpoint_sha256=tree_sha256(folder), data_root=str(processed),
                          settings=sample_settings(cfg), device=cfg.device, seed=cfg.seed, loader=SAMPLER_LOADER,
                          use_gpu=use_gpu, sources=ReleaseSources.from_weights(cfg.weights, cfg.allow_unverified))
    if cfg.workers == 0 and cfg.scheduler is None:
        sg.cached_sampler(spec)  # load and check the model once, here, before any clip is written
    gen_dir = generated_dir(out_dir, cfg.dataset, cfg.method)
    summary = sg.generate_split(jobs, spec, gen_dir, workers=cfg.workers, scheduler=cfg.scheduler)
    if not summary.generated and not summary.reused:
        first = next(iter(summary.failures.items()))
        raise EvaluateError(f"generation failed for all {len(jobs)} test clips (e.g. {first[0]}: {first[1]})")
    reference = linked_reference(cfg, out_dir, rows)
    made_by = dict(summary.sampler or {})
    record = {"path": str(folder), "sha256": spec.checkpoint_sha256, "n_test_clips": len(rows),
              **summary.record(), "generation_failures": dict(summary.failures),
              "sample_steps": cfg.sample_steps, "fps": sg.GENERATED_FPS, "settings_sha256": spec.settings_sha256,
              "sampler_version": sg.SAMPLER_VERSION, "frame_rate": made_by.get("frame_rate"),
              "processed": str(processed), "kind": made_by.get("kind"), "label": made_by.get("label"),
              "frame_stride": made_by.get("frame_stride"), "release": made_by.get("release"),
              "weights": checkpoint_weights(folder) or made_by.get("records")}
    return gen_dir, reference, record
