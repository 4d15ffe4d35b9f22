"""Where the toolkit's own source stands in git: its commit and whether the work tree has uncommitted changes.

Read-only queries of the checkout that holds this package (``git rev-parse HEAD``, ``git status --porcelain``);
each answer is None when the package is not a git checkout (e.g. an installed wheel) or git is unavailable.
"""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

#: The checkout that holds the package (``dicetalk_bench/..``).
SOURCE_ROOT = Path(__file__).resolve().parents[1]


def _git(*args: str, timeout_s: float = 10.0, root: Path = SOURCE_ROOT) -> str | None:
    """stdout of ``git -C root ARGS``, or None when ``root`` is not a checkout, git is missing, fails or times out."""
    if not (root / ".git").exists():  # a folder, or a file in a linked work tree
        return None
    try:
        out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=timeout_s,
                             check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


@functools.lru_cache(maxsize=4)
def git_commit(root: Path = SOURCE_ROOT) -> str | None:
    """The commit the checkout ``root`` (default: the toolkit's) is at, 40 hex digits, or None. Cached for the
    process."""
    out = _git("rev-parse", "HEAD", timeout_s=5.0, root=root)
    return (out.strip() or None) if out is not None else None


def git_dirty(root: Path = SOURCE_ROOT) -> bool | None:
    """True when tracked files of the checkout ``root`` (default: the toolkit's) have uncommitted changes (numbers
    may not match the commit), False when clean, None when unknown. Untracked files do not count."""
    out = _git("status", "--porcelain", "--untracked-files=no", root=root)
    return bool(out.strip()) if out is not None else None
