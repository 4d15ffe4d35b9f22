"""The sampling command line is a thin layer over :mod:`dicetalk_bench.model.portrait_sample`."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from dicetalk_bench.errors import SetupError
from dicetalk_bench.model.portrait_sample import PortraitSampleRequest, check_request, parse_face_box
from dicetalk_bench.sample import build_parser, request_from_args

REQUIRED = ["--checkpoint", "ck", "--image", "im.png", "--audio", "a.wav", "--out", "o.mp4"]


def test_every_option_is_a_request_field_with_the_same_default():
    args = build_parser().parse_args(REQUIRED)
    request = request_from_args(args)
    assert request == PortraitSampleRequest(checkpoint="ck", image="im.png", audio="a.wav", out="o.mp4")
    options = {a.dest for a in build_parser()._actions} - {"help", "verbose"}
    assert options == {f.name for f in dataclasses.fields(PortraitSampleRequest)}


def test_options_reach_the_request():
    args = build_parser().parse_args(REQUIRED + ["--steps", "3", "--crop", "release", "--dtype", "bf16",
                                                 "--window-batch", "2", "--keep-resolution"])
    r = request_from_args(args)
    assert (r.steps, r.crop, r.dtype, r.window_batch, r.keep_resolution) == (3, "release", "bf16", 2, True)


def test_face_box_parsing():
    assert np.array_equal(parse_face_box("1,2,30.5,40"), np.array([1, 2, 30.5, 40], np.float32))
    for bad in ("1,2,3", "a,b,c,d", ""):
        with pytest.raises(SetupError, match="four numbers"):
            parse_face_box(bad)


def test_check_request_refuses_before_any_model_loads(tmp_path):
    request = PortraitSampleRequest(checkpoint=str(tmp_path), image=str(tmp_path / "none.png"),
                                    audio=str(tmp_path / "none.wav"), out=str(tmp_path / "o.mp4"), emotion="bored")
    with pytest.raises(SetupError, match="not one of the 8 MEAD emotions"):
        check_request(request)
    with pytest.raises(SetupError, match="--image .*no such file"):
        check_request(dataclasses.replace(request, emotion="happy"))
