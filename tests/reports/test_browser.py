"""The leaderboard page in a real browser: headless Chromium (Debian's ``chromium``) driven by Playwright.

One browser per module, shared by the tests; each test opens the page in a fresh context. The site is built from
results files written here with the real save API (method, ceiling and baseline rows on MEAD, two methods on HDTF,
the shipped published MEAD rows). Without Playwright or chromium the tests are skipped with the reason (they fail
under ``DICETALK_BENCH_REQUIRE_OPTIONAL=1``, as in CI). Playwright never downloads a browser here: it launches the
system one.

``DICETALK_BENCH_WRITE_SCREENSHOTS=1`` writes the page's full-page screenshots (laptop width 1280 px and phone
width 390 px, one row's breakdown folded out) to ``docs/images/`` instead of pytest's temporary folder::

    DICETALK_BENCH_WRITE_SCREENSHOTS=1 python -m pytest -q tests/reports/test_browser.py -k screenshots
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from browser_pages import (REFERENCES_JS, chromium_browser, compact_png, open_page, png_size, screenshot_folder,
                           unresolved_references)
from reports_helpers import metric, results_writer

from dicetalk_bench.reports.leaderboard import BootstrapConfig, build_tables
from dicetalk_bench.reports.published import load_published
from dicetalk_bench.reports.render import write_leaderboard
from dicetalk_bench.reports.runs import find_runs

EVIL = "<script>alert(1)</script>"
EMOTIONS = ["angry", "contempt", "disgusted", "fear", "happy", "neutral", "sad", "surprised"]
BOOT = BootstrapConfig(resamples=200, set_resamples=0)
SCREEN_WIDTHS = {"laptop": 1280, "phone": 390}
DIRECTIONS = {"fid": False, "sync-c": True, "psnr": True, "csim": True, "emo-acc": True, "ssim": True}
# (method, row kind) -> the table's values; None: the row has no result for that metric
MEAD = {
    ("DICE-Talk", "method"): {"fid": 48.1, "sync-c": 6.9, "psnr": 21.4, "csim": 0.71, "emo-acc": 62.5},
    ("Sonic", "method"): {"fid": 41.7, "sync-c": 7.4, "psnr": 20.2, "csim": 0.74, "emo-acc": None},
    ("EAT (ours, retrained)", "method"): {"fid": 55.3, "sync-c": 6.1, "psnr": 22.0, "csim": 0.66, "emo-acc": 54.2},
    (EVIL, "method"): {"fid": 60.2, "sync-c": 5.2, "psnr": 19.1, "csim": 0.61, "emo-acc": 37.5},
    ("real video", "ceiling"): {"fid": 9.8, "sync-c": 8.1, "psnr": 100.0, "csim": 0.93, "emo-acc": 85.4},
    ("static frame", "baseline"): {"fid": 38.0, "sync-c": 0.4, "psnr": 23.5, "csim": 0.97, "emo-acc": 12.5},
}
HDTF = {("DICE-Talk", "method"): {"psnr": 24.3, "ssim": 0.81}, ("Sonic", "method"): {"psnr": 25.1, "ssim": 0.79}}


@dataclasses.dataclass(frozen=True)
class Site:
    """The built leaderboard folder, its page, and what the test data says the page must show."""

    folder: Path
    index: Path
    clip_ids: list[str]
    confusion_truth: dict[str, dict[str, str]]  # method -> clip id -> true emotion of the videos it classified


def _clip_ids(per_cell: int = 3) -> list[str]:
    """MEAD clip ids: every emotion at levels 1 and 2, ``per_cell`` sentences each (48 with the default)."""
    return [f"mead/M003/front/{e}/level_{lv}/{s:03d}" for e in EMOTIONS for lv in (1, 2) for s in range(per_cell)]


def _per_video(value: float, ids: list[str], rng: np.random.Generator) -> dict[str, float]:
    """Per-video values whose mean is exactly ``value`` (a zero-mean spread added to it)."""
    noise = rng.normal(0.0, 0.05 * abs(value) + 0.01, len(ids))
    noise -= noise.mean()
    return {cid: float(value + d) for cid, d in zip(ids, noise)}


def _emotion_result(accuracy: float, ids: list[str], rng: np.random.Generator):
    """An emo-acc result with that accuracy (per cent) over ``ids``: predictions right for a random share of the
    clips, wrong ones drawn among the other emotions, and the confusion matrix they give."""
    from dicetalk_bench.reports.confusion import confusion_from_predictions

    truth = {cid: cid.split("/")[3] for cid in ids}
    n_right = round(accuracy / 100.0 * len(ids))
    right = set(rng.permutation(ids)[:n_right].tolist())
    predicted = {cid: t if cid in right else rng.choice([e for e in EMOTIONS if e != t]) for cid, t in truth.items()}
    per_video = {cid: float(predicted[cid] == truth[cid]) for cid in ids}
    conf = confusion_from_predictions(truth, predicted, EMOTIONS)
    result = metric("emo-acc", 100.0 * n_right / len(ids), True, per_video)
    return dataclasses.replace(result, extra={"confusion": conf.tolist(), "labels_order": EMOTIONS}), truth


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Site:
    root = tmp_path_factory.mktemp("browser")
    write = results_writer(root / "results")
    rng = np.random.default_rng(0)
    ids = _clip_ids()
    truths: dict[str, dict[str, str]] = {}
    for dataset, rows in (("mead", MEAD), ("hdtf", HDTF)):
        for (method, kind), values in rows.items():
            results = []
            for key, value in values.items():
                if value is None:
                    continue
                if key == "emo-acc":
                    res, truths[method] = _emotion_result(value, ids, rng)
                    results.append(res)
                elif key == "fid":
                    results.append(metric(key, value, DIRECTIONS[key]))
                else:
                    results.append(metric(key, value, DIRECTIONS[key], _per_video(value, ids, rng)))
            write(method, dataset, results, **({} if kind == "method" else {"row_kind": kind}))
    tables = build_tables(find_runs(write.root), BOOT)
    paths = write_leaderboard(tables, root / "site", BOOT, published=load_published())
    return Site(folder=paths["html"].parent, index=paths["html"], clip_ids=ids, confusion_truth=truths)


@pytest.fixture(scope="module")
def browser():
    yield from chromium_browser()


@pytest.fixture
def opened(browser, site):
    o = open_page(browser, site.index.as_uri())
    yield o
    o.page.context.close()


def _section_of(page, dataset: str):
    """The locator of a dataset's section (its tab's panel), found through the tab that names it."""
    target = page.locator('[role="tab"]', has_text=dataset.upper()).get_attribute("data-target")
    return page.locator(f'section[id="{target}"]')


def _board_rows(section) -> list[dict]:
    """The score table's rows in display order: method name, row kind, per metric the sort value and mark."""
    return section.locator("table.board").evaluate("""t => {
        const keys = [];  // body column -> metric key (the grouped header has two rows; data-col is the body column)
        t.tHead.querySelectorAll('th[data-col]').forEach(th => { keys[+th.dataset.col] = th.dataset.metric || null; });
        return Array.from(t.tBodies[0].rows).map(r => ({
            method: r.cells[0].dataset.sort, kind: r.dataset.rowKind,
            cells: Object.fromEntries(keys.map((k, i) => [k, {sort: r.cells[i].dataset.sort,
                mark: r.cells[i].classList.contains('best') ? 'best'
                    : r.cells[i].classList.contains('second') ? 'second' : null}]).filter(e => e[0]))}));
    }""")


