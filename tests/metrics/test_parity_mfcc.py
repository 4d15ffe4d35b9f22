"""MFCC parity with python_speech_features 0.6 (the PyPI release syncnet_python calls), on random int16 audio."""

import numpy as np
import pytest
import python_speech_features as psf

from dicetalk_bench.metrics.mfcc import mel_filterbank, mfcc, n_mfcc_frames


@pytest.mark.parametrize("n_samples", [400, 401, 560, 16000, 16000 * 2 + 37, 250])
def test_mfcc_equals_python_speech_features(n_samples):
    rng = np.random.default_rng(n_samples)
    audio = rng.integers(-20000, 20000, size=n_samples).astype(np.int16)
    ours = mfcc(audio)
    ref = psf.mfcc(audio, 16000)
    assert ours.shape == ref.shape == (n_mfcc_frames(n_samples), 13)
    np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-6)


def test_mfcc_silence_and_tone_match_reference():
    # zero signal exercises the eps replacement of zero energies; a tone exercises sparse filter outputs
    t = np.arange(8000) / 16000
    tone = (8000 * np.sin(2 * np.pi * 300 * t)).astype(np.int16)
    for audio in (np.zeros(4000, np.int16), tone):
        np.testing.assert_allclose(mfcc(audio), psf.mfcc(audio, 16000), rtol=1e-6, atol=1e-6)


def test_filterbank_equals_python_speech_features():
    ref = psf.get_filterbanks(26, 512, 16000, 0, 8000)
    np.testing.assert_allclose(mel_filterbank(26, 512, 16000, 0.0, 8000.0), ref)
