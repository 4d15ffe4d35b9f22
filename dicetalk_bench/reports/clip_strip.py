"""Sample clips on the leaderboard page: the same few test clips for every row, as thumbnails and videos.

Per dataset, ``n_clips`` clip ids are drawn with a fixed seed from the ids every row of the dataset scored
(:func:`choose_clips`; the seed and the ids are recorded in ``results.json``). For each row the clip's video is
found from the row's provenance (``videos``; older results files: the metrics' ``extra["videos_dir"]``), the ground
truth from ``reference`` (older files: ``extra["reference_dir"]``); the ceiling row's videos are the ground truth.
The files are hard-linked (copied across file systems) into ``media/<dataset>/`` of the site folder, ground-truth
files once each by content (sha256), and a JPEG still of the middle frame is written beside each (PyAV decode,
Pillow encode). The page links them by relative paths only.

A video that is missing or cannot be decoded is a per-item problem: its strip entry says "video not available"
with the reason, the count is logged, and the build goes on.
"""

from __future__ import annotations

import dataclasses
import html
import logging
import os
import shutil
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

MEDIA_DIR = "media"
NOT_AVAILABLE = "video not available"


@dataclasses.dataclass(frozen=True)
class StripConfig:
    """How many clips per dataset (0: no strip), the seed of their choice, and the stills' width in pixels."""

    n_clips: int = 4
    seed: int = 0
    thumb_width: int = 192

    def __post_init__(self) -> None:
        if self.n_clips < 0 or self.thumb_width < 16:
            raise ValueError(f"n_clips must be >= 0 and thumb_width >= 16, got {self.n_clips}, {self.thumb_width}")


@dataclasses.dataclass(frozen=True)
class ClipAsset:
    """One clip of one row: site-relative paths (POSIX) of its video, its still and its ground truth, or None;
    ``problem`` says why the video is not shown."""

    clip_id: str
    video: str | None = None
    thumbnail: str | None = None
    reference: str | None = None
    problem: str | None = None


@dataclasses.dataclass(frozen=True)
class RowStrip:
    method: str
    kind: str
    clips: tuple[ClipAsset, ...]


@dataclasses.dataclass(frozen=True)
class Strip:
    """The sample clips of one dataset: the seed, how many ids all rows share, the chosen ids, per row assets."""

    dataset: str
    seed: int
    n_common: int
    clip_ids: tuple[str, ...]
    rows: tuple[RowStrip, ...]

    @property
    def n_missing(self) -> int:
        return sum(c.problem is not None for r in self.rows for c in r.clips)

    def to_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "n_common_clips": self.n_common, "clip_ids": list(self.clip_ids),
                "rows": [{"method": r.method, "kind": r.kind, "clips": [dataclasses.asdict(c) for c in r.clips]}
                         for r in self.rows]}


# ------------------------------------------------------------------------------------------------ choice (pure)
def result_clip_ids(results: Iterable[Any]) -> set[str]:
    """Every clip id a row's MetricResults name: attempted ids, per-video values, failures, stored features."""
    ids: set[str] = set()
    for r in results:
        ids |= set(r.clip_ids) | set(r.per_video) | set(r.failures) | set(r.features or ())
    return ids


def choose_clips(id_sets: Sequence[set[str]], n: int, seed: int) -> tuple[int, tuple[str, ...]]:
    """(number of ids common to every non-empty set, ``n`` of them drawn without replacement with ``seed``, sorted).

    The draw depends only on the sorted common ids, ``n`` and ``seed``, so every row gets the same clips and a
    rebuild the same choice. Fewer than ``n`` common ids: all of them.
    """
    sets = [s for s in id_sets if s]
    if not sets or n <= 0:
        return 0, ()
    common = sorted(set.intersection(*map(set, sets)))
    if len(common) <= n:
        return len(common), tuple(common)
    pick = np.random.default_rng(seed).choice(len(common), size=n, replace=False)
    return len(common), tuple(sorted(common[i] for i in pick))


