"""The metric registry: one table of every metric's name, direction, description and compute function.

A metric's direction (``higher_is_better``) is data here, not a detail of a report template (lm-evaluation-harness
habit); names are checked and duplicates refused (torch-fidelity habit). Importing this module is cheap: compute
functions are given as ``"module:function"`` strings and imported only when a metric is run.

Every compute function has the signature::

    fn(request: ScoreRequest) -> MetricResult | Sequence[MetricResult]

It may return several results at once (e.g. Sync-C and Sync-D from one SyncNet pass); when two names share one
compute function, :func:`compute_metrics` calls it once and keeps the results whose key was asked for.

How to add a metric (metrics helper B and later authors) -- either way works:

1. add a line to ``_BUILTIN`` below, e.g.
   ``MetricSpec(SYNC_C, True, "SyncNet confidence (LSE-C)", "dicetalk_bench.metrics.sync:score_sync")``; or
2. call :func:`register` from your own module, and list that module in ``PROVIDER_MODULES`` so the CLI imports it
   before dispatching (it must stay importable without side effects beyond the registration).

Names are lower case, start with a letter, and use only ``a-z``, ``0-9`` and ``-`` (``^[a-z][a-z0-9-]*$``).
"""

from __future__ import annotations

import dataclasses
import importlib
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

# ---------------------------------------------------------------------------------------------------------------
# Metric keys (use these constants, never string literals, in code that produces or reads results)
# ---------------------------------------------------------------------------------------------------------------
FID = "fid"
KID = "kid"
FVD = "fvd"
SYNC_C = "sync-c"
SYNC_D = "sync-d"
EMO_ACC = "emo-acc"
CSIM = "csim"
PSNR = "psnr"
SSIM = "ssim"
LPIPS = "lpips"

_NAME_RE = re.compile(r"^[a-z][a-z0-9-]*$")
_COMPUTE_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


class MetricRegistryError(ValueError):
    """A bad registration (invalid or duplicate name, malformed compute path) or an unknown metric name."""


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
    statistics (None: no caching).
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

    def option(self, metric: str, name: str, default: Any = None) -> Any:
        """``options["<metric>.<name>"]`` or ``default``."""
        return self.options.get(f"{metric}.{name}", default)


# ---------------------------------------------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------------------------------------------
_BUILTIN: tuple[MetricSpec, ...] = (
    MetricSpec(FID, False, "Frechet Inception Distance over all frames (InceptionV3 pool3, 2048-d)",
               "dicetalk_bench.metrics.fid:score_fid", needs_reference=True),
    MetricSpec(KID, False, "Kernel Inception Distance (cubic polynomial-kernel MMD^2, unbiased) over all frames",
               "dicetalk_bench.metrics.fid:score_fid", needs_reference=True),
    MetricSpec(FVD, False, "Frechet Video Distance (I3D Kinetics-400 logits of 16-frame clips)",
               "dicetalk_bench.metrics.fvd:score_fvd", needs_reference=True),
    # metrics helper B: face metrics (dicetalk_bench/metrics/scoring_faces.py)
    MetricSpec(SYNC_C, True, "SyncNet confidence (LSE-C): median - min of the mean distance over 31 audio shifts",
               "dicetalk_bench.metrics.scoring_faces:score_sync"),
    MetricSpec(SYNC_D, False, "SyncNet distance (LSE-D): min over 31 audio shifts of the mean embedding distance",
               "dicetalk_bench.metrics.scoring_faces:score_sync"),
    MetricSpec(EMO_ACC, True, "Video-level emotion accuracy (%) over the 8 MEAD emotions (Emotion-FAN, EAT protocol)",
               "dicetalk_bench.metrics.scoring_faces:score_emo_acc"),
    MetricSpec(CSIM, True, "Identity cosine similarity (ArcFace-R100) of generated frames to the reference frame",
               "dicetalk_bench.metrics.scoring_faces:score_csim", needs_reference=True),
    MetricSpec(PSNR, True, "Peak signal-to-noise ratio (dB) against the paired ground-truth frames",
               "dicetalk_bench.metrics.scoring_faces:score_psnr", needs_reference=True),
    MetricSpec(SSIM, True, "Structural similarity against the paired ground-truth frames (Gaussian 11x11, RGB)",
               "dicetalk_bench.metrics.scoring_faces:score_ssim", needs_reference=True),
    MetricSpec(LPIPS, False, "LPIPS (AlexNet, v0.1) against the paired ground-truth frames",
               "dicetalk_bench.metrics.scoring_faces:score_lpips", needs_reference=True),
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
