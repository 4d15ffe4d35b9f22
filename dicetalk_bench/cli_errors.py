"""How every command line ends on a set-up error: one line on stderr and exit status 1, no traceback (unless -v).

Set-up errors are problems the user fixes before the command can run: missing or wrong weights, bad options or
config keys, missing inputs, a wrong checkpoint kind, a set too small. Their messages name the fix. Per-item
failures never reach here (they are recorded and counted by the stage), and errors of other types (bugs) keep their
traceback.

Importing this module imports nothing heavy: the error types of a module count only once that module is imported
(an error of a module never imported cannot have been raised).
"""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Callable

from dicetalk_bench.errors import SetupError

logger = logging.getLogger(__name__)

# (module, class name) of the set-up error types beyond SetupError, ValueError (ConfigError, DatasetError,
# MetricRegistryError, SmallSetError, ResultFormatError are ValueErrors) and FileNotFoundError
_SETUP_ERRORS: tuple[tuple[str, str], ...] = (
    ("dicetalk_bench.weights", "WeightsError"),
    ("dicetalk_bench.media", "MediaError"),
    ("dicetalk_bench.evaluate", "EvaluateError"),
    ("dicetalk_bench.model.cost", "MemoryBudgetError"),
)

EXIT_SETUP_ERROR = 1


def setup_error_types() -> tuple[type[BaseException], ...]:
    """The exception types reported as set-up errors (those of the modules imported so far)."""
    types: list[type[BaseException]] = [SetupError, ValueError, FileNotFoundError]
    for module_name, class_name in _SETUP_ERRORS:
        module = sys.modules.get(module_name)
        if module is not None:
            types.append(getattr(module, class_name))
    return tuple(types)


def run_cli(command: Callable[[], int], *, verbose: bool = False) -> int:
    """``command()``; a set-up error becomes ``error: <message>`` on stderr and exit status 1 (traceback with
    ``verbose``)."""
    try:
        return command()
    except setup_error_types() as exc:
        if verbose:
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_SETUP_ERROR
