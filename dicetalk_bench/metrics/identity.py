"""Identity similarity (CSIM): cosine between ArcFace embeddings of generated frames and a reference frame.

Backbone: insightface ``recognition/arcface_torch/backbones/iresnet.py`` ``iresnet100`` (layers 3-13-30-3, IBasicBlock
with PReLU, 512-d output after BatchNorm1d ``features``), re-written with the same parameter names so a plain
arcface_torch state dict (``arcface_r100.pth``, registry key ``arcface-r100``) loads strictly. Reference key list:
``tests/data/arcface_iresnet100.tsv``.

Input: 112 x 112 RGB aligned faces, ``(x / 255 - 0.5) / 0.5`` (arcface_torch inference.py).
Alignment: similarity transform (Umeyama, as insightface's ``norm_crop`` via skimage ``SimilarityTransform``) from face
keypoints to the ArcFace 112 x 112 template, ``cv2.warpAffine`` with border 0. The FaceTrack gives mediapipe's six
keypoints (r-eye, l-eye, nose, mouth centre, r-ear, l-ear), not two mouth corners, so we fit the two eyes, the nose
and the mouth centre to the template's eyes, nose and the midpoint of its mouth corners (a deliberate difference from
insightface's 5-point fit; docs/metrics.md).
CSIM of a video = mean over its frames of cos(emb(frame), emb(reference frame)).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn

from dicetalk_bench.weights.random_weights import register_random_builder

__all__ = ["IResNet", "iresnet100", "ARCFACE_TEMPLATE_112", "umeyama_similarity", "align_face", "align_from_track",
           "ArcFaceEmbedder", "csim", "load_arcface", "write_random_weights", "WEIGHTS_KEY"]

log = logging.getLogger(__name__)

WEIGHTS_KEY = "arcface-r100"
# insightface face_align.arcface_dst (112 x 112): left eye, right eye (image left/right), nose, mouth left, mouth right
ARCFACE_TEMPLATE_112 = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                                 [41.5493, 92.3655], [70.7299, 92.2041]], dtype=np.float64)
# template points matched to FaceTrack keypoints 0 (subject's right eye = image left), 1, 2 (nose), 3 (mouth centre)
_TEMPLATE_4 = np.vstack([ARCFACE_TEMPLATE_112[:3], ARCFACE_TEMPLATE_112[3:].mean(0, keepdims=True)])


class IBasicBlock(nn.Module):
    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes, eps=1e-05)
        self.conv1 = nn.Conv2d(inplanes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes, eps=1e-05)
        self.prelu = nn.PReLU(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes, eps=1e-05)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False),
                                            nn.BatchNorm2d(planes, eps=1e-05))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        return out + (x if self.downsample is None else self.downsample(x))


class IResNet(nn.Module):
    """arcface_torch IResNet; (N, 3, 112, 112) normalised RGB -> (N, 512) embeddings (not L2-normalised)."""

    fc_scale = 7 * 7

    def __init__(self, layers: tuple[int, int, int, int], num_features: int = 512) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64, eps=1e-05)
        self.prelu = nn.PReLU(64)
        inplanes = 64
        for i, (planes, n) in enumerate(zip((64, 128, 256, 512), layers)):
            blocks = [IBasicBlock(inplanes, planes, 2)] + [IBasicBlock(planes, planes) for _ in range(n - 1)]
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
            inplanes = planes
        self.bn2 = nn.BatchNorm2d(512, eps=1e-05)
        self.dropout = nn.Dropout(p=0.0)
        self.fc = nn.Linear(512 * self.fc_scale, num_features)
        self.features = nn.BatchNorm1d(num_features, eps=1e-05)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.bn2(x).flatten(1)
        return self.features(self.fc(self.dropout(x)))


def iresnet100() -> IResNet:
    return IResNet((3, 13, 30, 3))


def umeyama_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping (K, 2) ``src`` onto ``dst``.

    Returns the (2, 3) affine matrix for cv2.warpAffine (Umeyama 1991, as skimage.transform.SimilarityTransform).
    """
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise ValueError(f"need matching (K>=2, 2) point sets, got {src.shape} and {dst.shape}")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s_c, d_c = src - mu_s, dst - mu_d
    cov = d_c.T @ s_c / len(src)
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[1] = -1
    rot = u @ np.diag(d) @ vt
    var_s = (s_c ** 2).sum() / len(src)
    if var_s == 0:
        raise ValueError("degenerate keypoints: all points coincide")
    scale = (sig * d).sum() / var_s
    t = mu_d - scale * rot @ mu_s
    return np.hstack([scale * rot, t[:, None]])