# ------------------------------------------------------------------------------------------------------- loading
def test_page_loads_without_console_errors(opened):
    page = opened.page
    page.wait_for_load_state("networkidle")
    assert opened.errors == [] and opened.dialogs == []
    assert page.title() == "dicetalk_bench leaderboard"
    assert page.locator("table.board").count() == 2 and page.locator("table.board").first.is_visible()


def test_an_error_on_the_page_would_be_caught(browser, tmp_path):
    """The listeners above do see a script error and a missing file (so an empty list means something)."""
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><html><head><script>undefined_fn();</script></head><body>'
                   '<img src="missing.png"></body></html>')
    o = open_page(browser, bad.as_uri())
    try:
        assert any("undefined_fn" in e for e in o.errors) and any("missing.png" in e for e in o.errors)
    finally:
        o.page.context.close()


# ------------------------------------------------------------------------------------------------------- tabs
def test_dataset_tabs_switch_the_visible_table(opened):
    page = opened.page
    tabs = page.locator('[role="tablist"] [role="tab"]')
    assert tabs.all_inner_texts() == ["MEAD", "HDTF"]
    mead, hdtf = _section_of(page, "mead"), _section_of(page, "hdtf")
    assert mead.is_visible() and not hdtf.is_visible()
    assert tabs.nth(0).get_attribute("aria-selected") == "true" and tabs.nth(1).get_attribute("aria-selected") == "false"
    tabs.nth(1).click()
    assert hdtf.is_visible() and not mead.is_visible()
    assert tabs.nth(1).get_attribute("aria-selected") == "true" and tabs.nth(0).get_attribute("aria-selected") == "false"
    assert {r["method"] for r in _board_rows(hdtf)} == {m for m, _ in HDTF}
    assert hdtf.locator("table.board tbody tr").first.is_visible()
    tabs.nth(0).click()
    assert mead.is_visible() and not hdtf.is_visible()


