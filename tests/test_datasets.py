"""One copy of each dataset fact: the package imports them from dicetalk_bench.datasets."""

from __future__ import annotations

import re
from pathlib import Path

import dicetalk_bench
from dicetalk_bench import datasets

PACKAGE = Path(dicetalk_bench.__file__).parent


def _sources():
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name != "datasets.py":
            yield path, path.read_text(encoding="utf-8")


def test_no_stray_copy_of_the_emotion_list_or_the_test_speakers():
    # three or more emotion names in a row, or the four test speakers, written as literals anywhere else (a demo
    # that picks two of them is a choice, not a copy of the split)
    emotions = "|".join(datasets.MEAD_EMOTIONS)
    emotion_run = re.compile(rf"""["']({emotions})["']\s*,\s*["']({emotions})["']\s*,\s*["']({emotions})["']""")
    speakers = "|".join(datasets.MEAD_TEST_SPEAKERS)
    speaker_run = re.compile(r"\s*,\s*".join([rf"""["']({speakers})["']"""] * 4))
    views = re.compile(r"""["']left_30["']\s*,\s*["']left_60["']""")
    stray = [f"{p.relative_to(PACKAGE)}:{text[:m.start()].count(chr(10)) + 1}" for p, text in _sources()
             for pattern in (emotion_run, speaker_run, views) for m in pattern.finditer(text)]
    assert stray == [], f"dataset facts copied instead of imported from dicetalk_bench.datasets: {stray}"


def test_the_scan_finds_a_copy(tmp_path):
    emotions = "|".join(datasets.MEAD_EMOTIONS)
    emotion_run = re.compile(rf"""["']({emotions})["']\s*,\s*["']({emotions})["']\s*,\s*["']({emotions})["']""")
    assert emotion_run.search('X = ("angry", "contempt",\n     "disgusted")')


def test_facts_and_grammar():
    assert len(datasets.MEAD_EMOTIONS) == 8 and "neutral" not in datasets.LEVELLED_EMOTIONS
    assert datasets.MEAD_EMOTION_CODES["sur"] == "surprised" and len(datasets.MEAD_EMOTION_CODES) == 8
    m = datasets.MEAD_CLIP_ID.match("mead/M003/left_30/happy/level_2/014")
    assert m and m["speaker"] == "M003" and m["view"] == "left_30" and m["level"] == "2"
    assert not datasets.MEAD_CLIP_ID.match("mead/../happy/level_2/014")
    assert datasets.HDTF_CLIP_ID.match("hdtf/WDA_BarackObama_000_3")["k"] == "3"
    held = datasets.hdtf_heldout_sources()
    assert held and all(not h.startswith("#") for h in held)
    from dicetalk_bench.metrics.emotion import MEAD_EMOTIONS
    from dicetalk_bench.model.priors import PRIOR_EMOTIONS
    from dicetalk_bench.preprocessing.discovery_mead import EAT_TEST_SPEAKERS, EMOTIONS

    assert MEAD_EMOTIONS is PRIOR_EMOTIONS is EMOTIONS is datasets.MEAD_EMOTIONS
    assert EAT_TEST_SPEAKERS is datasets.MEAD_TEST_SPEAKERS
