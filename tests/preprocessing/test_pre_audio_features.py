"""Audio features: Whisper log-mel against transformers' extractor, encoder-state framing, Parquet/IPC round trips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from dicetalk_bench.preprocessing import audio_features as af
from dicetalk_bench.preprocessing.whisper import encoder_hidden_states, load_encoder_from_folder, load_whisper


def _speechlike(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * af.SAMPLE_RATE)) / af.SAMPLE_RATE
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)
    return (0.3 * env * np.sin(2 * np.pi * 220 * t) + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def test_log_mel_matches_transformers_whisper_extractor() -> None:
    from transformers import WhisperFeatureExtractor

    x = _speechlike(3.0)
    padded = np.zeros(af.WHISPER_WINDOW_SAMPLES, np.float32)
    padded[: x.size] = x
    ours = af.log_mel(padded)
    ref = WhisperFeatureExtractor(feature_size=80)(padded, sampling_rate=16000, return_tensors="np").input_features[0]
    assert ours.shape == ref.shape == (80, 3000)
    np.testing.assert_allclose(ours, ref, atol=2e-3)


def test_log_mel_tone_lands_in_the_right_mel_band() -> None:
    t = np.arange(16000) / 16000
    m = af.log_mel((0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32))
    assert m.shape == (80, 100)
    # Slaney mel: linear below 1 kHz with 200/3 Hz per mel -> 1 kHz = 15 mel; the 80 bands span 0..~45.2 mel
    # (8 kHz), so the 1 kHz band centre sits near index 15 / (45.25 / 81) - 1 ~ 26
    peak = int(np.argmax(m[:, 50]))
    assert abs(peak - 26) <= 1


def test_log_mel_per_frame_shape_and_order() -> None:
    x = _speechlike(1.0)
    n = af.n_video_frames(x.size)
    assert n == 25
    per = af.log_mel_per_frame(x, n)
    full = af.log_mel(x)
    assert per.shape == (25, 4, 80)
    np.testing.assert_array_equal(per[3, 2], full[:, 3 * 4 + 2])


def test_whisper_states_framing_matches_direct_encoder(whisper_random: Path) -> None:
    import torch

    enc = load_encoder_from_folder(whisper_random)
    x = _speechlike(31.0)  # two 30 s windows
    n = af.n_video_frames(x.size)
    states = af.whisper_states(x, enc, n, batch=2)
    assert states.shape == (n, 2, 5, 384) and states.dtype == np.float16
    padded = np.zeros(af.WHISPER_WINDOW_SAMPLES, np.float32)
    padded[: x.size - af.WHISPER_WINDOW_SAMPLES] = x[af.WHISPER_WINDOW_SAMPLES:]
    with torch.inference_mode():
        hs = enc(torch.from_numpy(af.log_mel(padded))[None], output_hidden_states=True).hidden_states
    direct = torch.stack(hs, 2)[0].numpy()  # (1500, 5, 384)
    # frame 750 + k of the clip is state 2k, 2k+1 of the second window
    np.testing.assert_allclose(states[750 + 10].astype(np.float32), direct[20:22], rtol=2e-3, atol=2e-3)
    assert np.isfinite(states.astype(np.float32)).all()


@pytest.mark.parametrize("keep", [1, 150, 1499, 1500])
def test_encoder_hidden_states_equal_transformers_hidden_states(whisper_random: Path, keep: int) -> None:
    """Our forward (last layer on the kept rows only) gives transformers' own hidden states: equal to float32
    rounding (the kept-row products may take another BLAS kernel: 7e-7 at most for 1-3 rows, bit-identical
    from 7 rows up on the development machine), and the stored float16 values agree."""
    import torch

    enc = load_encoder_from_folder(whisper_random)
    windows = []
    for seconds, seed in ((3.0, 1), (30.0, 2)):  # a short utterance padded to 30 s, and a full window
        padded = np.zeros(af.WHISPER_WINDOW_SAMPLES, np.float32)
        x = _speechlike(seconds, seed)
        padded[: x.size] = x
        windows.append(af.log_mel(padded))
    mel = torch.from_numpy(np.stack(windows))
    with torch.inference_mode():
        ref = torch.stack(enc(mel, output_hidden_states=True).hidden_states, dim=2)  # (2, 1500, 5, 384)
        ours = encoder_hidden_states(enc, mel, keep)
    assert ours.shape == (2, keep, 5, 384)
    torch.testing.assert_close(ours, ref[:, :keep], rtol=1e-6, atol=1e-5)
    assert torch.equal(ours[:, :, :-1], ref[:, :keep, :-1])  # the layers below the last run unchanged
    same_f16 = (ours.half() == ref[:, :keep].half()).float().mean().item()
    assert same_f16 > 0.998


def test_encoder_hidden_states_refuses_bad_input(whisper_random: Path) -> None:
    import torch

    enc = load_encoder_from_folder(whisper_random)
    with pytest.raises(ValueError, match="30 s window"):
        encoder_hidden_states(enc, torch.zeros(1, 80, 1000), 10)
    with pytest.raises(ValueError, match="keep=0"):
        encoder_hidden_states(enc, torch.zeros(1, 80, 3000), 0)
    with pytest.raises(ValueError, match="keep=1501"):
        encoder_hidden_states(enc, torch.zeros(1, 80, 3000), 1501)


def test_load_whisper_random_records_uncalibrated_hash(whisper_random: Path) -> None:
    from dicetalk_bench.weights import folder_sha256

    h = load_whisper("random:0")
    assert h.record["calibrated"] is False and h.record["file"] == "random:0"
    assert h.record["sha256"] == folder_sha256(whisper_random)
    with pytest.raises(ValueError, match="random:SEED"):
        load_whisper("random:x")


def test_silence_is_refused() -> None:
    with pytest.raises(af.SilentAudioError, match=r"clip\.m4a: audio is silent"):
        af.check_not_silent(np.zeros(1600, np.float32), 1e-3, "clip.m4a")
    af.check_not_silent(_speechlike(0.1), 1e-3, "ok")


def test_parquet_and_ipc_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    tables = {}
    for k, n in (("mead/M003/happy/level_1/001", 7), ("hdtf/RD_Radio2_0", 3)):
        lm = rng.standard_normal((n, 4, 80)).astype(np.float32)
        wh = rng.standard_normal((n, 2, 5, 384)).astype(np.float16)
        t = af.features_table(k, lm, wh, {"whisper": {"sha256": "ab", "calibrated": False}})
        pq.write_table(t, tmp_path / "a.parquet", compression="zstd")
        back = pq.read_table(tmp_path / "a.parquet")
        assert back.schema.field("whisper").type == af.WHISPER_TYPE
        np.testing.assert_array_equal(back.column("whisper").combine_chunks().to_numpy_ndarray(), wh)
        np.testing.assert_array_equal(back.column("logmel").combine_chunks().to_numpy_ndarray(), lm)
        assert af.table_metadata(back)["whisper"]["calibrated"] is False
        tables[k] = (back, lm, wh)
    ipc = af.write_ipc({k: v[0] for k, v in tables.items()}, tmp_path / "features.arrow")
    for k, (_, lm, wh) in tables.items():
        got = af.read_ipc_clip(ipc, k)
        np.testing.assert_array_equal(got["whisper"], wh)
        np.testing.assert_array_equal(got["logmel"], lm)
    with pytest.raises(KeyError):
        af.read_ipc_clip(ipc, "nope")


def test_loading_the_encoder_freezes_it_without_touching_global_grad_mode(whisper_random: Path) -> None:
    import torch

    assert torch.is_grad_enabled()
    encoder = load_encoder_from_folder(whisper_random)
    assert torch.is_grad_enabled(), "loading the whisper encoder must not switch autograd off process-wide"
    assert not any(p.requires_grad for p in encoder.parameters())