# ------------------------------------------------------------------------------------------------------- sorting
def _expected_order(rows: dict, key: str, best_first: bool) -> list[str]:
    """Methods by ``key``: best first (or worst first), rows without a value last."""
    present = [(v[key], m) for (m, _), v in rows.items() if v.get(key) is not None]
    present.sort(reverse=DIRECTIONS[key] == best_first)
    return [m for _, m in present] + [m for (m, _), v in rows.items() if v.get(key) is None]


@pytest.mark.parametrize("key", ["fid", "sync-c", "emo-acc"])
def test_header_click_sorts_best_first_then_reverses(opened, key):
    section = _section_of(opened.page, "mead")
    header = section.locator(f'table.board th[data-metric="{key}"]')
    header.click()
    assert [r["method"] for r in _board_rows(section)] == _expected_order(MEAD, key, best_first=True)
    header.click()
    assert [r["method"] for r in _board_rows(section)] == _expected_order(MEAD, key, best_first=False)
    # the published rows below are a separate table: never reordered
    assert section.locator("tr.published-row td.name").first.inner_text().startswith("Real video")
    assert opened.errors == []


def test_sorting_moves_whole_rows(opened):
    section = _section_of(opened.page, "mead")
    before = {r["method"]: r for r in _board_rows(section)}
    section.locator('table.board th[data-metric="psnr"]').click()
    after = _board_rows(section)
    assert [r["method"] for r in after] != list(before)  # the order changed
    assert {r["method"]: r for r in after} == before  # every row kept its own cells


# ------------------------------------------------------------------------------------------------------- escaping
def test_script_in_a_method_name_stays_text(opened):
    page = opened.page
    page.wait_for_load_state("networkidle")
    cell = _section_of(page, "mead").locator('table.board tr[data-row-kind="method"] td.name', has_text=EVIL)
    assert cell.count() == 1 and cell.is_visible()
    assert cell.evaluate("td => td.firstChild.nodeValue") == EVIL  # a text node, not an element
    assert page.evaluate("document.scripts.length") == 1  # only the page's own script
    assert opened.dialogs == [] and opened.errors == []
    # the provenance table and the folded per-row details name it as text too
    assert page.locator("table.prov td.name", has_text=EVIL).first.inner_text() == EVIL
    assert page.locator("details.perrow summary", has_text=EVIL).count() == 1


# ------------------------------------------------------------------------------------------------------- marks
def test_only_method_rows_are_marked(opened):
    page = opened.page
    kinds = Counter(page.locator("table.board tr[data-row-kind], table.published tr[data-row-kind]").evaluate_all("rs => rs.map(r => r.dataset.rowKind)"))
    assert kinds["ceiling"] == 1 and kinds["baseline"] == 1 and kinds["published"] >= 6 and kinds["method"] == 6
    marked = page.locator("tr[data-row-kind] td.best, tr[data-row-kind] td.second").evaluate_all(
        "tds => tds.map(td => td.closest('tr').dataset.rowKind)")
    assert marked and set(marked) == {"method"}
    # every column has its best and second among the method rows, although a reference row scores better
    rows = _board_rows(_section_of(page, "mead"))
    for key, higher in ((k, DIRECTIONS[k]) for k in MEAD[("DICE-Talk", "method")]):
        marks = {r["method"]: r["cells"][key]["mark"] for r in rows}
        methods = [(v[key], m) for (m, kind), v in MEAD.items() if kind == "method" and v[key] is not None]
        methods.sort(reverse=higher)
        assert marks[methods[0][1]] == "best" and marks[methods[1][1]] == "second", key
        assert sum(1 for m in marks.values() if m) == 2, key
    assert MEAD[("real video", "ceiling")]["psnr"] > max(v["psnr"] for (_, k), v in MEAD.items() if k == "method")
    assert MEAD[("static frame", "baseline")]["csim"] > max(v["csim"] for (_, k), v in MEAD.items() if k == "method")