def align_face(frame: np.ndarray, points: np.ndarray, template: np.ndarray = _TEMPLATE_4) -> np.ndarray:
    """(H, W, 3) uint8 frame + (K, 2) keypoints matching ``template`` -> (112, 112, 3) aligned crop."""
    import cv2

    m = umeyama_similarity(points, template)
    return cv2.warpAffine(frame, m, (112, 112), borderValue=0.0)


def align_from_track(frames: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
    """(T, H, W, 3) frames + FaceTrack (T, 6, 2) keypoints -> (T, 112, 112, 3) aligned faces (eyes, nose, mouth)."""
    keypoints = np.asarray(keypoints)
    if keypoints.ndim != 3 or keypoints.shape[1:] != (6, 2) or len(keypoints) != len(frames):
        raise ValueError(f"expected (T={len(frames)}, 6, 2) FaceTrack keypoints, got {keypoints.shape}")
    return np.stack([align_face(f, k[:4]) for f, k in zip(frames, keypoints)])


class ArcFaceEmbedder:
    """(N, 112, 112, 3) uint8 RGB aligned faces -> (N, 512) L2-normalised float64 embeddings."""

    def __init__(self, model: IResNet, device: str | torch.device = "cpu", batch_size: int = 32) -> None:
        self.model = model.eval().to(device)
        self.device = device
        self.batch_size = batch_size

    def __call__(self, faces: np.ndarray) -> np.ndarray:
        faces = np.asarray(faces)
        if faces.ndim != 4 or faces.shape[1:] != (112, 112, 3) or faces.dtype != np.uint8:
            raise ValueError(f"expected (N, 112, 112, 3) uint8 aligned faces, got {faces.shape} {faces.dtype}")
        out = []
        with torch.no_grad():
            for i in range(0, len(faces), self.batch_size):
                x = torch.from_numpy(np.ascontiguousarray(faces[i:i + self.batch_size])).permute(0, 3, 1, 2)
                x = (x.to(self.device, torch.float32) / 255.0 - 0.5) / 0.5
                out.append(self.model(x).double().cpu())
        emb = torch.cat(out)
        return torch.nn.functional.normalize(emb, dim=1).numpy()


def csim(embedder: ArcFaceEmbedder, generated_faces: np.ndarray, reference_face: np.ndarray) -> float:
    """Mean over frames of the cosine between each aligned generated face (T, 112, 112, 3) and the reference
    (112, 112, 3)."""
    gen = embedder(generated_faces)
    ref = embedder(np.asarray(reference_face)[None])[0]
    return float(np.mean(gen @ ref))


def write_random_weights(target: Path, seed: int) -> None:
    """Random iresnet100 plain state dict (the arcface_torch ``backbone.pth`` format)."""
    from dicetalk_bench.fileutil import atomic_path

    torch.manual_seed(seed)
    model = iresnet100()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):  # arcface_torch init: N(0, 0.1)
                m.weight.normal_(0, 0.1, generator=gen)
            elif isinstance(m, nn.PReLU):
                m.weight.fill_(0.25)
        # keep activations bounded through 49 residual blocks: scale the last BN of each block down
        for name, b in model.named_parameters():
            if name.endswith("bn3.weight"):
                b.fill_(0.1)
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:
        torch.save(model.state_dict(), tmp)


def load_arcface(path: str | Path | None = None, *, allow_unverified: bool = False,
                 device: str | torch.device = "cpu") -> tuple[ArcFaceEmbedder, dict]:
    """ArcFace-R100 through the weights registry (strict). Returns (embedder, weights record)."""
    from dicetalk_bench import weights

    resolved = weights.resolve(WEIGHTS_KEY, path, allow_unverified=allow_unverified)
    state = weights.load_state_dict(resolved)
    model = iresnet100()
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise weights.WeightsError(f"{resolved.path}: not an arcface_torch iresnet100 state dict: {exc}") from exc
    return ArcFaceEmbedder(model, device=device), resolved.record()

register_random_builder("arcface-r100", write_random_weights)
