"""Leaderboard tables -> a self-contained folder: ``index.html``, ``results.json``, ``results.csv``, ``results.tex``,
copies of the raw results files and the sample clips (:func:`write_leaderboard`).

Each file has its own module: :mod:`.page_html` (the page, with :mod:`.page_assets` and :mod:`.page_details`),
:mod:`.export_json`, :mod:`.export_csv`, :mod:`.export_latex`; the cell text they share is in :mod:`.cell_text`.
Their public names are importable from here too.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dicetalk_bench.fileutil import atomic_write_bytes
from dicetalk_bench.metrics.result import json_types
from dicetalk_bench.reports.cell_text import (PINNED_NOTE, UNCALIBRATED_NOTE, esc, failure_text, half_width,
                                              interval_text, metric_formatter, pct, reproduce_text, short_hash)
from dicetalk_bench.reports.clip_strip import StripConfig
from dicetalk_bench.reports.export_csv import csv_safe, tables_to_csv
from dicetalk_bench.reports.export_json import (LEADERBOARD_SCHEMA, LEADERBOARD_SCHEMA_VERSION, results_document,
                                                tables_to_dict)
from dicetalk_bench.reports.export_latex import tables_to_latex, tex_escape
from dicetalk_bench.reports.layout import fmt
from dicetalk_bench.reports.leaderboard import BootstrapConfig, Table
from dicetalk_bench.reports.page_html import (CI_METHOD_NAMES, KIND_NOTES, LICENCE_NOTE, interval_levels,
                                              tables_to_html)
from dicetalk_bench.reports.per_emotion import per_emotion_records

__all__ = ["CI_METHOD_NAMES", "KIND_NOTES", "LEADERBOARD_SCHEMA", "LEADERBOARD_SCHEMA_VERSION", "LICENCE_NOTE",
           "PINNED_NOTE", "UNCALIBRATED_NOTE", "csv_safe", "esc", "failure_text", "fmt", "half_width",
           "interval_levels", "interval_text", "metric_formatter", "pct", "per_emotion_records", "reproduce_text",
           "results_document", "short_hash", "tables_to_csv", "tables_to_dict", "tables_to_html", "tables_to_latex",
           "tex_escape", "write_leaderboard"]


def _raw_links(tables: Sequence[Table], out: Path) -> dict[str, str]:
    """Copy every row's results file to ``out/raw/<dataset>/<method>.json``; returns source path -> relative link."""
    from dicetalk_bench.reports.runs import safe_file_stem

    raw_links: dict[str, str] = {}
    for t in tables:
        for r in t.rows:
            rel = f"raw/{safe_file_stem(t.dataset)}/{safe_file_stem(r.method)}.json"
            k = 2
            while rel in raw_links.values():  # two names with the same safe stem ("a<b", "a_b")
                rel = f"raw/{safe_file_stem(t.dataset)}/{safe_file_stem(r.method)}-{k}.json"
                k += 1
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(out / rel, Path(r.source).read_bytes())
            raw_links[r.source] = rel
    return raw_links


def write_leaderboard(tables: Sequence[Table], out_dir: str | Path, boot: BootstrapConfig, *,
                      title: str = "dicetalk_bench leaderboard", published: Sequence[Any] = (),
                      strip: StripConfig = StripConfig(), banner: str = "") -> dict[str, Path]:
    """Write index.html, results.json, results.csv, results.tex, raw/<dataset>/<file>.json copies of the runs'
    results files and the sample clips under media/ (:mod:`.clip_strip`), so the folder is self-contained;
    returns the paths by name."""
    from dicetalk_bench.reports.clip_strip import build_strip

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    raw_links = _raw_links(tables, out)
    paths = {"html": out / "index.html", "json": out / "results.json", "csv": out / "results.csv",
             "latex": out / "results.tex"}
    strips = {t.dataset: build_strip(t, out, strip) for t in tables}
    doc = results_document(tables, boot, strips=strips, published=published)
    atomic_write_bytes(paths["json"], (json.dumps(json_types(doc), indent=2, allow_nan=False) + "\n").encode())
    atomic_write_bytes(paths["csv"], tables_to_csv(tables).encode())
    atomic_write_bytes(paths["latex"], tables_to_latex(tables).encode())
    atomic_write_bytes(paths["html"], tables_to_html(tables, boot, title=title, raw_links=raw_links,
                                                     published=published, strips=strips,
                                                     banner=banner).encode())
    return paths
