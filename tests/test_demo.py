"""``python -m dicetalk_bench.demo`` end to end at its smallest preset: every stage runs, the leaderboard page has
the method, ceiling, baseline and published rows and the random-weights banner, passes the browser checks (headless
Chromium: no console error, every file it names inside the site, sample clips that open and decode), and a rerun
reuses every stage."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from browser_pages import chromium_browser, compact_png, open_page, png_size, screenshot_folder, unresolved_references


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    from dicetalk_bench import demo

    out = tmp_path_factory.mktemp("demo") / "demo_out"
    start = time.perf_counter()
    code = demo.main(["--out", str(out), "--size", "smoke"])
    first_s = time.perf_counter() - start
    return out, code, first_s


def _leaderboard(out: Path) -> dict:
    return json.loads((out / "eval" / "leaderboard" / "results.json").read_text())


def _rows(out: Path) -> dict[str, dict]:
    (table,) = [t for t in _leaderboard(out)["datasets"] if t["dataset"] == "mead"]
    return {r["method"]: r for r in table["rows"]}


def test_the_demo_builds_a_leaderboard_with_every_kind_of_row(demo_run, capsys):
    out, code, _ = demo_run
    assert code == 0
    page = out / "eval" / "leaderboard" / "index.html"
    html = page.read_text()
    rows = _rows(out)
    from dicetalk_bench.demo_chain import BASELINES, CEILING, METHOD

    assert rows[METHOD]["kind"] == "method"
    assert rows[CEILING]["kind"] == "ceiling"
    assert {rows[f"{b} baseline"]["kind"] for b in BASELINES} == {"baseline"}
    assert len(rows) == 5
    assert 'data-kind="ceiling"' in html and 'data-kind="baseline"' in html
    assert [p for p in _leaderboard(out)["published"] if p["dataset"] == "mead"]  # the shipped published rows
    assert 'class="published-row"' in html and "arXiv" in html
    assert 'class="banner"' in html and "random, uncalibrated extractor weights" in html
    assert "trained for 2 steps" in html  # the smoke preset's generator steps
    # the method row's videos were generated from the tiny checkpoint into the non-doubled layout
    generated = sorted((out / "eval" / "generated").rglob("*.mp4"))
    assert generated and all(p.relative_to(out / "eval" / "generated").parts[1] == "mead" for p in generated)
    assert not (out / "eval" / "generated" / "mead").exists()
    # every row's results record the small-set override and the random extractors as uncalibrated
    from dicetalk_bench.reports.runs import read_run

    for method, row in rows.items():
        run = read_run(Path(row["source"]), load_features=False)
        assert not run.calibrated
        assert run.results["fid"].protocol["forced_small_set"] is True  # a few clips: the override, recorded
        assert run.results["fid"].protocol["frame_stride"] == 25


def test_rerun_reuses_every_stage(demo_run, capsys):
    out, code, first_s = demo_run
    assert code == 0
    capsys.readouterr()
    page = out / "eval" / "leaderboard" / "index.html"
    before = page.stat().st_mtime_ns
    start = time.perf_counter()
    from dicetalk_bench import demo

    assert demo.main(["--out", str(out), "--size", "smoke"]) == 0
    again_s = time.perf_counter() - start
    text = capsys.readouterr().out
    from dicetalk_bench.demo_chain import BASELINES

    # data, preprocess, portrait, extractors, embedder, generator, the method, ceiling and baseline rows, leaderboard
    n_stages = 6 + 2 + len(BASELINES) + 1
    assert len(re.findall(r"^\[[^\]]+\] reused", text, flags=re.M)) == n_stages
    assert (out / "face.png").is_file()
    assert "] ..." not in text  # nothing ran again
    assert page.stat().st_mtime_ns == before
    assert again_s < first_s / 5
    assert "leaderboard: " in text and str(page.resolve()) in text


def test_other_settings_in_the_same_folder_are_a_setup_error(demo_run, capsys, monkeypatch):
    out, code, _ = demo_run
    assert code == 0
    from dicetalk_bench import demo, demo_chain

    monkeypatch.setitem(demo_chain.PRESETS, "smoke", demo_chain.dataclasses.replace(
        demo_chain.PRESETS["smoke"], embedder_steps=5))
    capsys.readouterr()
    assert demo.main(["--out", str(out), "--size", "smoke"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "another --out folder" in err[0]


@pytest.fixture(scope="module")
def browser():
    yield from chromium_browser()


# Resolves, per video, to [readyState, width, height] once its metadata is read, or ["error", code, 0].
_LOAD_VIDEOS_JS = """vs => Promise.all(vs.map(v => new Promise(done => {
    v.onloadedmetadata = () => done([v.readyState, v.videoWidth, v.videoHeight]);
    v.onerror = () => done(['error', v.error ? v.error.code : null, 0]);
    v.preload = 'metadata'; v.load();
})))"""


def test_the_demo_page_passes_the_browser_checks(demo_run, browser):
    out, code, _ = demo_run
    assert code == 0
    site = out / "eval" / "leaderboard"
    opened = open_page(browser, (site / "index.html").as_uri())
    try:
        page = opened.page
        page.wait_for_load_state("networkidle")
        from dicetalk_bench.demo_chain import BASELINES

        kinds = page.locator("table.board tbody tr").evaluate_all("rs => rs.map(r => r.dataset.rowKind)")
        assert sorted(kinds) == sorted(["method", "ceiling"] + ["baseline"] * len(BASELINES))
        assert page.locator("p.banner").is_visible()
        assert unresolved_references(page, site) == []
        # sample clips: a strip per row; every still decodes once scrolled into view
        strips = page.locator(".strip")
        assert strips.count() == len(kinds)
        stills = page.locator(".strip details.clip summary img")
        assert stills.count() >= len(kinds)
        for i in range(stills.count()):
            stills.nth(i).scroll_into_view_if_needed()
        page.wait_for_load_state("networkidle")
        assert stills.evaluate_all("is => is.every(i => i.complete && i.naturalWidth > 0)")
        # a click on the method's first still opens its generated video beside the ground truth; both decode
        clip = page.locator('.strip[data-row-kind="method"] details.clip').first
        clip.locator("summary").click()
        videos = clip.locator("video")
        assert videos.count() == 2 and videos.first.is_visible() and videos.nth(1).is_visible()
        loaded = videos.evaluate_all(_LOAD_VIDEOS_JS)
        assert all(state != "error" and state >= 1 and w > 0 and h > 0 for state, w, h in loaded), loaded
        assert opened.errors == [] and opened.dialogs == []
    finally:
        opened.page.context.close()


def test_screenshots_of_the_demo_page(demo_run, browser, tmp_path):
    """Full-page screenshots of the demo's leaderboard, the DICE-Talk row's breakdown and one sample clip folded
    out (written to docs/images with DICETALK_BENCH_WRITE_SCREENSHOTS=1)."""
    out, code, _ = demo_run
    assert code == 0
    from dicetalk_bench.demo_chain import METHOD

    folder = screenshot_folder(tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    for name, width in (("laptop", 1280), ("phone", 390)):
        opened = open_page(browser, (out / "eval" / "leaderboard" / "index.html").as_uri(), width=width, height=800)
        try:
            page = opened.page
            page.wait_for_load_state("networkidle")
            page.locator(f'details.perrow[data-method="{METHOD}"] summary').first.click()
            page.locator('.strip[data-row-kind="method"] details.clip summary').first.click()
            for still in page.locator(".strip img").all():
                still.scroll_into_view_if_needed()
            page.wait_for_load_state("networkidle")
            path = folder / f"demo-leaderboard-{name}.png"
            page.screenshot(path=str(path), full_page=True, animations="disabled")
            assert opened.errors == []
        finally:
            opened.page.context.close()
        compact_png(path)
        w, h = png_size(path)
        assert w >= width and h > 800, (name, w, h)
        assert path.stat().st_size < 600_000, f"{path}: {path.stat().st_size} bytes; keep screenshots under 600 KB"
