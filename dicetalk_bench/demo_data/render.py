"""Frame rendering: a real face patch, deformed per emotion and per frame, composited onto a background.

Pipeline per frame (all deterministic for a given ``numpy.random.Generator``):
1. the identity's face patch (cut from the source image, stretched, mirrored, recoloured; soft elliptical
   alpha) is warped by the emotion's static displacement field plus the jaw-opening field scaled by the
   frame's mouth openness (from the speech envelope), with ``cv2.remap``;
2. a dark mouth cavity whose height follows the openness is blended between the lips; the emotion's tint
   is blended into the face;
3. the patch is placed by a slowly drifting similarity transform (translation, roll, scale: sums of slow
   sinusoids with per-clip random phases) over the identity's background, neck and torso;
4. mild sensor noise (sigma 1.2 grey levels, clipped to +-4) is added.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .emotions import FaceParams, control_displacements, displacement_field, mouth_open_field
from .identities import FACE_SOURCES, FaceSource, Identity, hue_rotation_matrix

_LANDMARKS = ("eye_r", "eye_l", "brow_r", "brow_l", "mouth_r", "mouth_l", "lip_top", "lip_bottom", "chin", "nose")
#: Camera geometry of the non-front MEAD views: (horizontal squeeze of the face, head x offset / frame width,
#: roll in degrees). A 2-D stand-in for a side camera (not a true 3-D view), documented in docs/demo_data.md.
VIEW_GEOMETRY: dict[str, tuple[float, float, float]] = {
    "front": (1.0, 0.0, 0.0), "left_30": (0.86, 0.07, 0.0), "right_30": (0.86, -0.07, 0.0),
    "left_60": (0.72, 0.12, 0.0), "right_60": (0.72, -0.12, 0.0), "down": (1.0, 0.0, 0.0), "top": (1.0, 0.0, 0.0),
}


@dataclass(frozen=True)
class FacePatch:
    """An identity's face: (h, w, 3) float32 RGB, (h, w) float32 alpha in [0, 1], landmarks in patch pixels."""

    image: np.ndarray
    alpha: np.ndarray
    landmarks: dict[str, np.ndarray]
    head_center: np.ndarray   # (2,) patch pixels
    head_axes: np.ndarray     # (2,) semi-axes, patch pixels

    @property
    def interocular(self) -> float:
        return float(np.linalg.norm(self.landmarks["eye_l"] - self.landmarks["eye_r"]))


