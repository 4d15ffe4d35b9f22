"""The dataset facts every stage shares, in one place: MEAD's emotions, levels, views and test speakers, its
file-name emotion codes, the HDTF held-out list and the clip-id grammar.

Everything else imports these names; ``tests/test_datasets.py`` scans the package for stray copies. Importing this
module imports nothing heavy.
"""

from __future__ import annotations

import re
from importlib import resources

#: The 8 MEAD emotions, in the order of the DICE-Talk emotion priors (toto222/DICE-Talk examples/emo) and of the
#: emotion classifiers' outputs.
MEAD_EMOTIONS: tuple[str, ...] = ("angry", "contempt", "disgusted", "fear", "happy", "neutral", "sad", "surprised")
#: The 7 emotions recorded at three intensity levels (neutral has level 1 only).
LEVELLED_EMOTIONS: tuple[str, ...] = tuple(e for e in MEAD_EMOTIONS if e != "neutral")
#: MEAD intensity levels (folder ``level_{n}``).
MEAD_LEVELS: tuple[int, ...] = (1, 2, 3)
#: The 7 MEAD camera views (folder names).
MEAD_VIEWS: tuple[str, ...] = ("front", "down", "top", "left_30", "left_60", "right_30", "right_60")
#: Test identities of the split used by EAT (yuangan/EAT_code test_mead.py) and later works.
MEAD_TEST_SPEAKERS: tuple[str, ...] = ("M003", "M030", "W009", "W015")
#: Three-letter emotion codes used in MEAD-derived file names (EAT parses labels from them).
MEAD_EMOTION_CODES: dict[str, str] = {e[:3]: e for e in MEAD_EMOTIONS}

#: Clip ids (docs/data_format.md): MEAD ``mead/{speaker}/{view}/{emotion}/level_{n}/{sentence}``, HDTF
#: ``hdtf/{group}_{name}_{k}``.
MEAD_CLIP_ID = re.compile(r"^mead/(?P<speaker>[MW]\d{3})/(?P<view>[a-z_0-9]+)/(?P<emotion>[a-z]+)/level_(?P<level>\d)"
                          r"/(?P<sentence>\d{3})$")
HDTF_CLIP_ID = re.compile(r"^hdtf/(?P<group>[A-Za-z]+)_(?P<name>.+)_(?P<k>\d+)$")


def hdtf_heldout_sources() -> tuple[str, ...]:
    """The HDTF source videos held out for testing (``preprocessing/hdtf_heldout.txt``; comments and blanks
    skipped)."""
    text = resources.files("dicetalk_bench.preprocessing").joinpath("hdtf_heldout.txt").read_text(encoding="utf-8")
    return tuple(line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#"))
