"""Pseudo-identities: a real face source plus documented, deterministic appearance transforms.

Face geometry was read once by eye from enlarged crops with a 10-pixel grid (and cross-checked against the
BlazeFace short-range keypoints): astronaut.png (512x512; its face box
x 178, y 83, w 95, h 95) and frame 0 of carphone_pristine.mp4 (176x144; BlazeFace box x 65, y 47, w 49, h 49).
All coordinates below are source-image pixels (x, y). "r"/"l" are the subject's right/left, so the
subject's right eye is on the viewer's left (mediapipe's convention).

Identity transforms (all deterministic, recorded in the demo manifest):
- ``face``: which real face the identity is made from (``astronaut`` or ``carphone``);
- ``hue_deg``: rotation of the face's hue in YIQ space (degrees); ``skin_gain``: per-channel RGB gains;
- ``scale``: face height as a fraction of the frame height; ``aspect``: horizontal stretch of the face;
- ``mirror``: horizontal flip of the face;
- ``background``: two colours and a texture (gradient, stripes, checker, blobs); ``torso``: shirt colour.
"""

from __future__ import annotations

import zlib
from dataclasses import asdict, dataclass, field

import numpy as np

from dicetalk_bench.datasets import MEAD_TEST_SPEAKERS

#: EAT's MEAD test identities (yuangan/EAT_code@95beccb test_mead.py).
MEAD_TRAIN_SPEAKERS: tuple[str, ...] = ("M005", "M007", "W011", "W014")


@dataclass(frozen=True)
class FaceSource:
    """A face in a real source image: crop box and landmarks, in source pixels (x, y)."""

    key: str
    crop_xyxy: tuple[int, int, int, int]      # region cut out around head and hair
    head_center: tuple[float, float]         # centre of the soft elliptical head mask
    head_axes: tuple[float, float]           # its semi-axes (x, y)
    eye_r: tuple[float, float]
    eye_l: tuple[float, float]
    brow_r: tuple[float, float]              # brow centres
    brow_l: tuple[float, float]
    mouth_r: tuple[float, float]             # mouth corners
    mouth_l: tuple[float, float]
    lip_top: tuple[float, float]             # upper-lip centre
    lip_bottom: tuple[float, float]          # lower-lip centre
    chin: tuple[float, float]
    nose: tuple[float, float]


ASTRONAUT = FaceSource(
    key="astronaut", crop_xyxy=(140, 36, 310, 216), head_center=(225.0, 121.0), head_axes=(60.0, 78.0),
    eye_r=(203.0, 101.0), eye_l=(246.0, 103.0), brow_r=(203.0, 91.0), brow_l=(246.0, 92.0),
    mouth_r=(204.0, 142.0), mouth_l=(245.0, 142.0), lip_top=(224.5, 139.0), lip_bottom=(224.5, 151.0),
    chin=(224.0, 177.0), nose=(224.0, 125.0),
)
CARPHONE = FaceSource(
    key="carphone", crop_xyxy=(44, 6, 134, 112), head_center=(89.0, 60.0), head_axes=(31.0, 44.0),
    eye_r=(77.0, 60.5), eye_l=(98.5, 57.0), brow_r=(76.0, 52.5), brow_l=(97.5, 49.5),
    mouth_r=(84.0, 81.0), mouth_l=(100.0, 80.0), lip_top=(91.5, 78.5), lip_bottom=(91.5, 84.0),
    chin=(91.0, 95.0), nose=(91.0, 70.0),
)
FACE_SOURCES: dict[str, FaceSource] = {"astronaut": ASTRONAUT, "carphone": CARPHONE}
#: carphone_pristine.mp4 frame used as the still face (frame 0: mouth closed, frontal).
CARPHONE_FRAME = 0


