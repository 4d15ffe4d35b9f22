"""The metric registry: one table of every metric's name, direction, description and compute function.

A metric's direction (``higher_is_better``) is data here, not a detail of a report template (lm-evaluation-harness
habit); names are checked and duplicates refused (torch-fidelity habit). Importing this module is cheap: compute
functions are given as ``"module:function"`` strings and imported only when a metric is run.

Every compute function has the signature::

    fn(request: ScoreRequest) -> MetricResult | Sequence[MetricResult]

It may return several results at once (e.g. Sync-C and Sync-D from one SyncNet pass); when two names share one
compute function, :func:`compute_metrics` calls it once and keeps the results whose key was asked for.

How to add a metric -- either way works (see also docs/architecture.md):

1. add a line to ``_BUILTIN`` below, e.g.
   ``MetricSpec(SYNC_C, True, "SyncNet confidence (LSE-C)", "dicetalk_bench.metrics.sync:score_sync")``; or
2. call :func:`register` from your own module, and list that module in ``PROVIDER_MODULES`` so the CLI imports it
   before dispatching (it must stay importable without side effects beyond the registration).

Names are lower case, start with a letter, and use only ``a-z``, ``0-9`` and ``-`` (``^[a-z][a-z0-9-]*$``).

Declare in the spec what the metric needs, so set-up errors are found before any work: ``weights`` (the
weights-registry keys it always loads), ``options`` (one :class:`OptionSpec` per ``request.option`` it reads, with
the allowed values and the weights a value needs) and ``face_detector`` (it tracks faces with BlazeFace).
:func:`check_options` refuses an option no requested metric reads; :mod:`.preflight` resolves every weights file.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

# Metric keys, re-exported here (defined in .keys)
from dicetalk_bench.metrics.keys import CSIM, EMO_ACC, FID, FVD, KID, LPIPS, PSNR, SSIM, SYNC_C, SYNC_D  # noqa: F401

_NAME_RE = re.compile(r"^[a-z][a-z0-9-]*$")
_COMPUTE_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


class MetricRegistryError(ValueError):
    """A bad registration (invalid or duplicate name, malformed compute path) or an unknown metric name."""


class MetricOptionError(MetricRegistryError):
    """An ``--option METRIC.NAME=VALUE`` that no requested metric reads, or a value outside the allowed ones."""


FACE_DETECTOR_OPTION = "faces.detector"  # an object with detect(frame) replacing BlazeFace (tests, own detectors)


@dataclasses.dataclass(frozen=True)
class OptionSpec:
    """One option a metric reads, ``"<prefix>.<name>"`` (e.g. ``"fid.mode"``).

    ``kind``: ``"choice"`` (one of ``choices``; ``prefixes`` also admit ``"<prefix>..."`` values such as
    ``own:PATH``), ``"int"`` / ``"float"`` (a number >= ``minimum``), ``"file"`` (an existing file) or ``"object"``
    (anything; set from Python, e.g. a detector). ``weights`` maps a choice to the weights-registry keys it needs.
    ``default`` is the value used when the option is not given (it selects ``weights`` too).
    """

    key: str
    kind: str = "choice"
    choices: tuple[Any, ...] = ()
    prefixes: tuple[str, ...] = ()
    minimum: float | None = None
    default: Any = None
    weights: Mapping[Any, tuple[str, ...]] = dataclasses.field(default_factory=dict)

    def check(self, value: Any) -> None:
        """Raise MetricOptionError naming the option and the allowed values when ``value`` is not one."""
        if self.kind == "object":
            return
        if self.kind == "choice":
            if value in self.choices or (isinstance(value, str) and any(
                    value.startswith(p) and len(value) > len(p) for p in self.prefixes)):
                return
            allowed = [repr(c) for c in self.choices] + [f"'{p}...'" for p in self.prefixes]
            raise MetricOptionError(f"option {self.key}={value!r}: expected one of {', '.join(allowed)}")
        if self.kind in ("int", "float"):
            ok = isinstance(value, int) if self.kind == "int" else isinstance(value, (int, float))
            if not ok or isinstance(value, bool) or (self.minimum is not None and value < self.minimum):
                what = "an integer" if self.kind == "int" else "a number"
                bound = "" if self.minimum is None else f" >= {self.minimum:g}"
                raise MetricOptionError(f"option {self.key}={value!r}: expected {what}{bound}")
            return
        if self.kind == "file":
            if not Path(str(value)).expanduser().is_file():
                raise MetricOptionError(f"option {self.key}={value!r}: no such file")
            return
        raise MetricRegistryError(f"option {self.key}: unknown kind {self.kind!r}")

    def weights_for(self, value: Any) -> tuple[str, ...]:
        """Weights keys the value (or the default when None) needs."""
        return tuple(self.weights.get(self.default if value is None else value, ()))


@dataclasses.dataclass(frozen=True)
class MetricSpec:
    """One metric.

    ``compute`` is ``"module:function"`` (see the module docstring for the signature). ``needs_reference`` says
    whether ``--reference`` is required: distribution metrics (FID, FVD, KID) compare with a real set, paired
    metrics (PSNR, SSIM, LPIPS) with the ground truth of each clip; Sync-C/D need none.
    """

    name: str
    higher_is_better: bool
    description: str
    compute: str
    needs_reference: bool = False
    weights: tuple[str, ...] = ()  # weights-registry keys always needed (option-dependent ones: OptionSpec.weights)
    options: tuple[OptionSpec, ...] = ()  # every option the compute function reads for this metric
    face_detector: bool = False  # tracks faces (BlazeFace weights unless option faces.detector is given)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME_RE.match(self.name):
            raise MetricRegistryError(
                f"invalid metric name {self.name!r}: expected lower case letters, digits and '-', starting with a "
                f"letter (pattern {_NAME_RE.pattern})")
        if not isinstance(self.higher_is_better, bool):
            raise MetricRegistryError(f"metric {self.name!r}: higher_is_better must be a bool, "
                                      f"not {self.higher_is_better!r}")
        if not isinstance(self.compute, str) or not _COMPUTE_RE.match(self.compute):
            raise MetricRegistryError(f"metric {self.name!r}: compute must be 'module:function', "
                                      f"not {self.compute!r}")
        if not self.description:
            raise MetricRegistryError(f"metric {self.name!r}: give a one-line description")
        keys = [o.key for o in self.options]
        if len(set(keys)) != len(keys):
            raise MetricRegistryError(f"metric {self.name!r}: an option is declared twice ({keys})")

    def option_spec(self, key: str) -> OptionSpec | None:
        """The declared option ``key`` (``"fid.mode"``), or None when this metric does not read it."""
        return next((o for o in self.options if o.key == key), None)

    def load_compute(self) -> Callable[[ScoreRequest], Any]:
        """Import and return the compute function (raises MetricRegistryError naming the path on failure)."""
        module_name, func_name = self.compute.split(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise MetricRegistryError(f"metric {self.name!r}: cannot import {module_name} ({exc})") from exc
        fn = getattr(module, func_name, None)
        if not callable(fn):
            raise MetricRegistryError(f"metric {self.name!r}: {module_name} has no function {func_name}")
        return fn


@dataclasses.dataclass(frozen=True)
class ScoreRequest:
    """Everything a compute function gets: the folders and the run-wide choices.

    ``weights`` maps a weights-registry key (``"inception-fid"``, ``"i3d-400"``, ...) to an explicit file path
    (otherwise the registry's resolution order applies). ``options`` holds metric-specific settings, keyed
    ``"<metric>.<option>"`` (e.g. ``"fid.mode": "tf1"``, ``"fvd.backend": "i3d-400"``). ``force_small_set`` lets
    FID/FVD/KID run on sets below their minimum size (the result records it). ``cache_dir`` holds cached real-set
    statistics (None: no caching). ``workers`` / ``scheduler`` shard per-video feature extraction over Dask
    (:mod:`.sharding`: a local cluster of ``workers`` one-thread processes, or the cluster at ``scheduler``);
    metrics that do not shard ignore them, and the values never depend on them.
    """

    videos: Path
    reference: Path | None = None
    weights: Mapping[str, str] = dataclasses.field(default_factory=dict)
    allow_unverified: bool = False
    device: str = "cpu"
    seed: int = 0
    batch_size: int = 16
    force_small_set: bool = False
    cache_dir: Path | None = None
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    metrics: tuple[str, ...] = ()  # the names asked for (set by compute_metrics), so shared functions skip others
    workers: int = 0
    scheduler: str | None = None

    def sharding(self) -> Any:
        """The :class:`~.sharding.Sharding` of ``workers`` / ``scheduler``."""
        from dicetalk_bench.metrics.sharding import Sharding

        return Sharding(self.workers, self.scheduler)

    def option(self, metric: str, name: str, default: Any = None) -> Any:
        """``options["<metric>.<name>"]`` or ``default``."""
        return self.options.get(f"{metric}.{name}", default)


# ---------------------------------------------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------------------------------------------
_FID_OPTIONS = (
    OptionSpec("fid.mode", choices=("tf1", "pytorch-fid"), default="tf1"),
    OptionSpec("fid.crop", choices=("none", "center"), default="none"),
    OptionSpec("fid.frame_stride", kind="int", minimum=1, default=1),
)
_KID_OPTIONS = (OptionSpec("kid.subset_size", kind="int", minimum=2, default=1000),
                OptionSpec("kid.subsets", kind="int", minimum=1, default=100))
_FVD_OPTIONS = (
    OptionSpec("fvd.backend", choices=("i3d-400", "i3d-torchscript"), default="i3d-400",
               weights={"i3d-400": ("i3d-400",), "i3d-torchscript": ("i3d-torchscript",)}),
    OptionSpec("fvd.clip_length", kind="int", minimum=1, default=16),
    OptionSpec("fvd.clips_per_video", kind="int", minimum=1, default=1),
    OptionSpec("fvd.resize", choices=("tf1", "bilinear"), default="tf1"),
    OptionSpec("fvd.size", kind="int", minimum=1, default=224),
)
_FACES = OptionSpec(FACE_DETECTOR_OPTION, kind="object")
_SYNC_OPTIONS = (OptionSpec("sync.mode", choices=("fast", "parity", "original"), default="fast"), _FACES)
_EMO_OPTIONS = (
    OptionSpec("emo-acc.classifier", choices=("emotion-fan", "hsemotion"), prefixes=("own:",), default="emotion-fan",
               weights={"emotion-fan": ("emotion-fan",), "hsemotion": ("hsemotion-enet-b0-8",)}),
    OptionSpec("emo-acc.labels", kind="file"),
    OptionSpec("emo-acc.speakers", kind="file"),
    OptionSpec("emo-acc.aggregation", choices=("attention", "mean-logit", "majority")),
    OptionSpec("emo-acc.crop_scale", kind="float", minimum=1e-3),
    _FACES,
)

_BUILTIN: tuple[MetricSpec, ...] = (
    MetricSpec(FID, False, "Frechet Inception Distance over all frames (InceptionV3 pool3, 2048-d)",
               "dicetalk_bench.metrics.fid:score_fid", needs_reference=True, weights=("inception-fid",),
               options=_FID_OPTIONS),
    MetricSpec(KID, False, "Kernel Inception Distance (cubic polynomial-kernel MMD^2, unbiased) over all frames",
               "dicetalk_bench.metrics.fid:score_fid", needs_reference=True, weights=("inception-fid",),
               options=_FID_OPTIONS + _KID_OPTIONS),
    MetricSpec(FVD, False, "Frechet Video Distance (I3D Kinetics-400 logits of 16-frame clips)",
               "dicetalk_bench.metrics.fvd:score_fvd", needs_reference=True, options=_FVD_OPTIONS),
    # face metrics (dicetalk_bench/metrics/scoring_faces.py)
    MetricSpec(SYNC_C, True, "SyncNet confidence (LSE-C): median - min of the mean distance over 31 audio shifts",
               "dicetalk_bench.metrics.scoring_faces:score_sync", weights=("syncnet",), options=_SYNC_OPTIONS,
               face_detector=True),
    MetricSpec(SYNC_D, False, "SyncNet distance (LSE-D): min over 31 audio shifts of the mean embedding distance",
               "dicetalk_bench.metrics.scoring_faces:score_sync", weights=("syncnet",), options=_SYNC_OPTIONS,
               face_detector=True),
    MetricSpec(EMO_ACC, True, "Video-level emotion accuracy (%) over the 8 MEAD emotions (Emotion-FAN, EAT protocol)",
               "dicetalk_bench.metrics.scoring_faces:score_emo_acc", options=_EMO_OPTIONS, face_detector=True),
    MetricSpec(CSIM, True, "Identity cosine similarity (ArcFace-R100) of generated frames to the reference frame",
               "dicetalk_bench.metrics.scoring_faces:score_csim", needs_reference=True, weights=("arcface-r100",),
               options=(_FACES,), face_detector=True),
    MetricSpec(PSNR, True, "Peak signal-to-noise ratio (dB) against the paired ground-truth frames",
               "dicetalk_bench.metrics.scoring_faces:score_psnr", needs_reference=True),
    MetricSpec(SSIM, True, "Structural similarity against the paired ground-truth frames (Gaussian 11x11, RGB)",
               "dicetalk_bench.metrics.scoring_faces:score_ssim", needs_reference=True,
               options=(OptionSpec("ssim.mode", choices=("gaussian", "skimage-default"), default="gaussian"),)),
    MetricSpec(LPIPS, False, "LPIPS (AlexNet, v0.1) against the paired ground-truth frames",
               "dicetalk_bench.metrics.scoring_faces:score_lpips", needs_reference=True, weights=("lpips-alex",)),
)

# Modules imported before dispatch so that their register() calls take effect (see the module docstring).
PROVIDER_MODULES: tuple[str, ...] = ()

_LOCK = threading.Lock()
_TABLE: dict[str, MetricSpec] = {}


def register(spec: MetricSpec, *, replace: bool = False) -> MetricSpec:
    """Add ``spec`` to the registry. A name already taken raises unless ``replace`` (tests only)."""
    if not isinstance(spec, MetricSpec):
        raise MetricRegistryError(f"register() needs a MetricSpec, not {type(spec).__name__}")
    with _LOCK:
        old = _TABLE.get(spec.name)
        if old is not None and not replace and old != spec:
            raise MetricRegistryError(f"metric name {spec.name!r} is already registered ({old.compute})")
        _TABLE[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    """Remove a metric (tests that register temporary metrics clean up with this)."""
    with _LOCK:
        _TABLE.pop(name, None)


for _spec in _BUILTIN:
    register(_spec)


def _load_providers() -> None:
    for module_name in PROVIDER_MODULES:
        importlib.import_module(module_name)


class _View(Mapping[str, MetricSpec]):
    """Read-only live view of the registry."""

    def __getitem__(self, name: str) -> MetricSpec:
        return get_metric(name)

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(_TABLE))

    def __len__(self) -> int:
        return len(_TABLE)


METRICS: Mapping[str, MetricSpec] = _View()


def get_metric(name: str) -> MetricSpec:
    """The spec for ``name``; an unknown name raises MetricRegistryError listing the known ones."""
    spec = _TABLE.get(name)
    if spec is None:
        _load_providers()
        spec = _TABLE.get(name)
    if spec is None:
        raise MetricRegistryError(f"unknown metric {name!r}; known metrics: {', '.join(metric_names())}")
    return spec


def metric_names() -> list[str]:
    """Sorted names of every registered metric."""
    _load_providers()
    return sorted(_TABLE)


def parse_metric_list(text: str) -> list[str]:
    """``"fid, fvd"`` -> ``["fid", "fvd"]`` (order kept, duplicates dropped, each name checked)."""
    names: list[str] = []
    for part in text.split(","):
        name = part.strip().lower()
        if not name:
            continue
        get_metric(name)
        if name not in names:
            names.append(name)
    if not names:
        raise MetricRegistryError(f"no metric names in {text!r}; known metrics: {', '.join(metric_names())}")
    return names


def check_options(names: Sequence[str], options: Mapping[str, Any], *, others_allowed: bool = False) -> None:
    """Refuse an option that none of the metrics ``names`` reads, or a value it does not allow.

    The message names the valid options of the requested metrics and suggests the closest one (difflib), so a
    typo (``fid.resize_mode`` for ``fid.mode``) never changes the protocol silently. ``others_allowed`` passes over
    options read by other registered metrics (a run that computes its metrics group by group checks the whole
    list once, up front).
    """
    import difflib

    specs = [get_metric(n) for n in names]
    valid: dict[str, OptionSpec] = {o.key: o for s in specs for o in s.options}
    readers = {o.key: s.name for s in _TABLE.values() for o in s.options}
    for key, value in options.items():
        spec = valid.get(key)
        if spec is None:
            if key in readers and others_allowed:
                continue
            if key in readers:
                raise MetricOptionError(
                    f"option {key} is read by metric {readers[key]!r}, which is not among the requested metrics "
                    f"({', '.join(names)}); it would do nothing: drop it or add {readers[key]} to --metrics")
            close = difflib.get_close_matches(key, list(valid) or list(readers), n=1, cutoff=0.5)
            hint = f" Did you mean {close[0]}?" if close else ""
            listing = ", ".join(sorted(valid)) if valid else "none"
            raise MetricOptionError(f"unknown option {key!r} for metrics {', '.join(names)}.{hint} Valid options: "
                                    f"{listing}")
        spec.check(value)


def required_weights(names: Sequence[str], options: Mapping[str, Any]) -> list[str]:
    """Weights-registry keys the metrics ``names`` need under ``options`` (face detectors excluded: see
    :mod:`.preflight`), in order, without duplicates."""
    keys: list[str] = []
    for spec in (get_metric(n) for n in names):
        for key in spec.weights:
            keys.append(key)
        for opt in spec.options:
            keys.extend(opt.weights_for(options.get(opt.key)))
    return list(dict.fromkeys(keys))


def compute_metrics(names: Sequence[str], request: ScoreRequest) -> list[Any]:
    """Run the compute functions for ``names`` (each function once) and return the MetricResults asked for.

    Each result gets its uncertainty interval here, once, at scoring time
    (:func:`dicetalk_bench.metrics.intervals.with_interval`, seeded with ``request.seed``), and results with
    reference features the reference set's content hash (``protocol["reference_sha256"]``). A metric whose compute
    function raises propagates the error: the caller (the CLI) decides whether one failed
    metric stops the run.
    """
    specs = [get_metric(n) for n in names]
    for spec in specs:
        if spec.needs_reference and request.reference is None:
            raise MetricRegistryError(f"metric {spec.name!r} needs a reference set: pass --reference DIR")
    check_options([s.name for s in specs], request.options, others_allowed=True)
    wanted = {s.name for s in specs}
    request = dataclasses.replace(request, metrics=tuple(s.name for s in specs))
    results: list[Any] = []
    done: set[str] = set()
    for spec in specs:
        if spec.compute in done:
            continue
        done.add(spec.compute)
        out = spec.load_compute()(request)
        outs = [out] if not isinstance(out, (list, tuple)) else list(out)
        for r in outs:
            if getattr(r, "key", None) in wanted:
                results.append(r)
    from dicetalk_bench.metrics.intervals import with_interval
    from dicetalk_bench.metrics.result import with_reference_sha256

    return [with_interval(with_reference_sha256(r), seed=request.seed) for r in results]
