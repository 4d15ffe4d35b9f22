"""The published page: sample-clip strip, FID/FVD per emotion, column groups, decimals, reproduce box, hooks."""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
import scipy.linalg
from reports_helpers import metric

from dicetalk_bench import evaluate
from dicetalk_bench.media import write_video
from dicetalk_bench.metrics.result import MetricResult
from dicetalk_bench.reports.clip_strip import NOT_AVAILABLE, choose_clips
from dicetalk_bench.reports.layout import DEFAULT_GROUP_ORDER, PageLayout, parse_group_order
from dicetalk_bench.reports.leaderboard import BootstrapConfig, build_tables
from dicetalk_bench.reports.per_emotion import per_emotion_record, per_group_frechet
from dicetalk_bench.reports.render import reproduce_text, tables_to_html, tables_to_latex
from dicetalk_bench.reports.runs import find_runs

EVIL = '<script>alert("x")</script> & \'q\''
BOOT = BootstrapConfig(resamples=0, set_resamples=0)
CLIP_IDS = [f"mead/M003/front/{e}/level_1/00{i}" for e, i in (("angry", 1), ("angry", 2), ("happy", 1),
                                                               ("happy", 2), ("sad", 1))]


class _Links(HTMLParser):
    """Every src / href, and the attributes of every img and video."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.imgs: list[dict] = []
        self.videos: list[dict] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.urls += [v for k, v in attrs if k in ("src", "href") and v is not None]
        if tag == "img":
            self.imgs.append(a)
        if tag == "video":
            self.videos.append(a)


# ------------------------------------------------------------------------------------------------ clip choice
def test_choose_clips_draws_from_the_common_ids_with_its_seed():
    sets = [{"a", "b", "c", "d", "e", "f"}, {"b", "c", "d", "e", "f", "g"}, set()]  # an empty row is ignored
    n, first = choose_clips(sets, 3, seed=7)
    assert n == 5 and len(first) == 3 and set(first) <= {"b", "c", "d", "e", "f"} and list(first) == sorted(first)
    assert choose_clips(list(reversed(sets)), 3, seed=7) == (5, first)  # row order does not matter
    draws = {choose_clips(sets, 3, seed=s)[1] for s in range(20)}
    assert len(draws) > 1  # the seed decides
    assert choose_clips(sets, 10, seed=0) == (5, ("b", "c", "d", "e", "f"))
    assert choose_clips(sets, 0, seed=0) == (0, ())


# ------------------------------------------------------------------------------------------------ the strip, end to end
@pytest.fixture(scope="module")
def scored(tmp_path_factory) -> tuple[Path, Path]:
    """Two methods scored by evaluate (PSNR) on 5 tiny MEAD-named clips; returns (clips folder, out folder)."""
    root = tmp_path_factory.mktemp("board")
    rng = np.random.default_rng(0)
    for cid in CLIP_IDS:
        base = rng.integers(0, 256, (6, 32, 48, 3), dtype=np.uint8)
        write_video(root / "ref" / f"{cid}.mp4", base, 25.0, crf=0)
        write_video(root / "gen_a" / f"{cid}.mp4", base // 2, 25.0, crf=0)
        write_video(root / "gen_b" / f"{cid}.mp4", 255 - base, 25.0, crf=0)
    out = root / "out"
    for method, folder in ((EVIL, "gen_a"), ("plain", "gen_b")):
        assert evaluate.main(["--videos", str(root / folder), "--reference", str(root / "ref"), "--metrics", "psnr",
                              "--method", method, "--dataset", "mead", "--out", str(out), "--no-cache"]) == 0
    return root, out


def test_provenance_records_where_the_videos_are(scored):
    root, out = scored
    run = next(r for r in find_runs(out / "results", load_features=False) if r.method == "plain")
    assert Path(run.provenance["videos"]) == (root / "gen_b").resolve()
    assert Path(run.provenance["reference"]) == (root / "ref").resolve()


def test_strip_files_are_in_the_site_folder_and_every_link_is_relative(scored, tmp_path):
    root, out = scored
    site = tmp_path / "site"
    assert evaluate.main(["leaderboard", "--results", str(out / "results"), "--out", str(site), "--no-published",
                          "--sample-clips", "3", "--sample-seed", "5"]) == 0
    page = (site / "index.html").read_text()
    links = _Links()
    links.feed(page)
    assert links.urls and links.imgs and links.videos
    for url in links.urls:
        parsed = urlparse(url)
        assert not parsed.scheme and not parsed.netloc and not url.startswith("/") and "base64" not in url, url
        if not url.startswith("#"):
            assert (site / url).is_file(), url
    assert all(i.get("loading") == "lazy" for i in links.imgs)
    assert all(v.get("class") == "clip-video" and v.get("preload") == "none" and "controls" in v
               for v in links.videos)
    media = [p for p in (site / "media").rglob("*") if p.is_file()]
    assert any(p.suffix == ".jpg" for p in media) and any(p.suffix == ".mp4" for p in media)
    for jpg in (p for p in media if p.suffix == ".jpg"):
        assert jpg.read_bytes()[:3] == b"\xff\xd8\xff"  # a JPEG
    doc = json.loads((site / "results.json").read_text())
    sample = doc["datasets"][0]["sample_clips"]
    assert sample["seed"] == 5 and sample["n_common_clips"] == 5 and len(sample["clip_ids"]) == 3
    assert sample["clip_ids"] == list(choose_clips([set(CLIP_IDS)], 3, 5)[1])
    # the same clips for every row, in the same order
    per_row = [re.findall(r'data-clip="([^"]*)"', s) for s in re.split(r'<div class="strip" ', page)[1:]]
    assert len(per_row) == 2 and all(ids == sample["clip_ids"] for ids in per_row), per_row
    # generated beside the ground truth: two videos per method clip, the second one the reference copy
    assert len(links.videos) == 2 * 2 * 3
    assert "<script>alert" not in page and "&lt;script&gt;alert(&quot;x&quot;)" in page


def test_missing_video_is_marked_and_the_build_goes_on(scored, tmp_path):
    root, out = scored
    import shutil

    results = tmp_path / "results"
    shutil.copytree(out / "results", results)
    gone = root / "gen_b_partial"
    shutil.copytree(root / "gen_b", gone)
    run_file = results / "mead" / "plain.json"
    doc = json.loads(run_file.read_text())
    doc["provenance"]["videos"] = str(gone)
    run_file.write_text(json.dumps(doc))
    for cid in CLIP_IDS:
        (gone / f"{cid}.mp4").unlink()
    (gone / f"{CLIP_IDS[0]}.mp4").parent.mkdir(parents=True, exist_ok=True)
    (gone / f"{CLIP_IDS[0]}.mp4").write_bytes(b"not a video")  # unreadable: per-item too
    site = tmp_path / "site"
    assert evaluate.main(["leaderboard", "--results", str(results), "--out", str(site), "--no-published",
                          "--sample-clips", "5"]) == 0
    page = (site / "index.html").read_text()
    assert page.count(NOT_AVAILABLE) == 5  # every clip of "plain"; the other row is complete
    sample = json.loads((site / "results.json").read_text())["datasets"][0]["sample_clips"]
    plain = next(r for r in sample["rows"] if r["method"] == "plain")
    assert all(c["video"] is None and c["problem"] for c in plain["clips"])
    assert "unreadable" in plain["clips"][0]["problem"]


def test_the_ceiling_row_shows_the_ground_truth(scored, tmp_path):
    import shutil

    _, out = scored
    results = tmp_path / "results"
    shutil.copytree(out / "results", results)
    run_file = results / "mead" / "plain.json"
    doc = json.loads(run_file.read_text())
    doc["method"], doc["provenance"]["row_kind"] = "real video", "ceiling"
    run_file.write_text(json.dumps(doc))
    site = tmp_path / "site"
    assert evaluate.main(["leaderboard", "--results", str(results), "--out", str(site), "--no-published",
                          "--sample-clips", "2"]) == 0
    sample = json.loads((site / "results.json").read_text())["datasets"][0]["sample_clips"]
    rows = {r["method"]: r for r in sample["rows"]}
    for clip, method_clip in zip(rows["real video"]["clips"], rows[EVIL]["clips"]):
        assert clip["video"] == clip["reference"] == method_clip["reference"]  # one ground-truth copy, shared
        assert clip["video"].startswith("media/mead/reference/")
        assert (site / clip["video"]).read_bytes() == (scored[0] / "ref" / f"{clip['clip_id']}.mp4").read_bytes()
    page = (site / "index.html").read_text()
    assert page.count('class="clip-video"') == 2 * 2 + 2  # the method: generated + truth; the ceiling: truth


def test_old_results_find_their_videos_in_the_metric_records(tmp_path, write_results):
    """Results written before the provenance recorded "videos": the folders come from the metrics' extra."""
    from dicetalk_bench.reports.clip_strip import row_folders

    r = MetricResult(key="fid", value=1.0, higher_is_better=False, n_videos=1,
                     extra={"videos_dir": "/data/gen", "reference_dir": "/data/ref"})
    assert row_folders({}, [r], "method") == (Path("/data/gen"), Path("/data/ref"))
    assert row_folders({"reference": "/gt"}, [r], "ceiling") == (Path("/gt"), Path("/gt"))
    assert row_folders({}, [], "method") == (None, None)