@dataclass(frozen=True)
class Identity:
    """A pseudo-identity: face source + appearance transforms (see the module docstring)."""

    actor: str
    face: str
    hue_deg: float = 0.0
    skin_gain: tuple[float, float, float] = (1.0, 1.0, 1.0)
    scale: float = 0.62
    aspect: float = 1.0
    mirror: bool = False
    bg_colors: tuple[tuple[int, int, int], tuple[int, int, int]] = ((90, 110, 140), (170, 180, 200))
    bg_texture: str = "gradient"
    torso_color: tuple[int, int, int] = (40, 40, 50)
    pitch_semitones: float = 0.0              # speaker's voice: pitch offset applied to the ARCTIC speech
    split: str = "train"
    notes: str = field(default="", compare=False)

    def record(self) -> dict:
        return asdict(self)


def _mead_identities() -> tuple[Identity, ...]:
    # M* identities use the carphone man, W* the astronaut; each split holds both face sources.
    return (
        Identity("M003", "carphone", hue_deg=0.0, skin_gain=(1.0, 1.0, 1.0), scale=0.60, aspect=1.0,
                 mirror=False, bg_colors=((70, 90, 120), (150, 160, 190)), bg_texture="gradient",
                 torso_color=(35, 35, 45), pitch_semitones=-5.0, split="test"),
        Identity("M030", "carphone", hue_deg=-8.0, skin_gain=(0.92, 0.88, 0.85), scale=0.66, aspect=1.06,
                 mirror=True, bg_colors=((120, 70, 60), (200, 170, 150)), bg_texture="stripes",
                 torso_color=(90, 30, 30), pitch_semitones=-7.0, split="test"),
        Identity("M005", "carphone", hue_deg=6.0, skin_gain=(1.06, 1.0, 0.95), scale=0.63, aspect=0.95,
                 mirror=True, bg_colors=((60, 100, 70), (160, 200, 160)), bg_texture="checker",
                 torso_color=(30, 50, 80), pitch_semitones=-4.0, split="train"),
        Identity("M007", "carphone", hue_deg=-4.0, skin_gain=(0.85, 0.8, 0.78), scale=0.58, aspect=1.03,
                 mirror=False, bg_colors=((100, 100, 100), (190, 190, 180)), bg_texture="blobs",
                 torso_color=(60, 60, 60), pitch_semitones=-6.0, split="train"),
        Identity("W009", "astronaut", hue_deg=0.0, skin_gain=(1.0, 1.0, 1.0), scale=0.62, aspect=1.0,
                 mirror=False, bg_colors=((150, 150, 160), (220, 220, 230)), bg_texture="gradient",
                 torso_color=(30, 30, 30), pitch_semitones=1.0, split="test"),
        Identity("W015", "astronaut", hue_deg=10.0, skin_gain=(0.9, 0.85, 0.82), scale=0.58, aspect=0.94,
                 mirror=True, bg_colors=((50, 70, 110), (120, 150, 200)), bg_texture="blobs",
                 torso_color=(80, 20, 60), pitch_semitones=2.0, split="test"),
        Identity("W011", "astronaut", hue_deg=-6.0, skin_gain=(1.05, 0.98, 0.95), scale=0.65, aspect=1.05,
                 mirror=True, bg_colors=((110, 90, 60), (210, 190, 150)), bg_texture="stripes",
                 torso_color=(20, 60, 40), pitch_semitones=0.0, split="train"),
        Identity("W014", "astronaut", hue_deg=5.0, skin_gain=(0.82, 0.78, 0.74), scale=0.6, aspect=0.97,
                 mirror=False, bg_colors=((80, 60, 90), (180, 160, 200)), bg_texture="checker",
                 torso_color=(50, 50, 90), pitch_semitones=3.0, split="train"),
    )


MEAD_IDENTITIES: dict[str, Identity] = {i.actor: i for i in _mead_identities()}

