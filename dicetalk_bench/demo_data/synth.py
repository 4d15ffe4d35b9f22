"""One "take": an identity saying a sentence with an emotion, as audio + per-frame mouth openness + renderer.

:class:`DemoContext` holds the loaded sources and caches (face patches, backgrounds, TTS output); every
random choice draws from a generator seeded by (seed, what is being made), so a take's frames and samples
depend only on the seed and the take's identity, emotion, level and sentence, not on build order.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from . import emotions as emo
from . import speech
from .identities import Identity, make_background, stable_seed
from .render import ClipRenderer, FacePatch, PoseDrift, make_face_patch


@dataclass
class DemoContext:
    """Sources and caches shared by all takes of one build."""

    seed: int
    tts: str                                   # "none" (ARCTIC pieces) or "espeak"
    face_images: dict[str, np.ndarray]
    speech16k: np.ndarray
    pieces: list[tuple[int, int]] = field(default_factory=list)
    _patches: dict[str, FacePatch] = field(default_factory=dict)
    _backgrounds: dict[tuple, np.ndarray] = field(default_factory=dict)
    _tts: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.pieces:
            self.pieces = speech.segment_speech(self.speech16k)

    def patch(self, identity: Identity) -> FacePatch:
        key = repr(identity)
        if key not in self._patches:
            self._patches[key] = make_face_patch(identity, self.face_images[identity.face])
        return self._patches[key]

    def background(self, identity: Identity, height: int, width: int) -> np.ndarray:
        key = (repr(identity), height, width)
        if key not in self._backgrounds:
            self._backgrounds[key] = make_background(identity, height, width)
        return self._backgrounds[key]

    def sentence_speech(self, sentence_key: tuple, duration_s: float) -> tuple[np.ndarray, dict]:
        """Neutral 16 kHz speech for a sentence (same words for every speaker), and how it was made."""
        rng = np.random.default_rng(stable_seed(self.seed, "sentence", *sentence_key))
        if self.tts == "espeak":
            idx = int(rng.integers(len(speech.TTS_SENTENCES)))
            text = speech.TTS_SENTENCES[idx]
            if text not in self._tts:
                self._tts[text] = speech.espeak_speech(text)
            return self._tts[text], {"source": "espeak-ng", "text": text}
        x, order = speech.assemble_utterance(self.speech16k, self.pieces, duration_s, rng)
        return x, {"source": "cmu_arctic_a0007", "pieces": order}


@dataclass(frozen=True)
class Take:
    """Audio at ``audio_rate`` Hz (S,) float32, mouth openness (T,) in [0, 1], and the take's renderer."""

    audio: np.ndarray
    audio_rate: int
    openness: np.ndarray
    renderer: ClipRenderer
    drift: PoseDrift
    info: dict


def array_digest(a: np.ndarray) -> str:
    """sha256 of an array's dtype, shape and bytes (the determinism check recorded in the manifest)."""
    h = hashlib.sha256(f"{a.dtype.str}{a.shape}".encode())
    h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def make_take(ctx: DemoContext, identity: Identity, emotion: str, level: int, sentence_key: tuple,
              take_key: tuple, *, duration_s: float, fps: float, size_wh: tuple[int, int], audio_rate: int,
              drift_strength: float = 1.0) -> Take:
    """Synthesize one take (no rendering yet: call ``take.renderer.render`` per view)."""
    rng = np.random.default_rng(stable_seed(ctx.seed, "take", *take_key))
    base, info = ctx.sentence_speech(sentence_key, duration_s)
    voice = emo.voice_params(emotion, level)
    y16 = speech.apply_voice(base, voice, identity.pitch_semitones, rng)
    y16 = speech.fit_duration(y16, duration_s, speech.SPEECH_RATE)
    n_frames = int(round(duration_s * fps))
    openness = speech.mouth_envelope(y16, speech.SPEECH_RATE, fps, n_frames)
    audio = speech.fit_duration(speech.to_rate(y16, speech.SPEECH_RATE, audio_rate), duration_s, audio_rate)
    width, height = size_wh
    renderer = ClipRenderer(ctx.patch(identity), identity, emo.face_params(emotion, level),
                            ctx.background(identity, height, width))
    drift = PoseDrift.random(rng, drift_strength)
    info = dict(info, emotion=emotion, level=level, strength=emo.strength(emotion, level),
                speaker_pitch_semitones=identity.pitch_semitones)
    return Take(audio, audio_rate, openness, renderer, drift, info)


def view_rng(ctx: DemoContext, take_key: tuple, view: str) -> np.random.Generator:
    return np.random.default_rng(stable_seed(ctx.seed, "view", *take_key, view))