# ------------------------------------------------------------------------------------------------ FID/FVD per emotion
def _independent_fd(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance with scipy's sqrtm (not the package's eigh path)."""
    mu1, mu2 = a.mean(0), b.mean(0)
    c1, c2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(c1 @ c2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(c1 + c2 - 2 * covmean))


def test_per_emotion_fid_equals_an_independent_computation_on_the_group(rng):
    d = 4
    gen = {cid: rng.normal(0.3 * k, 1.0, (12, d)) for k, cid in enumerate(CLIP_IDS)}
    ref = {cid: rng.normal(0.0, 1.0, (12, d)) for cid in CLIP_IDS}
    emotion = {cid: cid.split("/")[3] for cid in CLIP_IDS}
    out = per_group_frechet(gen, ref, emotion, min_size=20, unit="frames")
    assert list(out) == ["angry", "happy", "sad"]
    for e in ("angry", "happy"):
        ids = [c for c in CLIP_IDS if emotion[c] == e]
        expected = _independent_fd(np.concatenate([gen[c] for c in ids]), np.concatenate([ref[c] for c in ids]))
        assert out[e]["value"] == pytest.approx(expected, rel=1e-8)
        assert (out[e]["n_videos"], out[e]["n_rows"], out[e]["n_reference_rows"]) == (2, 24, 24)
    assert out["sad"]["value"] is None and out["sad"]["reason"] == "n=12 frames < 20; reference n=12 frames < 20"


def test_per_emotion_record_uses_the_metric_minimum_and_renders(rng, write_results):
    feats = {cid: rng.normal(0.0, 1.0, (3, 4)).astype(np.float32) for cid in CLIP_IDS}
    fid = MetricResult(key="fid", value=1.0, higher_is_better=False, n_videos=5, features=feats,
                       reference_features=feats)
    emotion = {cid: cid.split("/")[3] for cid in CLIP_IDS}
    record = per_emotion_record(fid, emotion)
    assert record["min_rows"] == 2049 and record["unit"] == "frames"
    assert record["groups"]["angry"]["reason"].startswith("n=6 frames < 2049")  # the real minimum: too small
    assert per_emotion_record(metric("psnr", 1.0, True), emotion) is None
    small = per_emotion_record(fid, emotion, min_size=6)
    assert small["groups"]["angry"]["value"] == pytest.approx(0.0, abs=1e-9)  # same features on both sides
    stored = MetricResult(key="fid", value=1.0, higher_is_better=False, n_videos=5,
                          extra={"per_emotion": small | {"groups": {**small["groups"],
                                                                    EVIL: small["groups"]["sad"]}}})
    write_results("m", "mead", [stored])
    page = tables_to_html(build_tables(find_runs(write_results.root, load_features=False), BOOT), BOOT)
    block = page.split('class="breakdown per-emotion"')[1].split("</table>")[0]
    assert "n=3 frames &lt; 6" in block and 'data-emotion="angry"' in block and "0.00" in block
    assert "<script>alert" not in page


# ------------------------------------------------------------------------------------------------ layout
def test_precision_table_is_applied_in_html_and_latex(write_results):
    write_results("m", "mead", [metric("psnr", 31.23456, True, {"a": 31.0, "b": 31.46912}),
                                metric("fvd", 123.456, False), metric("ssim", 0.812345, True)])
    tables = build_tables(find_runs(write_results.root, load_features=False), BootstrapConfig(resamples=50))
    page, tex = tables_to_html(tables, BOOT), tables_to_latex(tables)
    for text in ("31.23", "123.5", "0.812"):
        assert f'<span class="v">{text}</span>' in page and text in tex
    custom = [dataclasses.replace(t, layout=PageLayout(decimals={"psnr": 4})) for t in tables]
    custom_page = tables_to_html(custom, BOOT)
    assert '<span class="v">31.2346</span>' in custom_page
    assert '<span class="v">0.8123</span>' in custom_page  # no entry for SSIM: 4 significant digits
    layout = PageLayout()
    assert layout.format("psnr", float("inf")) == "inf" and layout.format("ssim", -0.0001) == "0.000"


def test_column_groups_follow_the_configured_order(write_results, tmp_path):
    write_results("m", "mead", [metric(k, 1.0, k not in ("fid", "lpips", "sync-d")) for k in
                                ("fid", "psnr", "sync-c", "csim", "emo-acc", "lpips", "sync-d")])
    runs = find_runs(write_results.root, load_features=False)
    default = build_tables(runs, BOOT)[0]
    assert [c.key for c in default.columns] == ["psnr", "lpips", "fid", "sync-c", "sync-d", "emo-acc", "csim"]
    order = parse_group_order("sync,identity")
    assert order == ("sync", "identity", "image", "distribution", "emotion")
    table = build_tables(runs, BOOT, layout=PageLayout(group_order=order))[0]
    assert [c.key for c in table.columns] == ["sync-c", "sync-d", "csim", "psnr", "lpips", "fid", "emo-acc"]
    page = tables_to_html([table], BOOT)
    heads = re.findall(r'<th class="group" colspan="(\d)" data-group="([a-z]+)">', page)
    assert heads == [("2", "sync"), ("1", "identity"), ("2", "image"), ("1", "distribution"), ("1", "emotion")]
    assert re.findall(r'data-metric="([a-z-]+)"', page.split("</thead>")[0]) == [c.key for c in table.columns]
    assert "\\multicolumn{2}{c}{Lip sync}" in tables_to_latex([table])
    with pytest.raises(ValueError, match="valid names"):
        parse_group_order("sync,colour")
    with pytest.raises(SystemExit) as exc:
        evaluate.main(["leaderboard", "--results", str(write_results.root), "--out", str(tmp_path / "x"),
                       "--column-groups", "nope"])
    assert exc.value.code == 2
    assert set(DEFAULT_GROUP_ORDER) == set(order)


def test_reproduce_box_holds_the_exact_command_and_escapes_it(write_results):
    argv = ["python", "-m", "dicetalk_bench.evaluate", "--videos", "/data/my videos", "--method", EVIL]
    write_results(EVIL, "mead", [metric("psnr", 30.0, True, {"a": 30.0})], command_line=argv, git_dirty=True)
    write_results("old", "mead", [metric("psnr", 29.0, True, {"a": 29.0})])
    tables = build_tables(find_runs(write_results.root, load_features=False), BOOT)
    page = tables_to_html(tables, BOOT)
    text = reproduce_text(tables[0].rows[0].provenance)
    assert text.splitlines()[1] == shlex.join(argv) and shlex.split(text.splitlines()[1]) == argv
    assert "git checkout " + "c0ffee" * 6 in text and "uncommitted changes" in text
    box = page.split('<details class="repro">')[1].split("</details>")[0]
    from html import unescape

    assert unescape(box.split("<code>")[1].split("</code>")[0]) == text
    assert "<script>alert" not in page
    assert "no command line recorded" in page  # the older file


def test_stable_hooks_for_browser_tests(write_results):
    write_results("m", "mead", [metric("psnr", 30.0, True, {"a": 30.0})], row_kind="method")
    write_results("gt", "mead", [metric("psnr", 100.0, True, {"a": 100.0})], row_kind="ceiling")
    write_results("h", "hdtf", [metric("psnr", 30.0, True, {"a": 30.0})])
    page = tables_to_html(build_tables(find_runs(write_results.root, load_features=False), BOOT), BOOT)
    assert page.count('role="tab"') == 2 and 'role="tablist"' in page and page.count('role="tabpanel"') == 2
    assert re.findall(r'<tr class="[^"]*" data-kind="[^"]*" data-row-kind="([a-z]+)"', page) == [
        "ceiling", "method", "method"]
    assert '<th data-sortable data-col="1" data-metric="psnr"' in page
    assert "prefers-color-scheme:dark" in page and 'name="viewport"' in page and 'class="scroll"' in page
    assert "http://" not in page and "https://" not in page  # nothing from the network


def test_place_file_puts_the_file_itself_in_the_site_never_a_link(tmp_path):
    """Evaluation folders symlink the processed videos; the site must hold the file (a link would point out of it)."""
    from dicetalk_bench.reports.clip_strip import place_file

    real = tmp_path / "processed" / "clip.mp4"
    real.parent.mkdir()
    real.write_bytes(b"video bytes")
    linked = tmp_path / "eval" / "clip.mp4"
    linked.parent.mkdir()
    linked.symlink_to(real)
    dst = tmp_path / "site" / "media" / "clip.mp4"
    place_file(linked, dst)
    assert not dst.is_symlink() and dst.read_bytes() == b"video bytes"
    assert dst.stat().st_ino == real.stat().st_ino  # a hard link to the real file on the same file system
    place_file(linked, dst)  # placing again replaces it
    assert not dst.is_symlink() and dst.read_bytes() == b"video bytes"
