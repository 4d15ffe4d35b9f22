"""The skip logic of optional test resources (espeak-ng, chromium, Playwright, the released priors): run, skip with a
reason, or fail in CI."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from optional_resources import (PRIOR_EMOTIONS, REPO, REQUIRE_ENV, SHARED_DIR_ENV, decide, executable_missing,
                                module_missing, official_priors_dir, priors_missing, shared_dir)


def test_shared_dir_is_overridable_and_defaults_beside_the_clone(tmp_path: Path) -> None:
    assert shared_dir({}) == REPO.parent / "shared"
    assert shared_dir({SHARED_DIR_ENV: str(tmp_path)}) == tmp_path
    assert official_priors_dir({SHARED_DIR_ENV: str(tmp_path)}) == tmp_path / "reference" / "official_priors"


def test_empty_shared_dir_skips_with_the_fix_and_fails_when_required(tmp_path: Path) -> None:
    folder = official_priors_dir({SHARED_DIR_ENV: str(tmp_path)})
    reason = priors_missing(folder)
    assert reason is not None and str(folder) in reason and SHARED_DIR_ENV in reason
    assert "angry.npy" in reason and "surprised.npy" in reason
    assert decide(reason, {}) == "skip"
    assert decide(reason, {REQUIRE_ENV: "0"}) == "skip"
    assert decide(reason, {REQUIRE_ENV: "1"}) == "fail"


def test_complete_priors_folder_runs(tmp_path: Path) -> None:
    folder = official_priors_dir({SHARED_DIR_ENV: str(tmp_path)})
    folder.mkdir(parents=True)
    for name in PRIOR_EMOTIONS[:-1]:
        np.save(folder / f"{name}.npy", np.zeros(256, np.float32))
    assert "surprised.npy" in priors_missing(folder) and "angry.npy" not in priors_missing(folder)
    np.save(folder / "surprised.npy", np.zeros(256, np.float32))
    assert priors_missing(folder) is None
    assert decide(priors_missing(folder), {REQUIRE_ENV: "1"}) == "run"


def test_missing_executable_skips_or_fails_and_a_present_one_runs(tmp_path: Path) -> None:
    reason = executable_missing("espeak-ng", "apt-get install espeak-ng", which=lambda name: None)
    assert reason == "espeak-ng is not installed (apt-get install espeak-ng)"
    assert decide(reason, {}) == "skip" and decide(reason, {REQUIRE_ENV: "1"}) == "fail"
    tool = tmp_path / "espeak-ng"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    import shutil

    found = executable_missing("espeak-ng", "x", which=lambda name: shutil.which(name, path=str(tmp_path)))
    assert found is None and decide(found, {REQUIRE_ENV: "1"}) == "run"
    assert executable_missing("espeak-ng", "x", which=lambda name: shutil.which(name, path=str(tmp_path / "no"))) \
        is not None


def test_missing_module_skips_or_fails_and_an_importable_one_runs() -> None:
    reason = module_missing("playwright", "pip install playwright", find_spec=lambda name: None)
    assert reason == "the Python module playwright is not installed (pip install playwright)"
    assert decide(reason, {}) == "skip" and decide(reason, {REQUIRE_ENV: "1"}) == "fail"
    assert module_missing("json", "x") is None
    assert module_missing("no_such_module_dicetalk_bench", "x") is not None