# ------------------------------------------------------------------------------------------------------- confusion
def test_confusion_matrix_has_64_cells_summing_to_the_emotion_counts(opened, site):
    page = opened.page
    details = page.locator('details.perrow[data-method="DICE-Talk"]').first
    svg = details.locator("svg.confusion").first
    assert not svg.is_visible()
    details.locator("summary").click()
    assert svg.is_visible()
    cells = svg.locator("rect[data-count]").evaluate_all(
        "rs => rs.map(r => [+r.dataset.row, +r.dataset.col, +r.dataset.count, r.getBBox().width])")
    assert len(cells) == 64 and all(w > 0 for *_, w in cells)  # drawn, not only present
    counts = np.zeros((8, 8), int)
    for i, j, n, _ in cells:
        counts[i, j] = n
    per_emotion = Counter(site.confusion_truth["DICE-Talk"].values())
    assert counts.sum(axis=1).tolist() == [per_emotion[e] for e in EMOTIONS]
    assert per_emotion == Counter(cid.split("/")[3] for cid in site.clip_ids)  # 6 videos of each emotion
    # the row labels state the same totals
    labels = svg.locator("text[text-anchor='end']").all_text_contents()
    assert labels == [f"{e} ({per_emotion[e]})" for e in EMOTIONS]
    # right answers are on the diagonal: its sum is the accuracy shown in the table
    acc = next(r for r in _board_rows(_section_of(page, "mead")) if r["method"] == "DICE-Talk")["cells"]["emo-acc"]
    assert 100.0 * np.trace(counts) / counts.sum() == pytest.approx(float(acc["sort"]))
    # the ceiling's matrix is drawn beside the method's
    assert details.locator("svg.confusion").count() == 2


# ------------------------------------------------------------------------------------------------------- local files
def test_every_src_and_link_is_a_file_inside_the_site(opened, site):
    refs = opened.page.evaluate(REFERENCES_JS)
    assert sum(1 for _, attr, v, _ in refs if attr == "href" and v.startswith("raw/")) == 8  # one per results file
    assert unresolved_references(opened.page, site.folder) == []


def test_reference_check_catches_missing_outside_and_remote_files(browser, tmp_path):
    folder = tmp_path / "site"
    (folder / "media").mkdir(parents=True)
    (folder / "media" / "clip.mp4").write_bytes(b"\0")
    (tmp_path / "outside.png").write_bytes(b"\0")
    page_file = folder / "index.html"
    page_file.write_text('<!DOCTYPE html><html><body><video src="media/clip.mp4" poster="../outside.png"></video>'
                         '<img src="media/none.png"><img srcset="media/clip.mp4 1x, https://example.org/a.png 2x">'
                         '<a href="#top">top</a><a href="media/clip.mp4">ok</a></body></html>')
    o = open_page(browser, page_file.as_uri())
    try:
        bad = unresolved_references(o.page, folder)
    finally:
        o.page.context.close()
    assert len(bad) == 3
    assert "outside.png" in bad[0] and "outside the site folder" in bad[0]
    assert "none.png" in bad[1] and "no such file" in bad[1]
    assert "example.org" in bad[2] and "not a local file" in bad[2]


# ------------------------------------------------------------------------------------------------------- screenshots
def test_full_page_screenshots_at_laptop_and_phone_width(browser, site, tmp_path):
    out = screenshot_folder(tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    for name, width in SCREEN_WIDTHS.items():
        o = open_page(browser, site.index.as_uri(), width=width, height=800)
        try:
            o.page.wait_for_load_state("networkidle")
            o.page.locator('details.perrow[data-method="DICE-Talk"] summary').first.click()  # show one breakdown
            path = out / f"leaderboard-{name}.png"
            o.page.screenshot(path=str(path), full_page=True, animations="disabled")
            assert o.errors == []
        finally:
            o.page.context.close()
        compact_png(path)
        w, h = png_size(path)
        assert w >= width and h > 800, (name, w, h)  # the whole page, taller than one screen
        assert path.stat().st_size < 300_000, f"{path}: {path.stat().st_size} bytes; keep screenshots under 300 KB"
