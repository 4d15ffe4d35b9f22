"""Every command line answers --help without importing the heavy stack (torch, PyAV, mediapipe, dask, diffusers)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

CLIS = ("preprocess", "train", "train_embedder", "sample", "evaluate", "weights", "demo_data", "metrics",
        "convert_release")
HEAVY = ("torch", "av", "mediapipe", "dask", "distributed", "diffusers", "transformers")

_PROBE = """
import json, runpy, sys
sys.argv = [{name!r}, "--help"]
code = 0
try:
    runpy.run_module({module!r}, run_name="__main__")
except SystemExit as exc:
    code = exc.code or 0
print(json.dumps({{"code": code, "heavy": sorted(m for m in {heavy!r} if m in sys.modules)}}))
"""


@pytest.mark.parametrize("name", CLIS)
def test_help_is_light(name: str) -> None:
    module = f"dicetalk_bench.{name}"
    proc = subprocess.run([sys.executable, "-c", _PROBE.format(name=name, module=module, heavy=HEAVY)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "usage:" in proc.stdout
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["code"] == 0
    assert report["heavy"] == [], f"`python -m {module} --help` imported {report['heavy']}"
