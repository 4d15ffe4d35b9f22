"""``python -m dicetalk_bench.weights``: the weights CLI (:mod:`.cli`), with every random-weights builder loaded.

The builders live with the modules that load each file and register themselves on import; this entry point sits
above the model, the metrics and preprocessing, so it may import them (only for ``make-random``: ``--help`` and
``list`` stay free of torch).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from .cli import main as _cli_main


def register_random_builders() -> None:
    """Import every module that registers a random-weights builder (see ``register_random_builder``)."""
    from dicetalk_bench.metrics import emotion, hsemotion, i3d, identity, inception, pixel, syncnet  # noqa: F401
    from dicetalk_bench.model import official, rife, svd  # noqa: F401
    from dicetalk_bench.preprocessing import landmarks, whisper  # noqa: F401


def main(argv: Sequence[str] | None = None) -> int:
    """The weights CLI with all builders registered before ``make-random``."""
    return _cli_main(argv, before_make_random=register_random_builders)


if __name__ == "__main__":
    sys.exit(main())
