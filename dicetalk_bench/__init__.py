"""dicetalk_bench: data preparation, the DICE-Talk model and evaluation for emotional talking heads.

Importing the package is cheap on purpose: heavy dependencies (torch, mediapipe, dask) are imported by the
modules that need them, so every CLI answers ``--help`` at once.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
