"""16-bit PCM quantisation of float audio (FFmpeg's float -> s16 convention)."""

import numpy as np
import pytest

from dicetalk_bench.pcm import PCM16_SCALE, float_to_pcm16


def test_full_scale_and_saturation():
    x = np.array([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0], np.float32)
    np.testing.assert_array_equal(float_to_pcm16(x), [-32768, -32768, -16384, 0, 16384, 32767, 32767])
    assert float_to_pcm16(x).dtype == np.int16


def test_values_on_the_int16_grid_round_trip_exactly():
    q = np.arange(-32768, 32768, 97, dtype=np.int16)
    np.testing.assert_array_equal(float_to_pcm16(q.astype(np.float64) / PCM16_SCALE), q)
    np.testing.assert_array_equal(float_to_pcm16((q / PCM16_SCALE).astype(np.float32)), q)


def test_rounds_to_nearest_and_keeps_shape():
    x = np.array([[0.4, 0.6], [-0.4, -0.6]]) / PCM16_SCALE
    np.testing.assert_array_equal(float_to_pcm16(x), [[0, 1], [0, -1]])


def test_int16_passes_through_and_other_integers_are_refused():
    q = np.array([1, -2, 3], np.int16)
    assert float_to_pcm16(q) is q
    with pytest.raises(ValueError, match="int16 or float"):
        float_to_pcm16(np.array([1, 2], np.int32))
