"""Build the static leaderboard (index.html, results.json/.csv/.tex) from a folder of results files."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

logger = logging.getLogger("dicetalk_bench.evaluate")


def run_leaderboard(results_dir: Path, out_dir: Path, *, resamples: int = 1000, set_resamples: int = 100,
                    level: float = 0.95, seed: int = 0, title: str = "dicetalk_bench leaderboard",
                    max_failure_excess: float = 0.01, recompute_intervals: bool = False,
                    published: Sequence[Path] = (), shipped_published: bool = True,
                    column_groups: Sequence[str] | None = None, sample_clips: int = 4,
                    sample_seed: int = 0, banner: str = "") -> dict[str, Path]:
    """Read every results file under ``results_dir`` and write the leaderboard files into ``out_dir``; returns
    the written files by kind (``html``, ...).

    Cells show the intervals stored in the results; ``recompute_intervals`` recomputes them at these settings
    (the per-video features are then loaded). ``column_groups``: order of the metric groups
    (:mod:`dicetalk_bench.reports.layout`); ``sample_clips`` clips per dataset drawn with ``sample_seed`` are shown
    as stills and videos (:mod:`dicetalk_bench.reports.clip_strip`)."""
    from dicetalk_bench.reports.clip_strip import StripConfig
    from dicetalk_bench.reports.layout import DEFAULT_GROUP_ORDER, PageLayout
    from dicetalk_bench.reports.leaderboard import BootstrapConfig, MarkingConfig, build_tables
    from dicetalk_bench.reports.published import load_published
    from dicetalk_bench.reports.render import write_leaderboard
    from dicetalk_bench.reports.runs import find_runs

    boot = BootstrapConfig(resamples=resamples, set_resamples=set_resamples, level=level, seed=seed,
                           recompute=recompute_intervals)
    marking = MarkingConfig(max_failure_excess=max_failure_excess)
    runs = find_runs(results_dir, load_features=recompute_intervals and set_resamples > 0)
    rows = (load_published() if shipped_published else []) + (load_published(list(published)) if published else [])
    layout = PageLayout(group_order=tuple(column_groups or DEFAULT_GROUP_ORDER))
    paths = write_leaderboard(build_tables(runs, boot, marking, layout), out_dir, boot, title=title, published=rows,
                              strip=StripConfig(n_clips=sample_clips, seed=sample_seed), banner=banner)
    logger.info("leaderboard of %d results files written to %s", len(runs), paths["html"])
    return paths