def make_face_patch(identity: Identity, source_image: np.ndarray) -> FacePatch:
    """Cut, stretch, mirror and recolour the identity's face out of ``source_image`` ((H, W, 3) uint8)."""
    src: FaceSource = FACE_SOURCES[identity.face]
    x0, y0, x1, y1 = src.crop_xyxy
    img = source_image[y0:y1, x0:x1].astype(np.float32)
    off = np.array([x0, y0], np.float64)
    lm = {k: np.asarray(getattr(src, k), np.float64) - off for k in _LANDMARKS}
    center = np.asarray(src.head_center, np.float64) - off
    axes = np.asarray(src.head_axes, np.float64)
    h, w = img.shape[:2]
    if identity.aspect != 1.0:
        new_w = max(int(round(w * identity.aspect)), 8)
        img = cv2.resize(img, (new_w, h), interpolation=cv2.INTER_LINEAR)
        sx = new_w / w
        lm = {k: v * np.array([sx, 1.0]) for k, v in lm.items()}
        center, axes = center * np.array([sx, 1.0]), axes * np.array([sx, 1.0])
        w = new_w
    if identity.mirror:
        img = img[:, ::-1].copy()
        flip = {k: np.array([w - 1 - v[0], v[1]]) for k, v in lm.items()}
        swap = {"eye_r": "eye_l", "eye_l": "eye_r", "brow_r": "brow_l", "brow_l": "brow_r",
                "mouth_r": "mouth_l", "mouth_l": "mouth_r"}
        lm = {swap.get(k, k): v for k, v in flip.items()}
        center = np.array([w - 1 - center[0], center[1]])
    colour = hue_rotation_matrix(identity.hue_deg) * np.asarray(identity.skin_gain)[:, None]
    img = np.clip(img @ colour.T.astype(np.float32), 0, 255).astype(np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    r = np.sqrt(((xx - center[0]) / axes[0]) ** 2 + ((yy - center[1]) / axes[1]) ** 2)
    t = np.clip((1.0 - r) / 0.12, 0.0, 1.0)
    alpha = (t * t * (3 - 2 * t)).astype(np.float32)   # smoothstep feather over the outer 12 %
    return FacePatch(img, alpha, lm, center, axes)


@dataclass(frozen=True)
class PoseDrift:
    """Slow head motion: amplitudes and per-clip phases; frequencies in Hz."""

    amp_x: float      # fraction of frame width
    amp_y: float      # fraction of frame height
    amp_roll_deg: float
    amp_scale: float
    freqs: tuple[float, float, float, float]
    phases: tuple[float, float, float, float]

    @staticmethod
    def random(rng: np.random.Generator, strength: float = 1.0) -> "PoseDrift":
        return PoseDrift(0.03 * strength, 0.02 * strength, 3.0 * strength, 0.02 * strength,
                         tuple(float(f) for f in rng.uniform(0.08, 0.3, 4)),
                         tuple(float(p) for p in rng.uniform(0, 2 * np.pi, 4)))

    def at(self, t_s: float) -> tuple[float, float, float, float]:
        s = [np.sin(2 * np.pi * f * t_s + p) for f, p in zip(self.freqs, self.phases)]
        return self.amp_x * s[0], self.amp_y * s[1], self.amp_roll_deg * s[2], 1.0 + self.amp_scale * s[3]


class ClipRenderer:
    """Renders one take of an identity with one emotion; reuse it for every view of the take."""

    def __init__(self, patch: FacePatch, identity: Identity, face: FaceParams, background: np.ndarray) -> None:
        self.patch = patch
        self.identity = identity
        self.face = face
        self.background = np.clip(np.rint(background), 0, 255).astype(np.uint8)  # (H, W, 3)
        h, w = patch.alpha.shape
        d = patch.interocular
        self.static = displacement_field((h, w), control_displacements(patch.landmarks, face), sigma_px=0.22 * d)
        self.jaw_unit = mouth_open_field((h, w), patch.landmarks, 1.0)   # linear in the openness
        self.grid_x, self.grid_y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        self.neck_color = self._skin_colour()
        image = patch.image
        if face.tint_alpha > 0:   # the tint is static: apply it once, before warping
            image = image * (1 - face.tint_alpha) + np.asarray(face.tint, np.float32) * face.tint_alpha
        self.rgba = np.dstack([image, patch.alpha]).astype(np.float32)
        self.cavity = np.array([55.0, 22.0, 28.0], np.float32)

    def _skin_colour(self) -> np.ndarray:
        lm = self.patch.landmarks
        c = (0.5 * (lm["nose"] + lm["chin"])).astype(int)
        d = max(int(0.15 * self.patch.interocular), 1)
        region = self.patch.image[c[1] - d: c[1] + d + 1, c[0] - 2 * d: c[0] - d + 1]
        return region.reshape(-1, 3).mean(axis=0) * 0.85

    def deformed_face(self, openness: float) -> np.ndarray:
        """(h, w, 4) float32 RGBA face patch for one frame: tint + emotion warp + jaw opening + mouth cavity."""
        lm = self.patch.landmarks
        o = float(np.clip(openness + self.face.jaw_open, 0.0, 1.0))
        fld = self.static + o * self.jaw_unit
        img = cv2.remap(self.rgba, self.grid_x - fld[..., 0], self.grid_y - fld[..., 1],
                        interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        if o > 0.02:
            # mouth cavity between the lips; the lower lip has moved by 0.28 d * o (mouth_open_field)
            d = self.patch.interocular
            top = lm["lip_top"]
            drop = 0.28 * d * o
            cy = top[1] + 0.5 * (lm["lip_bottom"][1] - top[1]) + 0.5 * drop
            cx = 0.5 * (lm["mouth_r"][0] + lm["mouth_l"][0])
            ay = 0.5 * drop + 0.05 * d
            ax = 0.33 * abs(lm["mouth_l"][0] - lm["mouth_r"][0]) * (1 + self.face.mouth_stretch)
            x0, x1 = max(int(cx - ax) - 1, 0), int(cx + ax) + 2
            y0, y1 = max(int(cy - ay) - 1, 0), int(cy + ay) + 2
            xx = np.arange(x0, x1, dtype=np.float32)[None, :]
            yy = np.arange(y0, y1, dtype=np.float32)[:, None]
            r = ((xx - cx) / ax) ** 2 + ((yy - cy) / ay) ** 2
            m = (np.clip((1.0 - r) / 0.35, 0, 1) * min(1.0, 2.5 * o))[..., None]
            roi = img[y0:y1, x0:x1, :3]
            img[y0:y1, x0:x1, :3] = roi * (1 - m[: roi.shape[0], : roi.shape[1]]) + self.cavity * m[: roi.shape[0], : roi.shape[1]]
        return img

    def render(self, openness: np.ndarray, fps: float, size_wh: tuple[int, int], drift: PoseDrift,
               rng: np.random.Generator, view: str = "front") -> tuple[np.ndarray, np.ndarray]:
        """(T, H, W, 3) uint8 frames and (T, 4) float32 head boxes x0, y0, x1, y1 (frame pixels).

        ``openness``: (T,) jaw opening per frame in [0, 1]; T frames at ``fps``.
        """
        width, height = size_wh
        squeeze, view_dx, view_roll = VIEW_GEOMETRY[view]
        bg = self.background
        if bg.shape[:2] != (height, width):
            raise ValueError(f"background is {bg.shape[1]}x{bg.shape[0]}, frames are {width}x{height}")
        patch = self.patch
        head_h_px = self.identity.scale * height
        base_scale = head_h_px / (2 * patch.head_axes[1])
        frames = np.empty((len(openness), height, width, 3), np.uint8)
        boxes = np.empty((len(openness), 4), np.float32)
        # sensor noise: one signed noise field per clip, a random window of it per frame (cheap at 1080p)
        pad = 16
        noise = np.clip(np.rint(rng.normal(0.0, 1.2, (height + pad, width + pad, 3)).astype(np.float32)), -4, 4)
        noise_pos = np.clip(noise, 0, None).astype(np.uint8)
        noise_neg = np.clip(-noise, 0, None).astype(np.uint8)
        torso = tuple(int(c) for c in self.identity.torso_color)
        neck = tuple(int(c) for c in self.neck_color)
        for k, o in enumerate(openness):
            dx, dy, roll, sc = drift.at(k / fps)
            s = base_scale * sc
            cx = width * (0.5 + dx + view_dx)
            cy = height * (0.47 + dy)
            th = np.deg2rad(roll + view_roll)
            a = np.array([[np.cos(th) * s * squeeze, -np.sin(th) * s], [np.sin(th) * s * squeeze, np.cos(th) * s]])
            t = np.array([cx, cy]) - a @ patch.head_center
            m = np.hstack([a, t[:, None]])
            canvas = bg.copy()
            ax_x, ax_y = patch.head_axes[0] * s * squeeze, patch.head_axes[1] * s
            # torso and neck behind the head (frame pixels, moving with the head's translation)
            cv2.ellipse(canvas, (int(cx), int(cy + 1.75 * ax_y)), (int(2.1 * ax_x), int(0.95 * ax_y)), 0, 0, 360,
                        torso, -1, cv2.LINE_AA)
            cv2.rectangle(canvas, (int(cx - 0.42 * ax_x), int(cy + 0.3 * ax_y)),
                          (int(cx + 0.42 * ax_x), int(cy + 1.1 * ax_y)), neck, -1)
            face = self.deformed_face(float(o))
            reach = 1.3 * max(ax_x, ax_y)
            x0, y0 = max(int(np.floor(cx - reach)), 0), max(int(np.floor(cy - reach)), 0)
            x1, y1 = min(int(np.ceil(cx + reach)), width), min(int(np.ceil(cy + reach)), height)
            m_roi = m.copy()
            m_roi[:, 2] -= [x0, y0]
            roi = (x1 - x0, y1 - y0)
            warped = cv2.warpAffine(face, m_roi, roi, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
            al = warped[..., 3:]
            warped = warped[..., :3]
            # a convex combination of values in [0, 255]: +0.5 and truncation round it, no clipping needed
            blended = canvas[y0:y1, x0:x1] + al * (warped - canvas[y0:y1, x0:x1]) + 0.5
            canvas[y0:y1, x0:x1] = blended.astype(np.uint8)
            ox, oy = (int(v) for v in rng.integers(0, pad, 2))
            canvas = cv2.subtract(cv2.add(canvas, noise_pos[oy:oy + height, ox:ox + width]),
                                  noise_neg[oy:oy + height, ox:ox + width])
            frames[k] = canvas
            boxes[k] = (cx - ax_x, cy - ax_y, cx + ax_x, cy + ax_y)
        return frames, boxes
