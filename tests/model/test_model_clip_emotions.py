"""Training that matches sampling: per-clip emotion Gaussians from the trained embedder, z = mu + sigma * eps."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dicetalk_bench.model.clip_emotions import STORE_NAME, emotion_seed, sample_clip_emotion
from dicetalk_bench.model.dataset import DatasetError
from dicetalk_bench.model.train_loop import TrainConfig, compute_gradients, setup, step_seed, train

CLIPS = (("mead/M001/front/happy/level_2/001", "happy", 2), ("mead/M002/front/sad/level_1/002", "sad", 1))
WHISPER = {"key": "whisper-tiny", "file": "random:7", "sha256": "7" * 64, "calibrated": False}


def _write_preprocessed(root: Path) -> Path:
    spec = importlib.util.spec_from_file_location("model_tests_conftest", Path(__file__).with_name("conftest.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.write_preprocessed(root, n_frames=30, clips=CLIPS, whisper=WHISPER)


def _write_embedder(folder: Path, whisper: dict) -> Path:
    """An exported embedder folder as train_embedder writes it (random tiny weights)."""
    from safetensors.torch import save_file

    from dicetalk_bench.config import to_dict
    from dicetalk_bench.model.embedder_train import EmbedderTrainConfig
    from dicetalk_bench.model.emotion_embedder import EmbedderConfig, EmotionEmbedder
    from dicetalk_bench.model.priors import PRIOR_EMOTIONS, save_priors

    cfg = EmbedderTrainConfig(resolution=32, frames_per_clip=4,
                              embedder=EmbedderConfig(d_model=16, num_heads=2, cnn_channels=(8, 8)))
    torch.manual_seed(1)
    folder.mkdir(parents=True)
    save_file(EmotionEmbedder(cfg.embedder).state_dict(), str(folder / "embedder.safetensors"))
    (folder / "embedder.json").write_text(json.dumps({"config": to_dict(cfg), "whisper": whisper}))
    rng = np.random.default_rng(4)
    save_priors(folder / "priors", {e: rng.standard_normal((1, 256)).astype(np.float32) for e in PRIOR_EMOTIONS})
    return folder


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("clip_emotions")
    return _write_preprocessed(root / "processed"), _write_embedder(root / "embedder", WHISPER)


def _config(inputs, svd_dir, out: Path, **kw) -> TrainConfig:
    processed, embedder = inputs
    base = dict(model="tiny", data_root=processed, embedder_dir=embedder, svd=str(svd_dir), allow_unverified=True,
                out_dir=out,
                num_frames=4, resolution=32, steps=1, checkpoint_every=1, memory_check=False)
    return TrainConfig(**(base | kw))


def _independent_mu_sigma(embedder_dir: Path, processed: Path, clip_id: str) -> tuple[np.ndarray, np.ndarray]:
    """mu, sigma of a clip recomputed here from the files: 4 evenly spaced frames, crops resized to 32 px."""
    import pyarrow.parquet as pq

    from dicetalk_bench import media
    from dicetalk_bench.model.embedder_train import load_embedder

    embedder, _ = load_embedder(embedder_dir)
    video = media.read_video(processed / "videos" / f"{clip_id}.mp4").frames
    states = pq.read_table(processed / "audio" / f"{clip_id}.parquet").column("whisper").combine_chunks()
    states = states.to_numpy_ndarray().astype(np.float32)
    idx = np.round(np.linspace(0, len(video) - 1, 4)).astype(int)
    crops = torch.from_numpy(video[idx]).permute(0, 3, 1, 2).float() / 127.5 - 1
    crops = F.interpolate(crops, size=(32, 32), mode="bilinear", antialias=True, align_corners=False)
    with torch.no_grad():
        out = embedder(crops[None], torch.from_numpy(states[idx])[None])
    return out.mu[0].numpy(), torch.exp(0.5 * out.logvar[0]).numpy()


def test_per_clip_gaussians_are_computed_once_and_stored_with_the_run(inputs, svd_dir, tmp_path):
    processed, embedder = inputs
    run = setup(_config(inputs, svd_dir, tmp_path / "run"), "cpu")
    store = tmp_path / "run" / STORE_NAME
    assert store.is_file() and run.records["emotions"]["source"] == "per-clip"
    assert run.records["emotions"]["n_clips"] == 2
    for clip_id, _, _ in CLIPS:
        mu, sigma = run.data.clip_emotions[clip_id]
        ref_mu, ref_sigma = _independent_mu_sigma(embedder, processed, clip_id)
        np.testing.assert_allclose(mu, ref_mu, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(sigma, ref_sigma, rtol=1e-5, atol=1e-5)
        assert (sigma > 0).all()
    mu0 = run.data.clip_emotions[CLIPS[0][0]][0]
    assert not np.allclose(mu0, run.data.clip_emotions[CLIPS[1][0]][0])  # per clip, not per class
    # a window carries its clip's mu and sigma; the checkpoints store the embedder's class means for sampling
    from dicetalk_bench.model.dataset import WindowKey
    from dicetalk_bench.model.priors import load_priors

    item = run.data[WindowKey(0, 0, 0)]
    np.testing.assert_array_equal(item["prior"].numpy(), np.repeat(mu0[None], 4, 0))
    assert item["prior_sigma"].shape == (4, 256)
    for name, prior in load_priors(embedder / "priors").items():
        np.testing.assert_array_equal(run.data.priors[name], prior.reshape(-1))
    # a second run on the same clips and embedder reads the stored values instead of recomputing them
    stamp = store.stat().st_mtime_ns
    again = setup(_config(inputs, svd_dir, tmp_path / "run"), "cpu")
    assert store.stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(again.data.clip_emotions[CLIPS[1][0]][1], run.data.clip_emotions[CLIPS[1][0]][1])


def test_z_is_mu_plus_sigma_eps_drawn_from_the_sample_seed():
    mu, sigma = torch.randn(3, 4, 256), torch.rand(3, 4, 256)
    mu[:, 1:], sigma[:, 1:] = mu[:, :1], sigma[:, :1]  # one clip's values repeated over its window
    z = sample_clip_emotion(mu, sigma, [11, 12, 11])
    torch.testing.assert_close(z, sample_clip_emotion(mu, sigma, [11, 12, 11]), rtol=0, atol=0)
    for i, s in enumerate((11, 12, 11)):
        eps = torch.randn(256, generator=torch.Generator().manual_seed(emotion_seed(s)))
        torch.testing.assert_close(z[i], (mu[i, 0] + sigma[i, 0] * eps).expand(4, -1))
    assert not torch.allclose((z[0] - mu[0]) / sigma[0], (z[1] - mu[1]) / sigma[1])
    torch.testing.assert_close(sample_clip_emotion(mu, torch.zeros_like(sigma), [5, 6, 7]), mu)  # sigma 0: the mean


def test_training_step_conditions_on_z_of_each_sample(inputs, svd_dir, tmp_path):
    run = setup(_config(inputs, svd_dir, tmp_path / "run", batch_size=2), "cpu")
    seen = []
    net = run.net

    def spy(*args, **kwargs):
        seen.append(args[5].detach().clone())
        return net(*args, **kwargs)

    run.model = spy
    compute_gradients(run, 1)
    from dicetalk_bench.model.dataset import window_keys

    keys = window_keys(run.data.records, run.data.span, 2, run.cfg.seed, 1)
    base = step_seed(run.cfg.seed, 1)
    batch = run.data.batch(keys)
    expected = sample_clip_emotion(batch["prior"], batch["prior_sigma"], [(base + i) % (1 << 62) for i in range(2)])
    torch.testing.assert_close(seen[0], expected, rtol=0, atol=0)
    assert not torch.allclose(seen[0], batch["prior"])


def test_per_clip_training_refuses_missing_or_mismatched_embedder(inputs, svd_dir, tmp_path):
    with pytest.raises(ValueError, match="embedder_dir"):
        train(_config(inputs, svd_dir, tmp_path / "a", embedder_dir=None), device="cpu")
    assert not (tmp_path / "a").exists()
    other = _write_embedder(tmp_path / "other", dict(WHISPER, sha256="8" * 64, file="random:8"))
    with pytest.raises(DatasetError, match="other Whisper weights"):
        setup(_config(inputs, svd_dir, tmp_path / "b", embedder_dir=other), "cpu")
    with pytest.raises(ValueError, match="emotion_source 'mean'"):
        train(_config(inputs, svd_dir, tmp_path / "c", emotion_source="mean"), device="cpu")


def test_attention_mode_reads_the_bank_without_gradient_as_the_release():
    from dicetalk_bench.model.config import TINY
    from dicetalk_bench.model.network import build_emotion_model

    torch.manual_seed(0)
    emo = build_emotion_model(TINY)
    out = emo(torch.randn(2, 3, 256), retrieval=False)
    out.tokens.square().sum().backward()
    assert emo.codebook.codebook.weight.grad is None  # the release reads the bank through .data here
    assert emo.kv_tokens_linear.proj1.weight.grad.abs().sum() > 0
    emo.zero_grad()
    ret = emo(torch.randn(2, 3, 256), retrieval=True)
    (ret.tokens.square().sum() + ret.vq_loss).backward()
    assert emo.codebook.codebook.weight.grad.abs().sum() > 0  # retrieval mode: trained by the VQ loss
