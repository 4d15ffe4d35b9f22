"""Every random-weights builder, registered: the modules that load each pretrained file register their builder
(:func:`dicetalk_bench.weights.register_random_builder`) when imported, so whatever writes random weights for any
key (the weights CLI's ``make-random``, the demo chain) imports them all here first. This sits above the model, the
metrics and preprocessing, which the weights package below them may not import.
"""

from __future__ import annotations


def register_random_builders() -> None:
    """Import every module that registers a random-weights builder."""
    from dicetalk_bench.metrics import emotion, hsemotion, i3d, identity, inception, pixel, syncnet  # noqa: F401
    from dicetalk_bench.model import official, rife, svd  # noqa: F401
    from dicetalk_bench.preprocessing import landmarks, whisper  # noqa: F401
