"""The toolkit's git commit and uncommitted-changes flag, checked on a throw-away repository."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from dicetalk_bench import git_state
from optional_resources import require_executable


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    git = require_executable("git", "apt-get install git")
    root = tmp_path / "repo"
    root.mkdir()

    def run(*args: str) -> None:
        subprocess.run([git, "-C", str(root), *args], check=True, capture_output=True)

    run("init", "-q")
    (root / "a.txt").write_text("one\n")
    run("add", "a.txt")
    run("-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-q", "-m", "first")
    return root


def _head_from_files(root: Path) -> str:
    """HEAD read from .git's files (independently of git rev-parse)."""
    head = (root / ".git" / "HEAD").read_text().strip()
    if head.startswith("ref: "):
        ref = root / ".git" / head[5:]
        return ref.read_text().strip()
    return head


def test_commit_is_the_checked_out_head(repo: Path) -> None:
    commit = git_state.git_commit(repo)
    assert commit == _head_from_files(repo) and len(commit) == 40


def test_dirty_only_for_changes_to_tracked_files(repo: Path) -> None:
    assert git_state.git_dirty(repo) is False
    (repo / "new.txt").write_text("untracked\n")
    assert git_state.git_dirty(repo) is False
    (repo / "a.txt").write_text("two\n")
    assert git_state.git_dirty(repo) is True


def test_not_a_checkout_or_no_git_gives_none(tmp_path: Path, repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    assert git_state.git_commit(plain) is None and git_state.git_dirty(plain) is None
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    assert git_state.git_dirty(repo) is None


def test_the_toolkit_checkout_is_found() -> None:
    assert (git_state.SOURCE_ROOT / "dicetalk_bench" / "__init__.py").is_file()  # the folder above the package
