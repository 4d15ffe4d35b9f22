"""Score a list of metrics on one request: check the options and weights first, then compute each metric group.

:func:`score_metrics` returns the results (used by ``python -m dicetalk_bench.metrics score`` and by the evaluation
runs, :mod:`dicetalk_bench.evaluation.run`); :func:`run_score` also writes them to one results file;
:func:`default_cache_dir` is where reference-set features are cached unless a folder is given.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Any

from dicetalk_bench.errors import SetupError

logger = logging.getLogger("dicetalk_bench.metrics")


def default_cache_dir() -> Path:
    """The reference-feature cache: ``$XDG_CACHE_HOME/dicetalk_bench/metrics`` (``~/.cache`` when unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "dicetalk_bench" / "metrics"


def score_metrics(names: list[str], request: Any, *, keep_going: bool = False) -> tuple[list[Any], list[str]]:
    """Check the options and the weights of ``names`` and compute them (one registry call per metric group);
    returns (results, names of failed metrics).

    Set-up errors (a bad option, missing weights: found before any video is decoded) and, without ``keep_going``,
    any error of a metric propagate. With ``keep_going`` a failed metric group is logged and the others go on; when
    every metric failed a SetupError says so.
    """
    from dicetalk_bench.metrics.preflight import check_weights
    from dicetalk_bench.metrics.registry import check_options, compute_metrics, get_metric

    check_options(names, request.options)
    check_weights(names, request)
    results = []
    failed: list[str] = []
    groups: dict[str, list[str]] = {}
    for n in names:
        groups.setdefault(get_metric(n).compute, []).append(n)
    from tqdm.auto import tqdm

    bar = tqdm(groups.values(), desc="scoring", unit="group", total=len(groups), disable=None)
    for group in bar:
        bar.set_postfix_str(",".join(group))
        try:
            results.extend(compute_metrics(group, dataclasses.replace(request)))
        except Exception as exc:  # noqa: BLE001 -- only with --keep-going; otherwise re-raised at once
            if not keep_going:
                raise
            logger.error("metric %s failed: %s", ", ".join(group), exc)
            failed.extend(group)
    if not results:
        raise SetupError(f"every requested metric failed ({', '.join(failed)}); no results file written")
    for r in results:
        cal = "" if r.calibrated else " (uncalibrated weights)"
        failures = f", {len(r.failures)} of {r.n_attempted} videos failed" if r.failures else ""
        logger.info("%s = %s on %d videos%s%s", r.key, r.value, r.n_videos, failures, cal)
    return results, failed


def run_score(names: list[str], request: Any, out: Path, *, keep_going: bool = False) -> int:
    """Compute ``names`` (:func:`score_metrics`) and write ``out`` (whole, or not at all); returns the exit code
    (1 when a metric failed under ``keep_going``)."""
    from dicetalk_bench.metrics.result import save_results

    results, failed = score_metrics(names, request, keep_going=keep_going)
    save_results(results, out)
    logger.info("wrote %s", out)
    return 1 if failed else 0
