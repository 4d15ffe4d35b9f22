"""CSIM: ArcFace iresnet100 key list, registry loading, alignment to the ArcFace template, cosine closed forms."""

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from dicetalk_bench import weights
from dicetalk_bench.metrics.identity import (ARCFACE_TEMPLATE_112, align_face, align_from_track, csim, iresnet100,
                                             load_arcface, umeyama_similarity)

KEYS_TSV = Path(__file__).resolve().parents[1] / "data" / "arcface_iresnet100.tsv"


def _reference_keys():
    rows = []
    for line in KEYS_TSV.read_text().splitlines():
        if line and not line.startswith("#"):
            name, shape = line.split("\t")
            rows.append((name, tuple(int(x) for x in shape.strip("()").split(",") if x.strip())))
    return rows


def test_iresnet100_keys_equal_arcface_torch():
    ours = [(k, tuple(v.shape)) for k, v in iresnet100().state_dict().items()]
    assert sorted(ours) == sorted(_reference_keys())
    assert sum(p.numel() for p in iresnet100().parameters()) == pytest.approx(65.2e6, rel=0.01)


def test_umeyama_recovers_a_known_similarity():
    angle, scale, t = 0.3, 1.7, np.array([12.0, -5.0])
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    src = ARCFACE_TEMPLATE_112
    dst = src @ (scale * rot).T + t
    m = umeyama_similarity(src, dst)
    np.testing.assert_allclose(m, np.hstack([scale * rot, t[:, None]]), atol=1e-10)
    with pytest.raises(ValueError, match="degenerate"):
        umeyama_similarity(np.zeros((4, 2)), np.ones((4, 2)))
    with pytest.raises(ValueError, match="matching"):
        umeyama_similarity(np.zeros((4, 2)), np.zeros((3, 2)))


def test_alignment_maps_track_keypoints_onto_the_template():
    # draw dots at template positions scaled x2 and shifted; alignment must bring them back to the template
    tmpl4 = np.vstack([ARCFACE_TEMPLATE_112[:3], ARCFACE_TEMPLATE_112[3:].mean(0, keepdims=True)])
    pts = tmpl4 * 2.0 + np.array([40.0, 30.0])
    frame = np.zeros((300, 300, 3), np.uint8)
    for x, y in pts:
        cv2.circle(frame, (int(round(x)), int(round(y))), 3, (255, 255, 255), -1)
    kps = np.zeros((1, 6, 2), np.float32)
    kps[0, :4] = pts
    kps[0, 4:] = pts[:2]  # ears unused
    face = align_from_track(frame[None], kps)[0]
    assert face.shape == (112, 112, 3)
    for x, y in tmpl4:
        assert face[int(round(y)), int(round(x))].max() > 100
    with pytest.raises(ValueError, match="FaceTrack keypoints"):
        align_from_track(frame[None], np.zeros((1, 5, 2)))
    assert align_face(frame, pts).shape == (112, 112, 3)


@pytest.fixture(scope="module")
def arcface(tmp_path_factory):
    path = weights.make_random("arcface-r100", tmp_path_factory.mktemp("arc"), seed=0)
    return load_arcface(path, allow_unverified=True)


def test_csim_closed_forms_and_batch_independence(arcface):
    emb, record = arcface
    assert record["calibrated"] is False and record["key"] == "arcface-r100"
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, (2, 112, 112, 3), dtype=np.uint8)
    e = emb(faces)
    assert e.shape == (2, 512)
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, rtol=1e-12)
    assert csim(emb, faces[[0, 0]], faces[0]) == pytest.approx(1.0, abs=1e-6)
    value = csim(emb, faces, faces[0])
    ref = emb(faces[:1])[0]  # the reference is embedded alone (batch of 1), as csim does
    assert value == pytest.approx(np.mean(e @ ref), abs=1e-9) and value < 1.0
    emb.batch_size = 1
    np.testing.assert_allclose(emb(faces), e, atol=1e-5)
    with pytest.raises(ValueError, match="aligned faces"):
        emb(faces[:, :100])


def test_wrong_state_dict_is_refused(tmp_path):
    bad = tmp_path / "arcface_r100.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 3, 3)}, bad)  # most keys missing
    with pytest.raises(weights.WeightsError, match="arcface_r100.pth"):
        load_arcface(bad, allow_unverified=True)
