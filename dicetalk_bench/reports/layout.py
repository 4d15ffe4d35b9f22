"""How a leaderboard page lays its metric columns out: the groups the field reads them in, and their decimals.

Emotional talking-head papers (e.g. DICE-Talk, arXiv:2504.18087) group their tables as image quality
(PSNR, SSIM, LPIPS), distribution distances (FID, FVD, KID), lip sync (Sync-C, Sync-D), emotion accuracy and
identity (CSIM), and print each metric with a fixed number of decimals. :class:`PageLayout` holds both: the order of
the groups (configurable, ``evaluate leaderboard --column-groups``) and one table of decimals per metric, used by the
HTML page and the LaTeX table alike. A metric in no group goes to a trailing "Other" group; a metric without an
entry in the decimals table is printed with 4 significant digits (:func:`fmt`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

#: group name -> (heading, metric keys in the order the field prints them)
METRIC_GROUPS: Mapping[str, tuple[str, tuple[str, ...]]] = {
    "image": ("Image quality", ("psnr", "ssim", "lpips")),
    "distribution": ("Distribution", ("fid", "fvd", "kid")),
    "sync": ("Lip sync", ("sync-c", "sync-d")),
    "emotion": ("Emotion", ("emo-acc",)),
    "identity": ("Identity", ("csim",)),
}
DEFAULT_GROUP_ORDER: tuple[str, ...] = ("image", "distribution", "sync", "emotion", "identity")
OTHER_GROUP = ("other", "Other")

#: decimals printed per metric (PSNR in dB, emotion accuracy in %, the others in their own units)
DECIMALS: Mapping[str, int] = {"psnr": 2, "ssim": 3, "lpips": 3, "fid": 2, "fvd": 1, "kid": 4, "sync-c": 2,
                               "sync-d": 2, "emo-acc": 2, "csim": 3}


def parse_group_order(text: str) -> tuple[str, ...]:
    """``"sync,image"`` -> ``("sync", "image", <the other groups in their default order>)``.

    Raises ValueError naming the valid group names for an unknown or repeated name.
    """
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in METRIC_GROUPS]
    if unknown:
        raise ValueError(f"unknown column group(s) {unknown}; valid names: {', '.join(DEFAULT_GROUP_ORDER)}")
    if len(set(names)) != len(names):
        raise ValueError(f"column group order {text!r} names a group twice")
    return names + tuple(n for n in DEFAULT_GROUP_ORDER if n not in names)


def fmt(value: float | None) -> str:
    """A score for display: 4 significant digits, plain notation for 1e-4 <= |v| < 1e5; inf, -inf and NaN as
    such; None as a dash."""
    if value is None:
        return "\u2013"
    if not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    a = abs(value)
    if a == 0 or 1e-4 <= a < 1e5:
        return f"{value:.4g}" if a < 1e4 else f"{value:.0f}"
    return f"{value:.3e}"


@dataclasses.dataclass(frozen=True)
class PageLayout:
    """Column group order (names of :data:`METRIC_GROUPS`; missing ones follow in default order) and decimals."""

    group_order: tuple[str, ...] = DEFAULT_GROUP_ORDER
    decimals: Mapping[str, int] = dataclasses.field(default_factory=lambda: dict(DECIMALS))

    def __post_init__(self) -> None:
        object.__setattr__(self, "group_order", parse_group_order(",".join(self.group_order)))
        bad = {k: d for k, d in self.decimals.items() if not isinstance(d, int) or d < 0}
        if bad:
            raise ValueError(f"decimals must be non-negative integers, got {bad}")

    def group_of(self, key: str) -> str:
        """The group name of a metric key (:data:`OTHER_GROUP`'s name when it is in none)."""
        for name, (_, keys) in METRIC_GROUPS.items():
            if key in keys:
                return name
        return OTHER_GROUP[0]

    def order_keys(self, keys: Sequence[str]) -> list[str]:
        """``keys`` sorted by group (in :attr:`group_order`, then "other"), then by the group's own order; keys of
        the "other" group keep their given order."""
        rank = {name: i for i, name in enumerate(self.group_order)}
        given = {k: i for i, k in enumerate(keys)}

        def key(k: str) -> tuple[int, int]:
            g = self.group_of(k)
            if g == OTHER_GROUP[0]:
                return (len(rank), given[k])
            return (rank[g], METRIC_GROUPS[g][1].index(k))

        return sorted(keys, key=key)

    def groups(self, keys: Sequence[str]) -> list[tuple[str, str, list[str]]]:
        """``(group name, heading, keys)`` runs of :meth:`order_keys`'s order, empty groups left out."""
        out: list[tuple[str, str, list[str]]] = []
        for k in self.order_keys(keys):
            g = self.group_of(k)
            heading = METRIC_GROUPS[g][0] if g in METRIC_GROUPS else OTHER_GROUP[1]
            if out and out[-1][0] == g:
                out[-1][2].append(k)
            else:
                out.append((g, heading, [k]))
        return out

    def format(self, key: str, value: float | None) -> str:
        """A value of metric ``key`` for display: its decimals; inf, -inf and NaN as such; None as a dash."""
        d = self.decimals.get(key)
        if d is None or value is None or not math.isfinite(value):
            return fmt(value)
        text = f"{value:.{d}f}"
        return "0" + text[2:] if text.startswith("-0") and float(text) == 0 else text
