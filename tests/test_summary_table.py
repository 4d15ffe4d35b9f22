"""The terminal summary table: decimals by magnitude, intervals, failures."""

from __future__ import annotations

import math

import pytest

from dicetalk_bench.summary_table import decimals_for, format_interval, format_value, results_table, text_table


@pytest.mark.parametrize("value,decimals", [(938.2, 0), (100.0, 0), (14.26, 1), (1.234, 2), (0.5123, 3),
                                            (0.01234, 4), (0.000012, 4), (0.0, 0), (-3.5, 2), (math.inf, 0)])
def test_decimals_give_about_three_significant_digits(value: float, decimals: int) -> None:
    assert decimals_for(value) == decimals


def test_values_and_intervals() -> None:
    assert format_value(None) == "-" and format_value(float("nan")) == "-"
    assert format_value(14.26) == "14.3" and format_value(0.51234) == "0.512"
    assert format_interval({"low": 13.14, "high": 15.36}, 1) == "[13.1, 15.4]"
    assert format_interval(None, 2) == "-" and format_interval({"low": None, "high": 1.0}, 2) == "-"


def test_results_table_from_metric_results() -> None:
    from dicetalk_bench.metrics.result import MetricResult

    rows = [MetricResult(key="psnr", value=14.26, higher_is_better=True, n_videos=3,
                         clip_ids=("a", "b", "c", "d"), failures={"d": "no face"},
                         interval={"low": 13.14, "high": 15.36, "level": 0.95, "method": "bca", "n_resamples": 10,
                                   "seed": 0}),
            MetricResult(key="fid", value=938.2, higher_is_better=False, n_videos=4, clip_ids=("a", "b", "c", "d"))]
    lines = results_table(rows).splitlines()
    assert lines[0].split() == ["metric", "value", "interval", "n", "failures"]
    assert lines[2].split() == ["psnr", "\u2191", "14.3", "[13.1,", "15.4]", "3", "1/4"]
    assert lines[3].split() == ["fid", "\u2193", "938", "-", "4", "0/4"]
    assert set(lines[1]) == {"-", " "}


def test_text_table_aligns_columns() -> None:
    out = text_table(["a", "bb"], [["long", "x"], ["y", "z"]]).splitlines()
    assert out == ["a     bb", "----  --", "long  x", "y     z"]
