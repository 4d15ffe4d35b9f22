"""Emotion embedder: shapes, loss closed forms, learning on a separable synthetic set, priors export."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dicetalk_bench.model.emotion_embedder import (EmbedderConfig, EmotionEmbedder, embedder_loss, emotion_priors,
                                                   gaussian_kl, reparameterise, supervised_contrastive_loss)
from dicetalk_bench.model.priors import PRIOR_EMOTIONS, load_priors, save_priors

SMALL = EmbedderConfig(d_model=32, num_heads=2, cnn_channels=(8, 16), temperature=0.2)


def synthetic_batch(n_emotions=4, n_ids=3, frames=3, size=16, seed=0):
    """Each clip: a face-crop colour pattern set by its emotion plus an identity tint; audio noise."""
    g = torch.Generator().manual_seed(seed)
    emo_pattern = torch.randn(n_emotions, 3, size, size, generator=g)
    id_tint = torch.randn(n_ids, 3, 1, 1, generator=g)
    crops, emotion, identity = [], [], []
    for e in range(n_emotions):
        for i in range(n_ids):
            noise = 0.3 * torch.randn(frames, 3, size, size, generator=g)
            crops.append((emo_pattern[e] + 0.7 * id_tint[i] + noise).tanh())
            emotion.append(e)
            identity.append(i)
    b = len(crops)
    return {"crops": torch.stack(crops), "whisper_states": torch.randn(b, frames, 2, 5, 384, generator=g),
            "emotion": torch.tensor(emotion), "identity": torch.tensor(identity)}


def test_shapes_and_eval_uses_mu():
    torch.manual_seed(0)
    emb = EmotionEmbedder(SMALL)
    batch = synthetic_batch()
    out = emb(batch["crops"], batch["whisper_states"])
    assert out.mu.shape == out.logvar.shape == out.z.shape == (12, 256)
    assert not torch.equal(out.z, out.mu)
    emb.eval()
    out = emb(batch["crops"], batch["whisper_states"])
    assert torch.equal(out.z, out.mu)
    with pytest.raises(ValueError, match="whisper_states"):
        emb(batch["crops"], batch["whisper_states"][:, :2])


def test_frame_mask_ignores_padded_frames():
    torch.manual_seed(0)
    emb = EmotionEmbedder(SMALL).eval()
    batch = synthetic_batch()
    crops, states = batch["crops"][:2], batch["whisper_states"][:2]
    mask = torch.tensor([[True, True, False], [True, True, False]])
    a = emb(crops, states, mask).mu
    b = emb(torch.cat([crops[:, :2], torch.randn_like(crops[:, 2:])], 1),
            torch.cat([states[:, :2], torch.randn_like(states[:, 2:])], 1), mask).mu
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_reparameterise_statistics():
    mu, logvar = torch.full((20000, 2), 1.5), torch.log(torch.full((20000, 2), 4.0))
    z = reparameterise(mu, logvar, torch.Generator().manual_seed(0))
    assert abs(z.mean().item() - 1.5) < 0.05 and abs(z.std().item() - 2.0) < 0.05


def test_kl_closed_form():
    mu, logvar = torch.tensor([[0.5, -1.0]]), torch.tensor([[0.0, math.log(2.0)]])
    expected = 0.5 * ((0.25 + 1 - 1 - 0) + (1 + 2 - 1 - math.log(2.0)))
    assert gaussian_kl(mu, logvar).item() == pytest.approx(expected)
    assert gaussian_kl(torch.zeros(3, 4), torch.zeros(3, 4)).item() == 0.0


def test_supcon_closed_form_and_identity_exclusion():
    z = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    emotion = torch.tensor([0, 0, 1, 0])
    identity = torch.tensor([0, 1, 1, 0])  # clip 3 shares clip 0's identity and emotion: excluded for anchor 0
    loss = supervised_contrastive_loss(z, emotion, identity, temperature=1.0)
    s = z @ z.t()
    terms = []
    for i, positives, others in [(0, [1], [1, 2]), (1, [0, 3], [0, 2, 3]), (3, [1], [1, 2])]:
        log_den = torch.logsumexp(s[i, others], 0)
        terms.append(-torch.stack([s[i, p] - log_den for p in positives]).mean())
    assert loss.item() == pytest.approx(torch.stack(terms).mean().item(), rel=1e-6)  # anchor 2 has no positive
    assert supervised_contrastive_loss(z, torch.arange(4), identity).item() == 0.0


def test_embedder_learns_a_separable_set_and_exports_priors(tmp_path):
    torch.manual_seed(0)
    emb = EmotionEmbedder(SMALL)
    opt = torch.optim.AdamW(emb.parameters(), lr=3e-3)
    batch = synthetic_batch()
    losses = []
    for step in range(40):
        out = emb(batch["crops"], batch["whisper_states"], generator=torch.Generator().manual_seed(step))
        terms = embedder_loss(out, batch["emotion"], batch["identity"], SMALL)
        opt.zero_grad()
        terms["loss"].backward()
        opt.step()
        losses.append(terms["supcon"].item())
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])
    # held-out clips of the same patterns: same-emotion mus are closer across identities than other emotions
    test = synthetic_batch(seed=0)
    test["crops"] = (test["crops"].atanh().clamp(-3, 3) + 0.1 * torch.randn_like(test["crops"])).tanh()
    names = {i: PRIOR_EMOTIONS[i] for i in range(4)}
    priors = emotion_priors(emb, [test], names)
    assert list(priors) == list(names.values()) and priors["angry"].shape == (1, 256)
    emb.eval()
    with torch.no_grad():
        mu = torch.nn.functional.normalize(emb(test["crops"], test["whisper_states"]).mu, dim=-1)
    sim = mu @ mu.t()
    same = (test["emotion"][:, None] == test["emotion"][None]) & (test["identity"][:, None] != test["identity"][None])
    diff = test["emotion"][:, None] != test["emotion"][None]
    assert sim[same].mean() > sim[diff].mean() + 0.2
    # export in the release format and read back through the safe loader
    folder = save_priors(tmp_path / "emo", priors)
    back = load_priors(folder, tuple(names.values()))
    for k in priors:
        np.testing.assert_array_equal(back[k], priors[k])
    # the prior is the mean mu of its emotion
    np.testing.assert_allclose(priors["contempt"][0], emb(test["crops"], test["whisper_states"]).mu[
        test["emotion"] == 1].mean(0).detach().numpy(), rtol=1e-5, atol=1e-6)
