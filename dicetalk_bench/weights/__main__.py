"""``python -m dicetalk_bench.weights``: the weights CLI (:mod:`.cli`), with every random-weights builder loaded.

The builders live with the modules that load each file and register themselves on import
(:mod:`dicetalk_bench.random_weight_builders` imports them, only for ``make-random``: ``--help`` and ``list`` stay
free of torch).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from dicetalk_bench.random_weight_builders import register_random_builders

from .cli import main as _cli_main


def main(argv: Sequence[str] | None = None) -> int:
    """The weights CLI with all builders registered before ``make-random``."""
    return _cli_main(argv, before_make_random=register_random_builders)


if __name__ == "__main__":
    sys.exit(main())
