"""MFCC with python_speech_features 0.6 semantics (the features SyncNet was trained on).

syncnet_python calls ``python_speech_features.mfcc(audio, 16000)`` on the raw int16-scale samples read by
``scipy.io.wavfile``. The defaults of the 0.6 PyPI release are pinned here (GitHub master differs: nfft=None,
lowfreq=20, hamming window), re-implemented in numpy/scipy from the documented maths:

- frames of 400 samples (25 ms) every 160 samples (10 ms, i.e. 100 Hz), rectangular window,
  ``n_frames = 1 + ceil((N - 400) / 160)`` (1 when N <= 400), the last frame zero-padded;
- pre-emphasis ``y[0] = x[0], y[n] = x[n] - 0.97 x[n-1]``;
- power spectrum ``|rfft(frame, 512)|^2 / 512``;
- 26 triangular mel filters from 0 Hz to sr/2 whose edges are FFT bins ``floor((nfft + 1) * hz / sr)``;
- log of the filterbank energies (0 replaced by float eps), DCT-II (orthonormal), first 13 coefficients;
- lifter ``1 + (L / 2) sin(pi n / L)`` with L = 22;
- c0 replaced by the log of the total frame power (0 replaced by float eps).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy.fft import dct

from dicetalk_bench.pcm import float_to_pcm16

__all__ = ["MfccConfig", "mfcc", "mel_filterbank", "frame_signal", "n_mfcc_frames"]


@dataclass(frozen=True)
class MfccConfig:
    """python_speech_features 0.6 ``mfcc`` defaults (as called by syncnet_python with samplerate=16000)."""

    sample_rate: int = 16000
    win_length_s: float = 0.025
    win_step_s: float = 0.01
    n_cep: int = 13
    n_filters: int = 26
    n_fft: int = 512
    low_freq_hz: float = 0.0
    high_freq_hz: float | None = None  # None -> sample_rate / 2
    preemphasis: float = 0.97
    cep_lifter: int = 22
    append_energy: bool = True


def _round_half_up(x: float) -> int:
    # python_speech_features rounds the frame length/step (in samples) half up.
    return int(math.floor(x + 0.5))


def n_mfcc_frames(n_samples: int, frame_len: int = 400, frame_step: int = 160) -> int:
    """Number of frames python_speech_features produces for ``n_samples`` samples."""
    if n_samples <= frame_len:
        return 1
    return 1 + int(math.ceil((n_samples - frame_len) / frame_step))


def frame_signal(signal: np.ndarray, frame_len: int, frame_step: int) -> np.ndarray:
    """(N,) float64 -> (F, frame_len) frames, rectangular window, last frame zero-padded."""
    n_frames = n_mfcc_frames(len(signal), frame_len, frame_step)
    pad_len = (n_frames - 1) * frame_step + frame_len
    padded = np.zeros(pad_len, dtype=np.float64)
    padded[: len(signal)] = signal
    idx = np.arange(frame_len)[None, :] + frame_step * np.arange(n_frames)[:, None]
    return padded[idx]


def _hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


@functools.lru_cache(maxsize=8)
def mel_filterbank(n_filters: int, n_fft: int, sample_rate: int, low_hz: float, high_hz: float) -> np.ndarray:
    """(n_filters, n_fft // 2 + 1) float64 triangular filters on integer FFT-bin edges (read-only)."""
    if high_hz > sample_rate / 2:
        raise ValueError(f"high_freq_hz={high_hz} exceeds the Nyquist frequency {sample_rate / 2}")
    mel_points = np.linspace(_hz_to_mel(low_hz), _hz_to_mel(high_hz), n_filters + 2)
    edges = np.floor((n_fft + 1) * _mel_to_hz(mel_points) / sample_rate)
    bins = np.arange(n_fft // 2 + 1, dtype=np.float64)[None, :]
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        rising = np.where((bins >= lo) & (bins < mid), (bins - lo) / (mid - lo), 0.0)
        falling = np.where((bins >= mid) & (bins < hi), (hi - bins) / (hi - mid), 0.0)
    fb = rising + falling
    fb.setflags(write=False)
    return fb


def mfcc(signal: np.ndarray, config: MfccConfig = MfccConfig()) -> np.ndarray:
    """MFCC of a mono signal.

    Args:
        signal: (N,) samples at ``config.sample_rate``, int16 **scale** (int16 array, or floats in [-32768, 32767]).
            Passing [-1, 1] floats shifts c0 by log(32768^2); see :func:`mfcc_from_float`.
    Returns:
        (F, n_cep) float64, F = 1 + ceil((N - 400) / 160), one row per 10 ms.
    """
    x = np.asarray(signal)
    if x.ndim != 1:
        raise ValueError(f"mfcc expects a mono (N,) signal, got shape {x.shape}")
    x = x.astype(np.float64)
    high_hz = config.high_freq_hz if config.high_freq_hz else config.sample_rate / 2
    if len(x):
        x = np.concatenate([x[:1], x[1:] - config.preemphasis * x[:-1]])
    frames = frame_signal(
        x,
        _round_half_up(config.win_length_s * config.sample_rate),
        _round_half_up(config.win_step_s * config.sample_rate),
    )
    power = np.square(np.abs(np.fft.rfft(frames, config.n_fft))) / config.n_fft
    eps = np.finfo(np.float64).eps
    energy = power.sum(axis=1)
    energy = np.where(energy == 0, eps, energy)
    fb = mel_filterbank(config.n_filters, config.n_fft, config.sample_rate, config.low_freq_hz, float(high_hz))
    feat = power @ fb.T
    feat = np.where(feat == 0, eps, feat)
    cep = dct(np.log(feat), type=2, axis=1, norm="ortho")[:, : config.n_cep]
    if config.cep_lifter > 0:
        n = np.arange(cep.shape[1])
        cep = cep * (1.0 + (config.cep_lifter / 2.0) * np.sin(np.pi * n / config.cep_lifter))
    if config.append_energy:
        cep[:, 0] = np.log(energy)
    return cep


def mfcc_from_float(samples: np.ndarray, config: MfccConfig = MfccConfig()) -> np.ndarray:
    """MFCC of float samples in [-1, 1] (as ``media.read_audio`` returns them), quantised to int16 first.

    syncnet_python reads a PCM16 wav, so the samples are quantised to int16 as ffmpeg's pcm_s16le encoder does
    (:func:`dicetalk_bench.pcm.float_to_pcm16`: x 32768, rounded, saturated) and stay in int16 units.
    """
    return mfcc(float_to_pcm16(np.asarray(samples, dtype=np.float64)), config)
