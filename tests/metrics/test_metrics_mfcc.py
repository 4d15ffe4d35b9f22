"""MFCC framing and energy closed forms (parity with python_speech_features 0.6: test_parity_mfcc.py)."""

import numpy as np
import pytest

from dicetalk_bench.metrics.mfcc import MfccConfig, mel_filterbank, mfcc, mfcc_from_float, n_mfcc_frames


def test_frame_count_closed_form():
    assert n_mfcc_frames(400) == 1
    assert n_mfcc_frames(401) == 2
    assert n_mfcc_frames(16000) == 1 + int(np.ceil((16000 - 400) / 160)) == 99
    assert n_mfcc_frames(0) == 1


def test_c0_is_log_energy_of_rectangular_preemphasised_frame():
    rng = np.random.default_rng(1)
    audio = rng.integers(-1000, 1000, size=800).astype(np.int16)
    x = audio.astype(np.float64)
    y = np.concatenate([x[:1], x[1:] - 0.97 * x[:-1]])
    frame = y[:400]
    # Parseval on the zero-padded 512-point rfft: sum |X_k|^2 / 512 over the half spectrum
    spec = np.abs(np.fft.rfft(frame, 512)) ** 2 / 512
    assert mfcc(audio)[0, 0] == pytest.approx(np.log(spec.sum()), rel=1e-12)


def test_float_input_is_quantised_to_int16_scale():
    rng = np.random.default_rng(2)
    audio = rng.integers(-20000, 20000, size=3000).astype(np.int16)
    np.testing.assert_allclose(mfcc_from_float(audio / 32768.0), mfcc(audio), rtol=1e-12, atol=1e-12)


def test_filterbank_rejects_bad_high_freq_and_multichannel_input():
    with pytest.raises(ValueError, match="Nyquist"):
        mel_filterbank(26, 512, 16000, 0.0, 9000.0)
    with pytest.raises(ValueError, match="mono"):
        mfcc(np.zeros((2, 100)))


def test_config_is_frozen():
    with pytest.raises(Exception):
        MfccConfig().n_cep = 12  # type: ignore[misc]
