"""Demo speech: utterances cut from the CMU ARCTIC sample (or espeak-ng), emotional prosody, mouth envelope.

All functions are pure numpy / scipy on ``(S,) float32`` mono signals at ``rate`` Hz; randomness comes only
from the ``numpy.random.Generator`` passed in, so a seed fixes every sample.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from scipy.signal import lfilter, resample_poly

from dicetalk_bench.pcm import PCM16_SCALE

from .emotions import VoiceParams

log = logging.getLogger(__name__)

SPEECH_RATE = 16000

#: Sentences for ``--tts espeak`` (written for this project; the sentence number picks one).
TTS_SENTENCES: tuple[str, ...] = (
    "The quiet river carried seven paper boats past the old mill.",
    "Please bring the blue folder to the meeting on Thursday.",
    "A sudden storm rolled over the hills before noon.",
    "We planted tomatoes, beans and sunflowers along the fence.",
    "The train to the coast leaves at half past eight.",
    "Nobody expected the little robot to win the chess match.",
    "Bright lanterns lit the narrow street during the festival.",
    "She counted the coins twice and still found one missing.",
)


def segment_speech(x: np.ndarray, rate: int = SPEECH_RATE, min_len_s: float = 0.18,
                   max_len_s: float = 0.6) -> list[tuple[int, int]]:
    """Word-like pieces of speech: (start, stop) sample ranges between low-energy frames (10 ms frames).

    Silences (frame RMS below 8 % of the 95th percentile) separate pieces; pieces longer than ``max_len_s``
    are cut at their quietest frame; pieces shorter than ``min_len_s`` are dropped.
    """
    hop = rate // 100
    n = len(x) // hop
    rms = np.sqrt(np.mean(x[: n * hop].reshape(n, hop).astype(np.float64) ** 2, axis=1))
    voiced = rms > 0.08 * np.percentile(rms, 95)
    pieces: list[tuple[int, int]] = []
    i = 0
    while i < n:
        if not voiced[i]:
            i += 1
            continue
        j = i
        while j < n and voiced[j]:
            j += 1
        stack = [(i, j)]
        while stack:
            a, b = stack.pop()
            if (b - a) * hop > max_len_s * rate:
                mid = a + (b - a) // 4 + int(np.argmin(rms[a + (b - a) // 4: b - (b - a) // 4]))
                stack.extend([(mid, b), (a, mid)])
            elif (b - a) * hop >= min_len_s * rate:
                pieces.append((a * hop, b * hop))
        i = j
    pieces.sort()
    return pieces


def _fade(x: np.ndarray, n: int) -> np.ndarray:
    n = min(n, len(x) // 2)
    if n > 0:
        ramp = np.linspace(0.0, 1.0, n, dtype=np.float32)
        x = x.copy()
        x[:n] *= ramp
        x[-n:] *= ramp[::-1]
    return x


def assemble_utterance(x: np.ndarray, pieces: list[tuple[int, int]], duration_s: float,
                       rng: np.random.Generator, rate: int = SPEECH_RATE) -> tuple[np.ndarray, list[int]]:
    """Concatenate randomly ordered pieces with short pauses until ``duration_s`` is filled (plus 40 % slack).

    Returns the signal and the piece order used (indices into ``pieces``), which the manifest records.
    """
    if not pieces:
        raise ValueError("no speech pieces to assemble (is the source silent?)")
    target = int(duration_s * 1.4 * rate)
    out: list[np.ndarray] = [np.zeros(int(rng.uniform(0.05, 0.15) * rate), np.float32)]
    order: list[int] = []
    total = len(out[0])
    while total < target:
        k = int(rng.integers(len(pieces)))
        a, b = pieces[k]
        seg = _fade(x[a:b].astype(np.float32), int(0.01 * rate))
        gap = np.zeros(int(rng.uniform(0.04, 0.18) * rate), np.float32)
        out += [seg, gap]
        order.append(k)
        total += len(seg) + len(gap)
    return np.concatenate(out), order


def _smooth_noise(n: int, rate: int, hz: float, rng: np.random.Generator) -> np.ndarray:
    """(n,) zero-mean unit-std noise band-limited to about ``hz`` (knots interpolated with a cosine)."""
    n_knots = max(int(n / rate * hz) + 2, 2)
    knots = rng.standard_normal(n_knots)
    pos = np.linspace(0, n_knots - 1, n)
    i = np.minimum(pos.astype(int), n_knots - 2)
    f = (1 - np.cos(np.pi * (pos - i))) / 2
    return knots[i] * (1 - f) + knots[i + 1] * f


def vary_pitch(x: np.ndarray, semitones: np.ndarray) -> np.ndarray:
    """Resampling pitch shift with a per-output-sample shift (changes duration by the mean factor)."""
    factor = 2.0 ** (np.asarray(semitones, np.float64) / 12.0)
    # read positions advance by the local factor; output length so that the last position is inside x
    mean = float(np.mean(factor))
    n_out = int((len(x) - 1) / mean)
    f = np.interp(np.linspace(0, len(factor) - 1, n_out), np.arange(len(factor)), factor)
    pos = np.concatenate([[0.0], np.cumsum(f[:-1])])
    pos = np.minimum(pos, len(x) - 1)
    return np.interp(pos, np.arange(len(x)), x).astype(np.float32)


def time_stretch(x: np.ndarray, rate_factor: float, sr: int = SPEECH_RATE) -> np.ndarray:
    """WSOLA time stretch: ``rate_factor`` > 1 makes speech faster (shorter), pitch unchanged.

    30 ms Hann frames, 50 % overlap at the output, +-10 ms search for the best-aligned input frame
    (Verhelst & Roelands 1993, WSOLA).
    """
    if abs(rate_factor - 1.0) < 1e-6:
        return x.astype(np.float32)
    frame = int(0.03 * sr)
    hop_out = frame // 2
    hop_in = hop_out * rate_factor
    tol = int(0.01 * sr)
    win = np.hanning(frame).astype(np.float32)
    n_frames = int((len(x) - frame - tol) / hop_in)
    if n_frames < 2:
        return x.astype(np.float32)
    xp = np.concatenate([x.astype(np.float32), np.zeros(frame + 2 * tol, np.float32)])
    out = np.zeros(n_frames * hop_out + frame, np.float32)
    norm = np.zeros_like(out)
    prev = 0
    for k in range(n_frames):
        nominal = int(round(k * hop_in))
        if k == 0:
            start = 0
        else:
            # natural continuation of the previously copied frame, matched within +-tol of the nominal position
            ref = xp[prev + hop_out: prev + hop_out + frame]
            lo = max(nominal - tol, 0)
            region = xp[lo: lo + frame + 2 * tol]
            corr = np.correlate(region, ref, mode="valid")
            start = lo + int(np.argmax(corr))
        out[k * hop_out: k * hop_out + frame] += xp[start: start + frame] * win
        norm[k * hop_out: k * hop_out + frame] += win
        prev = start
    return (out / np.maximum(norm, 1e-3)).astype(np.float32)


def apply_voice(x: np.ndarray, voice: VoiceParams, speaker_semitones: float, rng: np.random.Generator,
                rate: int = SPEECH_RATE) -> np.ndarray:
    """Speaker pitch + emotional prosody on (S,) float32 speech; returns (S',) float32 in [-1, 1]."""
    n = len(x)
    t = np.linspace(0.0, 1.0, n)
    semis = (speaker_semitones + voice.pitch_semitones + voice.glide_semitones * (t - 0.5)
             + voice.jitter_semitones * _smooth_noise(n, rate, 6.0, rng))
    y = vary_pitch(x, semis)
    # resampling changed the duration by the mean pitch factor; stretch back, then apply the emotion's tempo
    pitch_speed = len(x) / max(len(y), 1)
    y = time_stretch(y, voice.tempo / pitch_speed, rate)
    if voice.tilt:
        # first-order tilt; the RMS is restored so the tilt changes timbre only and gain_db sets the energy
        before = float(np.sqrt(np.mean(y.astype(np.float64) ** 2)))
        y = lfilter([1.0, -voice.tilt], [1.0], y) if voice.tilt > 0 else \
            lfilter([1.0 + voice.tilt], [1.0, voice.tilt], y)
        after = float(np.sqrt(np.mean(y**2)))
        y = (y * (before / after if after > 0 else 1.0)).astype(np.float32)
    if voice.tremolo:
        tt = np.arange(len(y)) / rate
        y = y * (1.0 - voice.tremolo * 0.5 * (1 + np.sin(2 * np.pi * 5.0 * tt)))
    y = y * 10 ** (voice.gain_db / 20.0)
    peak = float(np.max(np.abs(y))) if len(y) else 0.0
    if peak > 0.98:  # keep the loudest emotions unclipped
        y = y * (0.98 / peak)
    return y.astype(np.float32)


def fit_duration(x: np.ndarray, duration_s: float, rate: int) -> np.ndarray:
    """Cut or zero-pad to exactly round(duration_s * rate) samples, with 10 ms fades at the ends."""
    n = int(round(duration_s * rate))
    y = x[:n] if len(x) >= n else np.concatenate([x, np.zeros(n - len(x), np.float32)])
    f = int(0.01 * rate)
    ramp = np.linspace(0, 1, f, dtype=np.float32)
    y = y.astype(np.float32).copy()
    y[:f] *= ramp
    y[-f:] *= ramp[::-1]
    return y


def to_rate(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Polyphase resampling (scipy.signal.resample_poly), deterministic; float32 out."""
    if rate_in == rate_out:
        return x.astype(np.float32)
    g = np.gcd(rate_in, rate_out)
    return resample_poly(x, rate_out // g, rate_in // g).astype(np.float32)


def mouth_envelope(x: np.ndarray, rate: int, fps: float, n_frames: int) -> np.ndarray:
    """(n_frames,) mouth openness in [0, 1] from the speech RMS around each frame time (k / fps).

    RMS over a window of one frame period centred on the frame time, divided by the 90th percentile of
    the clip's voiced RMS, compressed with a 0.7 power, then lightly smoothed (3-tap) like a jaw's inertia.
    """
    half = int(rate / fps / 2)
    centres = (np.arange(n_frames) / fps * rate).astype(int)
    rms = np.empty(n_frames)
    for k, c in enumerate(centres):
        seg = x[max(c - half, 0): c + half + 1]
        rms[k] = np.sqrt(np.mean(seg.astype(np.float64) ** 2)) if len(seg) else 0.0
    ref = np.percentile(rms, 90)
    if ref <= 1e-6:
        return np.zeros(n_frames, np.float32)
    a = np.clip(rms / ref, 0, 1) ** 0.7
    a = np.convolve(np.pad(a, 1, mode="edge"), [0.25, 0.5, 0.25], mode="valid")
    a[a < 0.08] = 0.0
    return a.astype(np.float32)


class TTSError(RuntimeError):
    """espeak-ng is missing or failed."""


def espeak_speech(text: str, *, voice: str = "en-us", words_per_min: int = 150) -> np.ndarray:
    """Synthesise ``text`` with the espeak-ng program; (S,) float32 at 16 kHz."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise TTSError("--tts espeak needs the espeak-ng program (Debian: apt-get install espeak-ng); "
                       "it is not on PATH. Use --tts none to build from the CMU ARCTIC speech instead.")
    import wave

    with tempfile.TemporaryDirectory(prefix="dicetalk_tts_") as tmp:
        out = Path(tmp) / "tts.wav"
        proc = subprocess.run([exe, "-v", voice, "-s", str(words_per_min), "-w", str(out), text],
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0 or not out.is_file():
            raise TTSError(f"espeak-ng failed (exit {proc.returncode}) on {text!r}: {proc.stderr.strip()[-500:]}")
        with wave.open(str(out), "rb") as w:
            rate, width, ch = w.getframerate(), w.getsampwidth(), w.getnchannels()
            raw = w.readframes(w.getnframes())
    if width != 2:
        raise TTSError(f"espeak-ng wrote {width * 8}-bit audio; expected PCM16")
    x = np.frombuffer(raw, np.int16).astype(np.float32).reshape(-1, ch).mean(axis=1) / PCM16_SCALE
    return to_rate(x, rate, SPEECH_RATE)


def espeak_version() -> str | None:
    exe = shutil.which("espeak-ng")
    if exe is None:
        return None
    proc = subprocess.run([exe, "--version"], capture_output=True, text=True, check=False)
    return proc.stdout.strip() or None
