"""The 8 MEAD emotions as deterministic face deformations and prosody changes; strength = level / 3.

Face: every emotion is a set of control-point displacements (brows, inner brows, eyelids, mouth corners,
upper lip) in units of the inter-ocular distance, turned into a smooth displacement field (sum of Gaussians,
sigma = 0.22 x inter-ocular distance) that warps the face image, plus a colour tint of the face. The values
follow the FACS action units usually linked to each emotion (e.g. happy: lip-corner pull AU12 + cheek raise;
sad: inner-brow raise AU1 + lip-corner depressor AU15; surprised: brow raise AU1+2 + jaw drop AU26;
contempt: one-sided lip-corner pull AU14), exaggerated so they are visible at 160x120.

Voice: pitch shift (semitones), tempo, energy (dB), slow random pitch jitter (semitones), a pitch glide
across the utterance, amplitude tremolo and a spectral tilt (first-order pre-emphasis > 0 brightens,
< 0 darkens). Applied by :mod:`dicetalk_bench.demo_data.speech`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

import numpy as np

from dicetalk_bench.datasets import MEAD_EMOTIONS

EMOTIONS: tuple[str, ...] = MEAD_EMOTIONS
LEVELS: tuple[int, ...] = (1, 2, 3)


@dataclass(frozen=True)
class FaceParams:
    """Face deformation at full strength (level 3), in inter-ocular distances (d); +y is down in the image."""

    brow_raise: float = 0.0      # whole brows up (+) / down (-), d
    brow_inner: float = 0.0      # inner brow ends up (+) / down (-), d
    brow_knit: float = 0.0       # inner brow ends pulled towards the midline, d
    eye_open: float = 0.0        # upper lids up (+ wider eyes) / down (- squint), d
    mouth_corner: float = 0.0    # both lip corners up (+) / down (-), d
    mouth_stretch: float = 0.0   # lip corners outwards (+) / inwards (-), d
    contempt: float = 0.0        # extra raise + pull of the subject's right corner only, d
    upper_lip: float = 0.0       # upper lip raised (+), d (disgust, AU10)
    jaw_open: float = 0.0        # baseline mouth opening added to the speech-driven one, 0..1
    tint: tuple[int, int, int] = (0, 0, 0)   # RGB colour blended into the face
    tint_alpha: float = 0.0      # blend weight at full strength

    def scaled(self, strength: float) -> "FaceParams":
        """Every magnitude times ``strength`` (the tint colour is kept)."""
        return replace(self, **{f.name: getattr(self, f.name) * strength for f in fields(self) if f.name != "tint"})


@dataclass(frozen=True)
class VoiceParams:
    """Prosody change at full strength (level 3)."""

    pitch_semitones: float = 0.0
    tempo: float = 1.0           # > 1 speaks faster
    gain_db: float = 0.0
    jitter_semitones: float = 0.0  # std of a slow (about 6 Hz) random pitch wobble
    glide_semitones: float = 0.0   # linear pitch change from the start to the end of the utterance
    tremolo: float = 0.0           # amplitude modulation depth at 5 Hz, 0..1
    tilt: float = 0.0              # pre-emphasis coefficient: + brighter, - darker (|tilt| < 1)

    def scaled(self, strength: float) -> "VoiceParams":
        return VoiceParams(pitch_semitones=self.pitch_semitones * strength,
                           tempo=1.0 + (self.tempo - 1.0) * strength, gain_db=self.gain_db * strength,
                           jitter_semitones=self.jitter_semitones * strength,
                           glide_semitones=self.glide_semitones * strength, tremolo=self.tremolo * strength,
                           tilt=self.tilt * strength)


FACE: dict[str, FaceParams] = {
    "angry": FaceParams(brow_raise=-0.10, brow_inner=-0.12, brow_knit=0.10, eye_open=-0.04, mouth_corner=-0.06,
                        mouth_stretch=-0.04, tint=(200, 40, 30), tint_alpha=0.16),
    "contempt": FaceParams(brow_raise=0.02, eye_open=-0.03, contempt=0.14, tint=(200, 190, 60), tint_alpha=0.10),
    "disgusted": FaceParams(brow_raise=-0.06, brow_inner=-0.06, brow_knit=0.06, eye_open=-0.05, mouth_corner=-0.05,
                            upper_lip=0.09, tint=(90, 170, 60), tint_alpha=0.14),
    "fear": FaceParams(brow_raise=0.10, brow_inner=0.12, brow_knit=0.05, eye_open=0.07, mouth_stretch=0.10,
                       mouth_corner=-0.03, jaw_open=0.25, tint=(120, 150, 230), tint_alpha=0.14),
    "happy": FaceParams(brow_raise=0.02, eye_open=-0.04, mouth_corner=0.16, mouth_stretch=0.10,
                        tint=(250, 170, 120), tint_alpha=0.12),
    "neutral": FaceParams(),
    "sad": FaceParams(brow_raise=-0.02, brow_inner=0.14, eye_open=-0.05, mouth_corner=-0.15, mouth_stretch=-0.03,
                      tint=(70, 90, 160), tint_alpha=0.16),
    "surprised": FaceParams(brow_raise=0.20, brow_inner=0.05, eye_open=0.09, mouth_stretch=-0.05, jaw_open=0.55,
                            tint=(255, 255, 220), tint_alpha=0.10),
}

VOICE: dict[str, VoiceParams] = {
    "angry": VoiceParams(pitch_semitones=2.0, tempo=1.10, gain_db=4.0, jitter_semitones=0.6, tilt=0.6),
    "contempt": VoiceParams(pitch_semitones=-1.0, tempo=0.92, gain_db=-1.0, jitter_semitones=0.2,
                            glide_semitones=-2.0),
    "disgusted": VoiceParams(pitch_semitones=-1.5, tempo=0.88, gain_db=-2.0, jitter_semitones=0.4, tilt=-0.2,
                             tremolo=0.15),
    "fear": VoiceParams(pitch_semitones=3.0, tempo=1.15, gain_db=-3.0, jitter_semitones=1.0, tremolo=0.35),
    "happy": VoiceParams(pitch_semitones=2.5, tempo=1.08, gain_db=2.0, jitter_semitones=0.3, glide_semitones=1.0,
                         tilt=0.3),
    "neutral": VoiceParams(),
    "sad": VoiceParams(pitch_semitones=-2.5, tempo=0.85, gain_db=-5.0, jitter_semitones=0.2, glide_semitones=-1.0,
                       tilt=-0.6),
    "surprised": VoiceParams(pitch_semitones=4.0, tempo=1.0, gain_db=3.0, jitter_semitones=0.5,
                             glide_semitones=3.0, tilt=0.3),
}


def strength(emotion: str, level: int) -> float:
    """Deformation / prosody strength for an emotion and MEAD level: level / 3 (neutral: 0)."""
    if emotion not in EMOTIONS:
        raise ValueError(f"unknown emotion {emotion!r}; expected one of {list(EMOTIONS)}")
    if level not in LEVELS or (emotion == "neutral" and level != 1):
        raise ValueError(f"invalid level {level} for {emotion!r} (MEAD: neutral has only level 1, others 1..3)")
    return 0.0 if emotion == "neutral" else level / 3.0


def face_params(emotion: str, level: int) -> FaceParams:
    return FACE[emotion].scaled(strength(emotion, level))


def voice_params(emotion: str, level: int) -> VoiceParams:
    return VOICE[emotion].scaled(strength(emotion, level))


def emotion_table() -> dict[str, dict]:
    """Full-strength parameters of every emotion, for the manifest."""
    return {e: {"face": asdict(FACE[e]), "voice": asdict(VOICE[e])} for e in EMOTIONS}


# ------------------------------------------------------------------------------------------------------
# Face deformation fields
# ------------------------------------------------------------------------------------------------------
def control_displacements(lm: dict[str, np.ndarray], p: FaceParams) -> list[tuple[np.ndarray, np.ndarray]]:
    """(point, displacement) pairs in pixels for landmarks ``lm`` (subject's r/l) and scaled params ``p``.

    ``lm`` holds (2,) float arrays: eye_r, eye_l, brow_r, brow_l, mouth_r, mouth_l, lip_top, lip_bottom.
    Directions use the face's own axes (x from the subject's right eye to the left eye, y downwards), so
    mirrored identities deform correctly.
    """
    ex = lm["eye_l"] - lm["eye_r"]
    d = float(np.linalg.norm(ex))
    ux = ex / d                       # face x axis, subject's right -> left
    uy = np.array([-ux[1], ux[0]])    # face y axis, downwards
    pairs: list[tuple[np.ndarray, np.ndarray]] = []

    def add(pt: np.ndarray, dx: float, dy: float) -> None:
        if dx or dy:
            pairs.append((pt, d * (dx * ux + dy * uy)))

    for side, sgn in (("r", -1.0), ("l", 1.0)):     # sgn: direction away from the midline along ux
        brow = lm[f"brow_{side}"]
        inner = brow - sgn * 0.28 * d * ux
        outer = brow + sgn * 0.30 * d * ux
        add(brow, 0.0, -p.brow_raise)
        add(outer, 0.0, -p.brow_raise)
        add(inner, -sgn * p.brow_knit, -(p.brow_raise + p.brow_inner))
        eye = lm[f"eye_{side}"]
        add(eye - 0.09 * d * uy, 0.0, -p.eye_open)            # upper lid
        add(eye + 0.08 * d * uy, 0.0, 0.4 * p.eye_open)       # lower lid
        corner = lm[f"mouth_{side}"]
        cx = sgn * p.mouth_stretch
        cy = -p.mouth_corner
        if side == "r":                                       # contempt: one-sided (subject's right) AU14
            cx += -p.contempt * 0.6
            cy += -p.contempt
        add(corner, cx, cy)
        # cheek follows the corner upwards (AU6 with a smile), softly
        add(corner + 0.35 * d * (sgn * ux) - 0.35 * d * uy, 0.3 * cx, 0.45 * min(cy, 0.0))
    add(lm["lip_top"], 0.0, -p.upper_lip)
    return pairs


def displacement_field(shape_hw: tuple[int, int], pairs: list[tuple[np.ndarray, np.ndarray]],
                       sigma_px: float) -> np.ndarray:
    """(H, W, 2) float32 forward displacement (dx, dy) in pixels: sum of Gaussians around the control points."""
    h, w = shape_hw
    field_ = np.zeros((h, w, 2), np.float32)
    if not pairs:
        return field_
    ys = np.arange(h, dtype=np.float32)[:, None]
    xs = np.arange(w, dtype=np.float32)[None, :]
    inv = 1.0 / (2.0 * sigma_px * sigma_px)
    for pt, disp in pairs:
        g = np.exp(-((xs - pt[0]) ** 2) * inv) * np.exp(-((ys - pt[1]) ** 2) * inv)
        field_[..., 0] += g * disp[0]
        field_[..., 1] += g * disp[1]
    return field_


def mouth_open_field(shape_hw: tuple[int, int], lm: dict[str, np.ndarray], openness: float) -> np.ndarray:
    """(H, W, 2) displacement that opens the jaw by ``openness`` (0..1): lower lip and chin move down."""
    ex = lm["eye_l"] - lm["eye_r"]
    d = float(np.linalg.norm(ex))
    uy = np.array([-ex[1], ex[0]]) / d
    drop = 0.28 * d * openness
    pairs = [(lm["lip_bottom"], drop * uy), (lm["chin"], 0.8 * drop * uy),
             (0.5 * (lm["lip_bottom"] + lm["chin"]), 0.9 * drop * uy)]
    return displacement_field(shape_hw, pairs, sigma_px=0.2 * d)
