"""Optional test resources: system tools (espeak-ng, chromium), a Python package that drives one (Playwright) and the
released emotion priors, which a fresh clone lacks.

A test that needs one calls :func:`require_executable`, :func:`require_module` or :func:`require_official_priors`. When the resource is
there the test runs; when it is absent the test is skipped with the reason and the fix, unless
``DICETALK_BENCH_REQUIRE_OPTIONAL=1`` (set by ``.ci/run``, where all are provided), in which case it fails, so that CI
can never pass by skipping them.

The released priors are looked up in ``$DICETALK_BENCH_SHARED_DIR/reference/official_priors``; the default shared
folder is ``shared/`` beside the repository clone. The decision itself is the pure function :func:`decide`.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path
from typing import Callable, Literal, Mapping

SHARED_DIR_ENV = "DICETALK_BENCH_SHARED_DIR"
REQUIRE_ENV = "DICETALK_BENCH_REQUIRE_OPTIONAL"
REPO = Path(__file__).resolve().parents[1]
PRIOR_EMOTIONS = ("angry", "contempt", "disgusted", "fear", "happy", "neutral", "sad", "surprised")


def shared_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """The shared reference folder: ``$DICETALK_BENCH_SHARED_DIR``, else ``shared/`` beside the clone."""
    value = environ.get(SHARED_DIR_ENV)
    return Path(value) if value else REPO.parent / "shared"


def official_priors_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """Where the eight released ``<emotion>.npy`` priors are expected."""
    return shared_dir(environ) / "reference" / "official_priors"


def priors_missing(folder: Path) -> str | None:
    """None when ``folder`` holds the eight release priors, else why not (names the folder and the files)."""
    missing = [f"{e}.npy" for e in PRIOR_EMOTIONS if not (folder / f"{e}.npy").is_file()]
    if not missing:
        return None
    return (f"the released emotion priors are not in {folder} (missing {', '.join(missing)}); put the eight "
            f"examples/emo/*.npy of toto222/DICE-Talk there or set {SHARED_DIR_ENV} to a folder with "
            f"reference/official_priors/")


def executable_missing(name: str, hint: str, which: Callable[[str], str | None] = shutil.which) -> str | None:
    """None when ``name`` is on PATH, else why not with ``hint`` (how to install it)."""
    return None if which(name) else f"{name} is not installed ({hint})"


def module_missing(name: str, hint: str, find_spec: Callable[[str], object | None] = importlib.util.find_spec
                   ) -> str | None:
    """None when the Python module ``name`` can be imported, else why not with ``hint`` (how to install it)."""
    return None if find_spec(name) is not None else f"the Python module {name} is not installed ({hint})"


def decide(missing: str | None, environ: Mapping[str, str] = os.environ) -> Literal["run", "skip", "fail"]:
    """``run`` when nothing is missing; otherwise ``fail`` if ``DICETALK_BENCH_REQUIRE_OPTIONAL=1``, else ``skip``."""
    if missing is None:
        return "run"
    return "fail" if environ.get(REQUIRE_ENV, "") == "1" else "skip"


def _apply(missing: str | None) -> None:
    import pytest

    action = decide(missing)
    if action == "skip":
        pytest.skip(missing)
    if action == "fail":
        pytest.fail(f"{missing}; {REQUIRE_ENV}=1 requires it (CI provides it in .ci/run)")


def require_executable(name: str, hint: str) -> str:
    """Skip (or, in CI, fail) the calling test unless ``name`` is on PATH; returns its path."""
    _apply(executable_missing(name, hint))
    return str(shutil.which(name))


def require_module(name: str, hint: str) -> None:
    """Skip (or, in CI, fail) the calling test unless the Python module ``name`` can be imported."""
    _apply(module_missing(name, hint))


def require_official_priors() -> Path:
    """Skip (or, in CI, fail) the calling test unless the released priors are present; returns their folder."""
    folder = official_priors_dir()
    _apply(priors_missing(folder))
    return folder