#: HDTF pseudo-speakers: (group, video name) -> identity. ``DemoAnchor0/1`` are one person (HDTF's trailing
#: digit convention); names are invented so no real person is implied.
HDTF_IDENTITIES: dict[tuple[str, str], Identity] = {
    ("RD", "Radio1"): Identity("RD_Radio1", "carphone", hue_deg=3.0, skin_gain=(1.02, 0.97, 0.94), scale=0.55,
                               bg_colors=((40, 40, 60), (110, 110, 140)), bg_texture="gradient",
                               torso_color=(20, 20, 30), pitch_semitones=-5.0),
    ("RD", "Radio2"): Identity("RD_Radio2", "astronaut", hue_deg=-5.0, skin_gain=(0.95, 0.92, 0.9), scale=0.55,
                               mirror=True, bg_colors=((90, 60, 50), (170, 140, 120)), bg_texture="blobs",
                               torso_color=(70, 30, 30), pitch_semitones=1.5),
    ("WDA", "DemoAnchor0"): Identity("WDA_DemoAnchor", "astronaut", hue_deg=4.0, scale=0.6,
                                     bg_colors=((30, 60, 120), (200, 200, 220)), bg_texture="stripes",
                                     torso_color=(20, 30, 80), pitch_semitones=0.5),
    ("WDA", "DemoAnchor1"): Identity("WDA_DemoAnchor", "astronaut", hue_deg=4.0, scale=0.57, mirror=True,
                                     bg_colors=((30, 60, 120), (200, 200, 220)), bg_texture="gradient",
                                     torso_color=(20, 30, 80), pitch_semitones=0.5),
    ("WRA", "DemoHost0"): Identity("WRA_DemoHost", "carphone", hue_deg=-6.0, skin_gain=(0.9, 0.86, 0.84),
                                   scale=0.58, aspect=1.04, bg_colors=((100, 120, 90), (200, 210, 190)),
                                   bg_texture="checker", torso_color=(40, 70, 40), pitch_semitones=-3.0),
}


def hue_rotation_matrix(hue_deg: float) -> np.ndarray:
    """(3, 3) RGB->RGB matrix rotating the hue by ``hue_deg`` degrees in YIQ space (luma kept)."""
    rgb2yiq = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
    t = np.deg2rad(hue_deg)
    rot = np.array([[1, 0, 0], [0, np.cos(t), -np.sin(t)], [0, np.sin(t), np.cos(t)]])
    return np.linalg.inv(rgb2yiq) @ rot @ rgb2yiq


def make_background(identity: Identity, height: int, width: int) -> np.ndarray:
    """(H, W, 3) float32 RGB background in [0, 255] for an identity; a function of the identity only."""
    c0 = np.asarray(identity.bg_colors[0], np.float32)
    c1 = np.asarray(identity.bg_colors[1], np.float32)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    u, v = xx / max(width - 1, 1), yy / max(height - 1, 1)
    if identity.bg_texture == "gradient":
        t = 0.6 * v + 0.4 * u
    elif identity.bg_texture == "stripes":
        t = 0.5 + 0.5 * np.sin(2 * np.pi * 6 * u) * 0.8
    elif identity.bg_texture == "checker":
        t = 0.5 + 0.35 * np.sign(np.sin(2 * np.pi * 4 * u) * np.sin(2 * np.pi * 3 * v)) + 0.1 * v
    elif identity.bg_texture == "blobs":
        # low-frequency sum of sinusoids; the phases come from the actor name so they are fixed per identity
        rng = np.random.default_rng(_stable_key(identity.actor))
        t = np.zeros_like(u)
        for _ in range(5):
            fx, fy, ph = rng.uniform(0.5, 3.0), rng.uniform(0.5, 3.0), rng.uniform(0, 2 * np.pi)
            t += np.sin(2 * np.pi * (fx * u + fy * v) + ph)
        t = 0.5 + 0.12 * t
    else:
        raise ValueError(f"unknown background texture {identity.bg_texture!r} for {identity.actor}")
    t = np.clip(t, 0.0, 1.0)[..., None]
    return (c0 * (1 - t) + c1 * t).astype(np.float32)


def _stable_key(text: str) -> int:
    """A process-independent integer for seeding (Python's hash() is salted per process)."""
    return zlib.crc32(text.encode("utf-8"))


def stable_seed(*parts: object) -> list[int]:
    """Seed sequence for ``np.random.default_rng`` from any mix of ints and strings."""
    return [p if isinstance(p, int) and p >= 0 else _stable_key(str(p)) for p in parts]