# ------------------------------------------------------------------------------------------------ locating files
def row_folders(provenance: Mapping[str, Any], results: Iterable[Any], kind: str) -> tuple[Path | None, Path | None]:
    """(folder of the row's videos, folder of its ground truth) from the provenance, else from the results'
    ``extra`` (files written before the provenance recorded ``videos``). The ceiling's videos are the ground
    truth."""
    results = list(results)

    def from_extra(name: str) -> str | None:
        return next((str(r.extra[name]) for r in results if r.extra.get(name)), None)

    reference = provenance.get("reference") or from_extra("reference_dir")
    videos = reference if kind == "ceiling" else (provenance.get("videos") or from_extra("videos_dir"))
    return (Path(videos) if videos else None), (Path(reference) if reference else None)


def find_video(folder: Path | None, clip_id: str) -> Path | None:
    """The video file of ``clip_id`` in ``folder`` (any suffix of the metrics' video set), or None."""
    from dicetalk_bench.metrics.video_set import VIDEO_SUFFIXES

    if folder is None:
        return None
    for suffix in VIDEO_SUFFIXES:
        p = folder / f"{clip_id}{suffix}"
        if p.is_file():
            return p
    return None


def place_file(src: Path, dst: Path) -> None:
    """Hard-link ``src`` at ``dst`` (replacing it), or copy it when a link is not possible (other file system).

    A symbolic link at ``src`` (evaluation folders link the processed videos) is followed first, so the site holds
    the file itself, never a link pointing out of the site folder."""
    src = src.resolve()
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists() or dst.is_symlink():
        dst.unlink()
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def middle_frame(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB middle frame of a video (the first is often the reference image of the generator).
    Raises :class:`dicetalk_bench.media.MediaError` for a missing or undecodable file."""
    from dicetalk_bench import media

    n = media.probe(path).n_frames or 1
    target, last = n // 2, None
    for chunk in media.iter_video(path, chunk_frames=16):
        if chunk.start_index + len(chunk.frames) > target:
            return chunk.frames[target - chunk.start_index]
        last = chunk.frames[-1]
    if last is None:
        raise media.EmptyMediaError(path, "has no frames")
    return last


def write_thumbnail(video: Path, dst: Path, width: int) -> None:
    """A JPEG still (middle frame, ``width`` pixels wide, aspect kept) of ``video`` at ``dst``."""
    from PIL import Image

    frame = middle_frame(video)
    img = Image.fromarray(frame)
    height = max(1, round(img.height * width / img.width))
    dst.parent.mkdir(parents=True, exist_ok=True)
    img.resize((width, height), Image.Resampling.BILINEAR).save(dst, format="JPEG", quality=82)


# ------------------------------------------------------------------------------------------------ building
def _clip_stem(i: int, clip_id: str) -> str:
    from dicetalk_bench.reports.runs import safe_file_stem

    return f"{i}-{safe_file_stem(clip_id)}"


def build_strip(table: Any, site: str | Path, config: StripConfig = StripConfig()) -> Strip | None:
    """Choose the clips of ``table`` (a :class:`~.leaderboard.Table`), place their videos and stills under
    ``site/media/<dataset>/`` (replacing what an earlier build left there), and return what the page shows; None
    when the rows share no clip id, ``config.n_clips`` is 0, or no row records where its videos are."""
    from tqdm.auto import tqdm

    from dicetalk_bench import media
    from dicetalk_bench.fileutil import sha256_file
    from dicetalk_bench.reports.runs import safe_file_stem

    n_common, chosen = choose_clips([result_clip_ids(r.results.values()) for r in table.rows], config.n_clips,
                                    config.seed)
    if not chosen:
        return None
    folders = [row_folders(r.provenance, r.results.values(), r.kind) for r in table.rows]
    if not any(videos for videos, _ in folders):
        logger.info("%s: no row records where its videos are; no sample clips on the page", table.dataset)
        return None
    site = Path(site)
    root_rel = f"{MEDIA_DIR}/{safe_file_stem(table.dataset)}"
    shutil.rmtree(site / root_rel, ignore_errors=True)
    placed_refs: dict[Path, str] = {}  # resolved source -> site path of the ground-truth copy

    def place_reference(src: Path | None) -> str | None:
        if src is None:
            return None
        key = src.resolve()
        if key not in placed_refs:
            rel = f"{root_rel}/reference/{sha256_file(src)[:16]}{src.suffix.lower()}"
            if not (site / rel).exists():
                place_file(src, site / rel)
            placed_refs[key] = rel
        return placed_refs[key]

    rows = []
    bar = tqdm(total=len(table.rows) * len(chosen), desc=f"sample clips {table.dataset}", unit="clip", delay=1.0,
               leave=False)
    for i, (row, (videos, reference)) in enumerate(zip(table.rows, folders)):
        row_rel = f"{root_rel}/{i}-{safe_file_stem(row.method)}"
        clips = []
        for j, clip_id in enumerate(chosen):
            bar.update(1)
            src = find_video(videos, clip_id)
            ref_src = find_video(reference, clip_id)
            if src is None:
                where = "no videos folder recorded" if videos is None else f"no file for it in {videos}"
                clips.append(ClipAsset(clip_id, reference=place_reference(ref_src), problem=where))
                continue
            thumb = f"{row_rel}/{_clip_stem(j, clip_id)}.jpg"
            try:
                write_thumbnail(src, site / thumb, config.thumb_width)
            except (media.MediaError, OSError, ValueError) as exc:
                clips.append(ClipAsset(clip_id, reference=place_reference(ref_src), problem=f"unreadable: {exc}"))
                continue
            if row.kind == "ceiling":
                video = place_reference(src)
            else:
                video = f"{row_rel}/{_clip_stem(j, clip_id)}{src.suffix.lower()}"
                place_file(src, site / video)
            clips.append(ClipAsset(clip_id, video=video, thumbnail=thumb, reference=place_reference(ref_src)))
        rows.append(RowStrip(row.method, row.kind, tuple(clips)))
    bar.close()
    strip = Strip(table.dataset, config.seed, n_common, chosen, tuple(rows))
    if strip.n_missing:
        logger.warning("%s: %d of %d sample videos not available (listed on the page)", table.dataset,
                       strip.n_missing, len(table.rows) * len(chosen))
    return strip


# ------------------------------------------------------------------------------------------------ HTML
def _esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _video_html(src: str, label: str) -> str:
    return (f'<figure><video class="clip-video" controls preload="none" src="{_esc(src)}"></video>'
            f"<figcaption>{_esc(label)}</figcaption></figure>")


def _clip_html(row: RowStrip, clip: ClipAsset) -> str:
    if clip.problem is not None or clip.video is None:
        why = clip.problem or "not found"
        return (f'<div class="clip missing" data-clip="{_esc(clip.clip_id)}" title="{_esc(why)}">'
                f'<span class="na">{_esc(NOT_AVAILABLE)}</span><small>{_esc(clip.clip_id)}</small></div>')
    label = "ground truth" if row.kind == "ceiling" else "generated"
    pair = _video_html(clip.video, f"{row.method}: {label}")
    if row.kind != "ceiling":
        pair += (_video_html(clip.reference, "ground truth") if clip.reference else
                 f'<figure class="missing"><span class="na">ground truth: {_esc(NOT_AVAILABLE)}</span></figure>')
    return (f'<details class="clip" data-clip="{_esc(clip.clip_id)}"><summary title="{_esc(clip.clip_id)}: click '
            f'to play beside the ground truth"><img src="{_esc(clip.thumbnail)}" loading="lazy" '
            f'alt="{_esc(f"{row.method}, clip {clip.clip_id}")}"><small>{_esc(clip.clip_id)}</small></summary>'
            f'<div class="pair">{pair}</div></details>')


def strip_html(strip: Strip | None) -> str:
    """The "Sample clips" block of one dataset: per row a strip of stills; a click opens generated vs ground
    truth side by side (``<video controls preload="none">``, no script needed)."""
    if strip is None:
        return ""
    out = [f'<h2>Sample clips</h2><p class="note">The same {len(strip.clip_ids)} test clips for every row, drawn '
           f"with seed {_esc(strip.seed)} from the {_esc(strip.n_common)} clips all rows scored: "
           f"{_esc(', '.join(strip.clip_ids))}. Click a still to play it beside the ground truth.</p>"
           '<div class="strips">']
    for row in strip.rows:
        out.append(f'<div class="strip" data-method="{_esc(row.method)}" data-row-kind="{_esc(row.kind)}">'
                   f'<div class="strip-name">{_esc(row.method)}</div>'
                   + "".join(_clip_html(row, c) for c in row.clips) + "</div>")
    out.append("</div>")
    return "".join(out)
