"""Pooling per-video features of a set metric into one matrix."""

import numpy as np
import pytest

from dicetalk_bench.metrics.feature_sets import stack_features


def test_rows_follow_sorted_clip_ids_whatever_the_insertion_order():
    a = np.full((2, 3), 1.0, np.float32)
    b = np.full((1, 3), 2.0, np.float32)
    c = np.full((3, 3), 3.0, np.float32)
    out = stack_features({"c": c, "a": a, "b": b})
    np.testing.assert_array_equal(out[:, 0], [1, 1, 2, 3, 3, 3])
    assert out.shape == (6, 3) and out.dtype == np.float32
    np.testing.assert_array_equal(out, stack_features({"a": a, "b": b, "c": c}))


def test_dtype_is_converted_on_request_and_kept_otherwise():
    x = np.random.default_rng(0).standard_normal((4, 2)).astype(np.float32)
    out = stack_features({"v": x}, dtype=np.float64)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, x.astype(np.float64))


def test_empty_set_is_zero_rows_of_the_given_dimension():
    out = stack_features({}, dim=400)
    assert out.shape == (0, 400) and out.dtype == np.float32
    assert stack_features({}, dim=5, dtype=np.float64).dtype == np.float64
    with pytest.raises(ValueError, match="feature dimension"):
        stack_features({})


def test_mismatched_feature_widths_are_refused():
    with pytest.raises(ValueError):
        stack_features({"a": np.zeros((1, 3)), "b": np.zeros((1, 4))})
