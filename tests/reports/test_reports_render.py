"""Leaderboard files: escaped self-contained HTML, CSV and LaTeX contents, results.json."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
from reports_helpers import metric

from dicetalk_bench.reports.leaderboard import BootstrapConfig, build_tables
from dicetalk_bench.reports.leaderboard import Cell
from dicetalk_bench.reports.render import (LICENCE_NOTE, UNCALIBRATED_NOTE, csv_safe, esc, fmt, interval_text,
                                           tables_to_latex, tex_escape, write_leaderboard)
from dicetalk_bench.reports.runs import find_runs

BOOT = BootstrapConfig(resamples=200, set_resamples=0)
EVIL = '<script>alert("x")</script> & co'


@pytest.fixture
def board(write_results, tmp_path):
    write_results(EVIL, "mead", [metric("fid", 12.5, False), metric("psnr", 30.0, True, {"a": 29.0, "b": 31.0})])
    write_results("plain_b", "mead", [metric("fid", 10.0, False, calibrated=False),
                                      metric("psnr", 25.0, True, {"a": 25.0, "b": 25.0})])
    write_results("plain_c", "mead", [metric("fid", 11.0, False), metric("psnr", 20.0, True, {"a": 19.0, "b": 21.0})])
    write_results("hd", "hdtf", [metric("ssim", 0.8, True, {"a": 0.8, "b": 0.8})])
    tables = build_tables(find_runs(write_results.root), BOOT)
    return tables, write_leaderboard(tables, tmp_path / "board", BOOT)


def _rows_of(page: str, section: str) -> list[str]:
    body = page.split(f'id="{section}"')[1].split("</section>")[0]
    board = body.split('<table class="board">')[1].split("</table>")[0]
    return re.findall(r"<tr.*?</tr>", board.split("<tbody>")[1])


def test_html_escapes_every_string_from_the_results(board):
    page = board[1]["html"].read_text()
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; co" in page
    # only our own inline script block exists
    assert page.count("<script>") == 1 and page.count("</script>") == 1
    assert esc("<a href='x'>") == "&lt;a href=&#x27;x&#x27;&gt;"


def test_html_is_self_contained(board):
    page = board[1]["html"].read_text()
    assert "<link" not in page and " src=" not in page and "http://" not in page and "https://" not in page
    assert "<style>" in page and page.startswith("<!DOCTYPE html>")


def test_html_marks_best_and_second_by_direction_and_shows_arrows(board):
    page = board[1]["html"].read_text()
    tables = board[0]
    mead_id = f"ds-{[t.dataset for t in tables].index('mead')}"
    rows = _rows_of(page, mead_id)
    by_method = {("plain_b" if "plain_b" in r else "plain_c" if "plain_c" in r else "evil"): r for r in rows}
    cells = {m: re.findall(r'<td class="([^"]*)" data-sort="([^"]*)"', r)[1:] for m, r in by_method.items()}
    # columns in the field's groups: PSNR (image quality, higher better) then FID (distribution, lower better)
    assert cells["plain_b"][1][0] == "best" and cells["plain_c"][1][0] == "second" and cells["evil"][1][0] == ""
    assert cells["evil"][0][0] == "best" and cells["plain_b"][0][0] == "second" and cells["plain_c"][0][0] == ""
    assert 'data-hib="false"' in page and 'data-hib="true"' in page
    assert "FID \u2193" in page and "PSNR \u2191" in page
    assert "\u00b1" in page and "n=2" in page


def test_html_tabs_provenance_glossary_and_footer(board):
    page = board[1]["html"].read_text()
    assert page.count('<section class="dataset"') == 2 and ">HDTF</button>" in page and ">MEAD</button>" in page
    # hooks for scripts and browser tests (tests/reports/test_browser.py drives them)
    assert page.count('role="tab"') == 2 and page.count('role="tabpanel"') == 2 and 'role="tablist"' in page
    # per tab, metric columns in the field's groups (image quality before distribution)
    sections = {m.group(1): m.group(2) for m in re.finditer(r'<section class="dataset"[^>]*><h2>(\w+)</h2>(.*?)</section>', page, re.S)}
    boards = {name: re.search(r'<table class="board">.*?</table>', body, re.S).group(0) for name, body in sections.items()}
    assert {name: re.findall(r'<th [^>]*data-metric="([^"]+)"', b) for name, b in boards.items()} == {"MEAD": ["psnr", "fid"], "HDTF": ["ssim"]}
    assert sum(re.findall(r'<tr [^>]*data-row-kind="([^"]+)"', b).count("method") for b in boards.values()) == 4
    assert UNCALIBRATED_NOTE in page and 'class="kind-method uncalibrated"' in page
    assert esc(LICENCE_NOTE) in page and "CC BY-NC-SA 4.0" in LICENCE_NOTE and "MEAD" in LICENCE_NOTE
    assert "Metric glossary" in page and "protocol of fid" in page
    assert "fefefefefefe" in page and "c0ffeec0ffee" in page and "2026-01-02T03:04:05Z" in page  # provenance
    assert "Frechet Inception Distance" in page  # description from the registry
    raw = re.findall(r'<a href="(raw/[^"]+)"', page)
    assert len(raw) == 4 and all((board[1]["html"].parent / r).is_file() for r in raw)


def test_csv_has_one_line_per_run_with_values_and_intervals(board):
    rows = list(csv.DictReader(io.StringIO(board[1]["csv"].read_text())))
    assert [(r["dataset"], r["method"]) for r in rows] == [("mead", EVIL), ("mead", "plain_b"), ("mead", "plain_c"),
                                                          ("hdtf", "hd")]
    evil = rows[0]
    assert float(evil["fid"]) == 12.5 and float(evil["psnr"]) == 30.0 and evil["psnr_n_videos"] == "2"
    assert 29.0 <= float(evil["psnr_ci_low"]) < 30.0 < float(evil["psnr_ci_high"]) <= 31.0
    assert evil["fid_ci_low"] == "" and evil["ssim"] == "" and evil["calibrated"] == "True"
    assert rows[1]["calibrated"] == "False" and float(rows[1]["psnr_ci_low"]) == 25.0
    assert rows[3]["checkpoint_sha256"] == "fe" * 32 and rows[0]["config_hash"] == "0123456789abcdef"


def test_latex_marks_escapes_and_directions(board):
    tex = board[1]["latex"].read_text()
    mead = tex.split("% dataset: mead")[1]
    assert "Method & PSNR $\\uparrow$ & FID $\\downarrow$" in mead
    assert "\\multicolumn{1}{c}{Image quality} & \\multicolumn{1}{c}{Distribution}" in mead
    lines = {ln.split(" & ")[0]: ln for ln in mead.splitlines()
             if " & " in ln and "Method" not in ln and "multicolumn" not in ln}
    assert lines["plain\\_b$^\\dagger$"].split(" & ")[2] == "\\textbf{10.00} \\\\"  # FID: 2 decimals
    assert lines["plain\\_c"].split(" & ")[2] == "\\underline{11.00} \\\\"
    assert "\\textbf{30.00}" in lines[tex_escape(EVIL)]
    assert "\\textless{}script\\textgreater{}" in tex and "\\&" in tex and "<script>" not in tex
    assert UNCALIBRATED_NOTE in tex
    assert tables_to_latex(board[0]) == tex  # deterministic


def test_results_json_carries_directions_marks_and_provenance(board):
    doc = json.loads(board[1]["json"].read_text())
    assert doc["schema"] == "dicetalk_bench.leaderboard" and doc["bootstrap"]["resamples"] == 200
    mead = next(d for d in doc["datasets"] if d["dataset"] == "mead")
    assert [(c["key"], c["higher_is_better"]) for c in mead["columns"]] == [("psnr", True), ("fid", False)]
    marks = {r["method"]: r["metrics"]["fid"]["mark"] for r in mead["rows"]}
    assert marks == {EVIL: None, "plain_b": "best", "plain_c": "second"}
    assert mead["rows"][0]["provenance"]["git_commit"] == "c0ffee" * 6


@pytest.mark.parametrize("value, text", [(12.3456, "12.35"), (0.000123456, "0.0001235"), (12345.6, "12346"),
                                         (None, "\u2013"), (float("nan"), "NaN"), (0.0, "0"),
                                         (3e-7, "3.000e-07")])
def test_number_format(value, text):
    assert fmt(value) == text


def test_interval_shown_as_half_width_only_when_symmetric():
    assert interval_text(Cell(value=10.0, ci=(9.0, 11.0))) == "\u00b1 1"
    assert interval_text(Cell(value=11.9, ci=(10.1, 14.6))) == "[10.1\u201314.6]"
    assert interval_text(Cell(value=11.9, ci=(10.1, 14.6)), pm="$\\pm$ ", dash="--") == "[10.1--14.6]"
    assert interval_text(Cell(value=11.9)) is None


def test_non_finite_values_are_shown_as_what_they_are(write_results, tmp_path):
    write_results("a", "mead", [metric("psnr", float("inf"), True, {"x": float("inf"), "y": float("inf")})])
    write_results("b", "mead", [metric("psnr", float("nan"), True, {"x": float("nan"), "y": 1.0})])
    write_results("c", "mead", [metric("psnr", 30.0, True, {"x": 30.0, "y": 30.0})])
    tables = build_tables(find_runs(write_results.root), BOOT)
    paths = write_leaderboard(tables, tmp_path / "board", BOOT)
    assert (fmt(float("inf")), fmt(float("-inf")), fmt(float("nan")), fmt(None)) == ("inf", "-inf", "NaN", "\u2013")
    page = paths["html"].read_text()
    assert '<span class="v">inf</span>' in page and '<span class="v">NaN</span>' in page
    doc = json.loads(paths["json"].read_text())
    values = {r["method"]: r["metrics"]["psnr"]["value"] for r in doc["datasets"][0]["rows"]}
    assert values == {"a": "inf", "b": "nan", "c": 30.0}


@pytest.mark.parametrize("text, safe", [("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"), ("+1+2", "'+1+2"),
                                        ("-cmd", "'-cmd"), ("@SUM(A1)", "'@SUM(A1)"), ("\tx", "'\tx"),
                                        ("\rx", "'\rx"), ("-1.5", "-1.5"), ("+2", "+2"), ("-inf", "-inf"),
                                        ("plain", "plain"), ("", ""), (-1.5, -1.5)])
def test_csv_cells_that_a_spreadsheet_would_run_are_neutralised(text, safe):
    assert csv_safe(text) == safe


def test_csv_file_neutralises_method_names_and_keeps_negative_numbers(write_results, tmp_path):
    write_results("=cmd|' /C calc'!A0", "mead", [metric("zz-signed", -1.5, True, {"a": -1.0, "b": -2.0})])
    tables = build_tables(find_runs(write_results.root), BOOT)
    rows = list(csv.DictReader(io.StringIO(write_leaderboard(tables, tmp_path / "b", BOOT)["csv"].read_text())))
    assert rows[0]["method"] == "'=cmd|' /C calc'!A0"
    assert rows[0]["zz-signed"] == "-1.5" and float(rows[0]["zz-signed_ci_low"]) < -1.5


def test_page_breakdown_and_confusion_match_independent_counts(write_results, tmp_path):
    import dataclasses
    from collections import defaultdict

    import numpy as np

    from dicetalk_bench.reports.render import tables_to_html

    rng = np.random.default_rng(0)
    emotions = ["angry", "happy", "sad"]
    ids = [f"mead/M003/front/{emotions[i % 3]}/level_{1 + i % 2}/{i:03d}" for i in range(18)]
    psnr = {cid: float(rng.normal(30, 2)) for cid in ids}
    write_results("m", "mead", [metric("psnr", float(np.mean(list(psnr.values()))), True, psnr)])
    labels = ["angry", "contempt", "disgusted", "fear", "happy", "neutral", "sad", "surprised"]
    conf = rng.integers(0, 4, (8, 8)).tolist()
    emo = metric("emo-acc", 50.0, True, {ids[0]: 1.0, ids[1]: 0.0})
    emo = dataclasses.replace(emo, extra={"confusion": conf, "labels_order": labels})
    write_results("e", "mead", [emo])
    write_results("real", "mead", [dataclasses.replace(emo, extra={"confusion": np.eye(8, dtype=int).tolist(),
                                                                  "labels_order": labels})], row_kind="ceiling")
    boot = BootstrapConfig(resamples=20, set_resamples=0)
    page = tables_to_html(build_tables(find_runs(write_results.root), boot), boot)
    sums, counts = defaultdict(float), defaultdict(int)
    for cid, v in psnr.items():
        e, lv = cid.split("/")[3], int(cid.split("/")[4][-1])
        sums[(e, lv)] += v
        counts[(e, lv)] += 1
    section = page[page.index('data-method="m"'):]
    section = section[:section.index("</details>")]
    for (e, lv), n in counts.items():
        cell = re.search(rf'data-emotion="{e}" data-level="{lv}" data-n="(\d+)">([^ ]+) ', section)
        assert cell and int(cell[1]) == n and float(cell[2]) == pytest.approx(sums[(e, lv)] / n, abs=5e-3 * abs(sums[(e, lv)] / n))
    emo_section = page[page.index('data-method="e"'):]
    emo_section = emo_section[:emo_section.index("</details>")]
    svgs = re.findall(r"<svg class=\"confusion\".*?</svg>", emo_section)
    assert len(svgs) == 2  # the method's matrix and the ceiling's beside it
    counts_back = [int(x) for x in re.findall(r'data-count="(\d+)"', svgs[0])]
    assert len(counts_back) == 64 and counts_back == [c for row in conf for c in row]
