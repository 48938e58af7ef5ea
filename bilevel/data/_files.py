"""File helpers of :mod:`bilevel.data`: paths, hashing, atomic writes, npz.

Nothing here touches the network. The rules every writer follows:

* a file a later step may trust is first written under a temporary name in the
  same directory, verified, and only then moved into place with
  :func:`os.replace` (atomic on POSIX) by :func:`bilevel.io.atomic_path`; on
  any error the temporary file is removed, so a half-written file never
  carries the final name;
* ``.npz`` files are written deterministically (sorted members, fixed zip
  timestamps and permissions), so the same arrays always give the same bytes
  and the same sha256 on a given zlib.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from pathlib import Path
from typing import Iterator, Mapping

import numpy as np

from ..io import atomic_path  # the project's one atomic writer (mode 0o666 & ~umask, stale temps swept)

__all__ = ["repo_root", "cache_dir", "default_processed_dir", "default_fixture_dir",
           "file_hashes", "sha256_file", "array_sha256", "atomic_path", "write_json",
           "write_npz", "read_npz", "CACHE_ENV", "OFFLINE_ENV"]

#: Environment variable that overrides the download cache directory.
CACHE_ENV = "BILEVEL_DATA_CACHE"
#: Environment variable that, when set to a non-empty value other than ``0``,
#: forbids every non-registry download (canonical URLs are skipped).
OFFLINE_ENV = "BILEVEL_DATA_OFFLINE"

_CHUNK = 1 << 20
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def repo_root() -> Path | None:
    """The repository checkout that holds this package, or ``None`` if installed elsewhere."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "pyproject.toml").is_file() and (root / "data").is_dir() else None


def cache_dir(override: str | os.PathLike | None = None) -> Path:
    """Directory for downloaded artefacts.

    Order: ``override`` if given, else ``$BILEVEL_DATA_CACHE``, else
    ``<repo>/data/cache`` (gitignored), else ``~/.cache/bilevel-data`` when the
    package is not run from a checkout. The directory is created.
    """
    if override is not None:
        path = Path(override)
    elif os.environ.get(CACHE_ENV):
        path = Path(os.environ[CACHE_ENV])
    elif repo_root() is not None:
        path = repo_root() / "data" / "cache"
    else:
        path = Path.home() / ".cache" / "bilevel-data"
    path.mkdir(parents=True, exist_ok=True)
    return path


def default_processed_dir() -> Path:
    """``<repo>/data/processed`` (the DVC ``prepare`` stages write there)."""
    root = repo_root()
    return (root if root is not None else Path.cwd()) / "data" / "processed"


def default_fixture_dir() -> Path:
    """``<repo>/data/fixtures`` (committed fixtures)."""
    root = repo_root()
    return (root if root is not None else Path.cwd()) / "data" / "fixtures"


def offline() -> bool:
    """Whether ``$BILEVEL_DATA_OFFLINE`` forbids non-registry downloads."""
    return os.environ.get(OFFLINE_ENV, "") not in ("", "0")


def file_hashes(path: str | os.PathLike, algorithms: tuple[str, ...] = ("sha256",)) -> dict:
    """Hex digests of a file, read in 1 MiB chunks, plus its size in bytes.

    >>> import tempfile, os
    >>> with tempfile.NamedTemporaryFile(delete=False) as f:
    ...     _ = f.write(b"abc")
    >>> file_hashes(f.name, ("sha256", "md5"))["md5"]
    '900150983cd24fb0d6963f7d28e17f72'
    >>> os.remove(f.name)
    """
    hs = {a: hashlib.new(a) for a in algorithms}
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            size += len(chunk)
            for h in hs.values():
                h.update(chunk)
    out = {a: h.hexdigest() for a, h in hs.items()}
    out["size"] = size
    return out


def sha256_file(path: str | os.PathLike) -> str:
    """sha256 hex digest of a file."""
    return file_hashes(path)["sha256"]


def array_sha256(a: np.ndarray) -> str:
    """sha256 of an array's C-order bytes (independent of how it was stored)."""
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def write_json(path: str | os.PathLike, obj: Mapping) -> None:
    """Write ``obj`` as sorted, indented JSON, atomically."""
    text = json.dumps(obj, indent=2, sort_keys=True) + "\n"
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _npz_bytes(arrays: Mapping[str, np.ndarray], compress: bool) -> Iterator[tuple[zipfile.ZipInfo, bytes]]:
    for key in sorted(arrays):
        buf = io.BytesIO()
        np.lib.format.write_array(buf, np.asanyarray(arrays[key]), allow_pickle=False)
        info = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_EPOCH)
        info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
        info.external_attr = 0o644 << 16
        info.create_system = 3
        yield info, buf.getvalue()


def write_npz(path: str | os.PathLike, arrays: Mapping[str, np.ndarray], *,
              compress: bool = True) -> dict:
    """Write ``arrays`` to ``path`` deterministically and atomically; verify before renaming.

    After writing the temporary file, it is read back and every array's
    content hash is compared with the in-memory array; only then is the file
    moved to ``path``.

    Returns:
      ``{"file": name, "sha256": ..., "size": bytes, "arrays": {key: {"shape",
      "dtype", "sha256"}}}`` describing what was written.
    """
    expected = {k: array_sha256(np.asanyarray(v)) for k, v in arrays.items()}
    with atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, "w", allowZip64=True) as zf:
            for info, data in _npz_bytes(arrays, compress):
                zf.writestr(info, data, compresslevel=6 if compress else None)
        with np.load(tmp, allow_pickle=False) as back:
            if sorted(back.files) != sorted(arrays):
                raise OSError(f"{tmp}: wrote members {sorted(back.files)}, expected {sorted(arrays)}")
            for k in arrays:
                if array_sha256(back[k]) != expected[k]:
                    raise OSError(f"{tmp}: member {k} did not read back identically")
        digest = file_hashes(tmp)
    return {
        "file": Path(path).name,
        "sha256": digest["sha256"],
        "size": digest["size"],
        "arrays": {k: {"shape": list(np.shape(v)), "dtype": str(np.asanyarray(v).dtype),
                       "sha256": expected[k]} for k, v in sorted(arrays.items())},
    }


def read_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Load every member of an ``.npz`` into memory (no pickles allowed)."""
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}
