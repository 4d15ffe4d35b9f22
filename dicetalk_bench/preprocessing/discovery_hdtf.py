"""List HDTF source videos plus the upstream annotation files into clips (MRzzm/HDTF@bbde889 HDTF_dataset/).

Per source group ``G`` in RD / WDA / WRA the upstream repository ships five space-separated text files::

    G_video_url.txt      name url                       (WDA's starts with a UTF-8 BOM)
    G_resolution.txt     name.mp4 height
    G_annotion_time.txt  name.mp4 mm:ss-mm:ss [...]      -> clips name_0, name_1, ... in the order given
    G_crop_wh.txt        name_k.mp4 min_w w min_h h      (pixels at the reference resolution)
    G_crop_ratio.txt     name_k.mp4 zoom

Source videos are expected on disk as ``{G}_{name}.mp4`` anywhere below the root (the HDTF download
scripts' naming). An annotated video that is absent is reported in ``missing`` (many YouTube ids are
gone); a video or file that no annotation mentions is reported as unexpected.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .manifest import ClipSource, Discovery, DiscoveryError, UnexpectedFile

log = logging.getLogger(__name__)

GROUPS: tuple[str, ...] = ("RD", "WDA", "WRA")
ANNOTATION_KINDS: tuple[str, ...] = ("video_url", "resolution", "annotion_time", "crop_wh", "crop_ratio")
_TRAILING_DIGITS = re.compile(r"\d+$")
_TIME = re.compile(r"^(?:(\d+):)?(\d+):(\d+(?:\.\d+)?)$")


@dataclass(frozen=True)
class HdtfDiscovery(Discovery):
    """:class:`Discovery` plus annotated source videos that are not on disk."""

    missing: tuple[UnexpectedFile, ...] = ()


def parse_timestamp(text: str) -> float:
    """``"mm:ss"`` or ``"hh:mm:ss"`` (seconds may be fractional) -> seconds."""
    m = _TIME.match(text.strip())
    if not m:
        raise ValueError(f"{text!r} is not a mm:ss time")
    h, mnt, s = m.groups()
    return int(h or 0) * 3600 + int(mnt) * 60 + float(s)


def _read_lines(path: Path) -> list[tuple[int, list[str]]]:
    """Non-empty lines split on whitespace, with 1-based line numbers; a UTF-8 BOM is dropped."""
    text = path.read_text(encoding="utf-8-sig")
    return [(i, line.split()) for i, line in enumerate(text.splitlines(), 1) if line.strip()]


def parse_annotation_time(path: Path) -> dict[str, list[tuple[float, float]]]:
    """``{name: [(start_s, end_s), ...]}`` from a ``G_annotion_time.txt`` file."""
    out: dict[str, list[tuple[float, float]]] = {}
    for lineno, parts in _read_lines(path):
        if len(parts) < 2 or not parts[0].endswith(".mp4"):
            raise DiscoveryError(f"{path}:{lineno}: expected 'name.mp4 mm:ss-mm:ss ...', got {' '.join(parts)!r}")
        ranges = []
        for item in parts[1:]:
            try:
                a, b = item.split("-")
                start, end = parse_timestamp(a), parse_timestamp(b)
            except ValueError:
                raise DiscoveryError(f"{path}:{lineno}: bad time range {item!r}; expected mm:ss-mm:ss") from None
            if end <= start:
                raise DiscoveryError(f"{path}:{lineno}: time range {item!r} ends before it starts")
            ranges.append((start, end))
        out[parts[0][: -len(".mp4")]] = ranges
    return out


def _parse_table(path: Path, n_values: int, convert) -> dict[str, tuple]:
    out = {}
    for lineno, parts in _read_lines(path):
        if len(parts) != 1 + n_values:
            raise DiscoveryError(f"{path}:{lineno}: expected a name and {n_values} value(s), got {' '.join(parts)!r}")
        try:
            out[parts[0].removesuffix(".mp4")] = tuple(convert(v) for v in parts[1:])
        except ValueError:
            raise DiscoveryError(f"{path}:{lineno}: values {parts[1:]} are not numbers") from None
    return out


def load_heldout() -> frozenset[str]:
    """HDTF held-out source videos (``{G}_{name}``) from the list shipped in the package."""
    from dicetalk_bench.datasets import hdtf_heldout_sources

    return frozenset(hdtf_heldout_sources())


def hdtf_identity(group: str, name: str) -> str:
    """Speaker identity: the name without trailing digits (AmyKlobuchar0/1 are one person); RD: the name."""
    base = name if group == "RD" else _TRAILING_DIGITS.sub("", name)
    return f"{group}_{base}"


def discover_hdtf(root: str | Path, heldout: frozenset[str] | None = None) -> HdtfDiscovery:
    """List every annotated HDTF clip ``hdtf/{G}_{name}_{k}`` whose source video is under ``root``."""
    root = Path(root)
    if not root.is_dir():
        raise DiscoveryError(f"HDTF root {root} is not a folder; pass --root pointing at the videos + annotation files")
    heldout = load_heldout() if heldout is None else heldout
    files = sorted(p for p in root.rglob("*") if p.is_file() and not any(s.startswith(".") for s in p.relative_to(root).parts))
    annotations: dict[tuple[str, str], Path] = {}
    videos: dict[str, Path] = {}
    unexpected: list[UnexpectedFile] = []
    ann_re = re.compile(rf"^({'|'.join(GROUPS)})_({'|'.join(ANNOTATION_KINDS)})\.txt$")
    for p in files:
        m = ann_re.match(p.name)
        if m:
            annotations[(m.group(1), m.group(2))] = p
        elif p.suffix == ".mp4":
            if p.stem in videos:
                unexpected.append(UnexpectedFile(p, f"duplicate source video name (also {videos[p.stem]})"))
            else:
                videos[p.stem] = p
        elif p.name != "demo_manifest.json":
            unexpected.append(UnexpectedFile(p, "not an HDTF source video ({G}_{name}.mp4) or annotation file"))
    groups = sorted({g for g, _ in annotations})
    if not groups:
        raise DiscoveryError(f"no HDTF annotation files (e.g. RD_annotion_time.txt) found under {root}")
    clips: list[ClipSource] = []
    missing: list[UnexpectedFile] = []
    used: set[str] = set()
    for g in groups:
        if (g, "annotion_time") not in annotations:
            raise DiscoveryError(f"{root}: {g}_annotion_time.txt is missing but other {g}_* annotation files exist")
        times = parse_annotation_time(annotations[(g, "annotion_time")])
        crop_wh = _parse_table(annotations[(g, "crop_wh")], 4, int) if (g, "crop_wh") in annotations else {}
        ratio = _parse_table(annotations[(g, "crop_ratio")], 1, float) if (g, "crop_ratio") in annotations else {}
        res = _parse_table(annotations[(g, "resolution")], 1, int) if (g, "resolution") in annotations else {}
        for name, ranges in sorted(times.items()):
            stem = f"{g}_{name}"
            if stem not in videos:
                missing.append(UnexpectedFile(root / f"{stem}.mp4", "annotated source video not found"))
                continue
            used.add(stem)
            for k, (start, end) in enumerate(ranges):
                key = f"{name}_{k}"
                wh = crop_wh.get(key)
                clips.append(
                    ClipSource(
                        clip_id=f"hdtf/{stem}_{k}", dataset="hdtf", speaker=hdtf_identity(g, name),
                        split="test" if stem in heldout else "train", video_path=videos[stem], audio_path=None,
                        audio_id=f"hdtf/{stem}_{k}", start_s=start, end_s=end,
                        hdtf_crop_wh=tuple(wh) if wh else None,
                        hdtf_crop_ratio=ratio[key][0] if key in ratio else None,
                        hdtf_resolution=res[name][0] if name in res else None,
                    )
                )
    for stem, p in sorted(videos.items()):
        if stem not in used:
            unexpected.append(UnexpectedFile(p, "source video not listed in any *_annotion_time.txt"))
    for u in unexpected:
        log.warning("HDTF: unexpected %s: %s", u.path, u.reason)
    if missing:
        log.info("HDTF: %d annotated source videos are not on disk", len(missing))
    return HdtfDiscovery(tuple(clips), tuple(unexpected), tuple(missing))
