"""16-bit PCM quantisation of float audio, as FFmpeg's ``pcm_s16le`` encoder does it.

FFmpeg (libswresample) converts float samples to signed 16-bit by scaling by 2^15 = 32768, rounding to the nearest
integer and saturating to [-32768, 32767]; decoding divides by 32768. The toolkit writes PCM WAV this way
(:mod:`dicetalk_bench.media`) and feeds SyncNet's MFCC the int16-scale samples a PCM16 WAV read gives
(syncnet_python, ``github.com/joonson/syncnet_python``, reads the WAV with ``scipy.io.wavfile``).
"""

from __future__ import annotations

import numpy as np

PCM16_SCALE = 32768.0  #: float 1.0 in int16 units (decoding divides by it)


def float_to_pcm16(audio: np.ndarray) -> np.ndarray:
    """Samples as int16 PCM, any shape: floats in [-1, 1] are scaled by 32768, rounded half to even and saturated
    to [-32768, 32767] (so 1.0 -> 32767, -1.0 -> -32768); int16 input is returned as is. Other dtypes (e.g. int32,
    whose scale is unknown) raise ValueError."""
    a = np.asarray(audio)
    if a.dtype == np.int16:
        return a
    if not np.issubdtype(a.dtype, np.floating):
        raise ValueError(f"audio must be int16 or float in [-1, 1], got dtype {a.dtype}")
    return np.clip(np.round(a.astype(np.float64) * PCM16_SCALE), -32768, 32767).astype(np.int16)
