"""space_ga (1980 US presidential election, 3,107 counties): LIBSVM file or the elect80 stand-in.

Sources, in the order ``origin="auto"`` tries them:

1. canonical: LIBSVM ``space_ga`` (:data:`LIBSVM_URL`), 3,107 rows, target
   ``ln(VOTES/POP)`` and 6 features in StatLib order (POP, EDUCATION, HOUSES,
   INCOME, XCOORD, YCOORD). **No checksum of this file is published**, so it
   is checked by content only (3,107 rows, feature indices 1..6, finite
   values) and its sha256 is recorded in the metadata. To pin it, set
   ``$BILEVEL_SPACE_GA_SHA256`` to the sha256 you trust; the download is then
   refused unless it matches.
2. registry: ``data/raw/elect80.csv``, committed in this repository, extracted
   once from ``elect80`` (CC0) in the Debian package ``r-cran-spdata``
   2.2.1-1 (see ``data/raw/PROVENANCE.md``); its sha256 is pinned in
   :data:`ELECT80_SHA256`. Same 3,107 counties, same source (Pace & Barry
   1997), same target. It stores the counts only as per-capita ratios, so
   ``ln POP`` is lost and the stand-in has **5 features instead of 6**:

   ================================  ===========================================
   stand-in column                   relation to space_ga (features are logs)
   ================================  ===========================================
   ``ln_pc_college``                 EDUCATION - POP
   ``ln_pc_homeownership``           HOUSES - POP
   ``ln_pc_income``                  INCOME - POP
   ``long``                          XCOORD (degrees)
   ``lat``                           YCOORD (degrees)
   target ``ln_pc_turnout``          ln(VOTES/POP), the space_ga target
   ================================  ===========================================

The two origins therefore give *different* feature matrices; the metadata
field ``n_features`` and ``feature_names`` say which one was used.

Byte stability: the prepared arrays are the same bytes on every machine.
The logarithms are correctly rounded (:func:`exact_log`) instead of
``np.log``, whose result depends on the CPU: numpy dispatches float64
``log`` to its own AVX-512 kernel where the CPU has it and to the C
library's ``log`` elsewhere, and glibc in turn picks an FMA or a non-FMA
variant at load time; these differ in the last bit for about 1 input in
10,000. The target statistics use :func:`math.fsum` instead of numpy's
SIMD pairwise sums.

License: spData ``elect80`` CC0; LIBSVM/StatLib files carry no explicit
license. Cite R. K. Pace and R. Barry, "Quick computation of spatial
autoregressive estimators", Geographical Analysis 29(3), 1997.
"""

from __future__ import annotations

import csv
import decimal
import math
import os
from pathlib import Path
from typing import Callable

import numpy as np

from ._files import repo_root, sha256_file
from .errors import DataError
from .fetch import fetch_url

__all__ = ["LIBSVM_URL", "ELECT80_SHA256", "ELECT80_COLUMNS", "STAND_IN_FEATURES",
           "LIBSVM_FEATURES", "N_COUNTIES", "parse_libsvm", "arrays_from_elect80", "sources",
           "SHA256_ENV", "exact_log", "mean_std"]

NAME = "space_ga"
LICENSE = "elect80: CC0 (R package spData); LIBSVM/StatLib space_ga: no explicit license"
CITATION = ("R. K. Pace and R. Barry. Quick computation of spatial autoregressive estimators. "
            "Geographical Analysis 29(3), 1997.")

LIBSVM_URL = "https://www.csie.ntu.edu.tw/~cjlin/libsvmtools/datasets/regression/space_ga"
#: Environment variable with a sha256 to enforce on the LIBSVM download.
SHA256_ENV = "BILEVEL_SPACE_GA_SHA256"
N_COUNTIES = 3107

#: Relative path of the committed stand-in inside the repository.
ELECT80_PATH = Path("data") / "raw" / "elect80.csv"
ELECT80_SHA256 = "002f871d552b91d5a0a911a67616b7c6b9de09f3b39a5045c88fee6d945e1a02"
ELECT80_COLUMNS = ("FIPS", "long", "lat", "pc_turnout", "pc_college", "pc_homeownership",
                   "pc_income")
ELECT80_SOURCE = "committed:data/raw/elect80.csv (Debian r-cran-spdata 2.2.1-1, elect80)"

STAND_IN_FEATURES = ("ln_pc_college", "ln_pc_homeownership", "ln_pc_income", "long", "lat")
LIBSVM_FEATURES = ("pop", "education", "houses", "income", "xcoord", "ycoord")
#: Published statistics of ln(pc_turnout) on the stand-in (mean, std with ddof 0).
TARGET_MEAN_STD = (-0.576234, 0.198024)

SUBSTITUTION_NOTE = (
    "space_ga stand-in: elect80 (spData, CC0) has the same 3,107 counties and target "
    "ln(VOTES/POP) as LIBSVM space_ga, but only per-capita ratios of the counts, so ln(POP) is "
    "not recoverable: 5 features (ln pc_college = EDUCATION-POP, ln pc_homeownership = "
    "HOUSES-POP, ln pc_income = INCOME-POP, long, lat) instead of space_ga's 6.")


#: Decimal context of :func:`exact_log`: 50 significant digits (about 166 bits), far
#: more than the 118 bits the hardest binary64 inputs of ``ln`` need to round correctly
#: (Lefevre and Muller, 2001), so rounding 50 digits to binary64 gives the correctly
#: rounded ``ln``. Decimal arithmetic is integer arithmetic (libmpdec): no FPU, SIMD or
#: libm is involved.
_LN_CONTEXT = decimal.Context(prec=50, rounding=decimal.ROUND_HALF_EVEN)


def exact_log(a: np.ndarray) -> np.ndarray:
    """Natural logarithm of positive finite float64 values, correctly rounded.

    Each value is converted exactly to :class:`decimal.Decimal`, its ``ln``
    is taken to 50 significant digits (``Decimal.ln`` is correctly rounded)
    and the result is rounded once more to the nearest float64. The result is
    therefore the float64 nearest to the exact ``ln(a)``, the same bytes on
    every machine, unlike ``np.log`` (numpy's AVX-512 kernel or the C
    library's FMA/non-FMA variants, which disagree in the last bit on some
    inputs). It costs about 40 microseconds per value.

    >>> exact_log(np.array([1.0, 2.0, 0.5])).tolist()
    [0.0, 0.6931471805599453, -0.6931471805599453]

    Raises:
      ValueError: a value that is not positive and finite.
    """
    a = np.asarray(a, dtype=np.float64)
    if not (np.isfinite(a).all() and (a > 0).all()):
        raise ValueError("exact_log needs positive finite values; check the input for zeros, "
                         "negatives, NaN or inf")
    ln = _LN_CONTEXT.ln
    return np.array([float(ln(decimal.Decimal(v))) for v in a.ravel().tolist()],
                    dtype=np.float64).reshape(a.shape)


def mean_std(y: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation (``ddof=0``) of a 1-D float64 array, order-independent.

    Sums use :func:`math.fsum` (the correctly rounded sum), so the result does
    not depend on numpy's SIMD-width-dependent pairwise summation:
    ``mean = fsum(y) / n`` and ``std = sqrt(fsum((y - mean)**2) / n)``, each
    elementwise operation a single IEEE rounding.

    >>> mean_std(np.array([1.0, 2.0, 3.0, 4.0]))
    (2.5, 1.118033988749895)
    """
    y = np.asarray(y, dtype=np.float64).ravel()
    mean = math.fsum(y.tolist()) / y.size
    return mean, math.sqrt(math.fsum(((y - mean) ** 2).tolist()) / y.size)


def parse_libsvm(text: str, n_features: int = 6, source: str = LIBSVM_URL) -> tuple[np.ndarray, np.ndarray]:
    """Parse dense-ish LIBSVM regression text (``target i:v ...``, 1-based indices).

    Omitted indices are zeros, as in the LIBSVM format.

    >>> x, y = parse_libsvm("0.5 1:2 3:4\\n-1 2:1.5\\n", n_features=3)
    >>> x.tolist(), y.tolist()
    ([[2.0, 0.0, 4.0], [0.0, 1.5, 0.0]], [0.5, -1.0])

    Raises:
      DataError: a malformed line or an index outside ``1..n_features``.
    """
    rows, targets = [], []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        row = np.zeros(n_features)
        try:
            targets.append(float(parts[0]))
            for item in parts[1:]:
                idx, val = item.split(":")
                i = int(idx)
                if not 1 <= i <= n_features:
                    raise ValueError(f"feature index {i} outside 1..{n_features}")
                row[i - 1] = float(val)
        except ValueError as e:
            raise DataError(NAME, source, f"malformed LIBSVM line {lineno} ({e})",
                            hint="the download is not the LIBSVM space_ga file") from None
        rows.append(row)
    x = np.array(rows, dtype=np.float64).reshape(-1, n_features)
    return x, np.array(targets, dtype=np.float64)


def _from_libsvm(cache: Path, timeout: float) -> tuple[dict, dict]:
    pinned = os.environ.get(SHA256_ENV) or None
    got = fetch_url(NAME, LIBSVM_URL, cache / "url" / "space_ga" / "space_ga",
                    expected={"sha256": pinned} if pinned else None, timeout=timeout)
    x, y = parse_libsvm(Path(got["path"]).read_text("ascii", errors="replace"))
    if x.shape != (N_COUNTIES, 6) or not (np.isfinite(x).all() and np.isfinite(y).all()):
        Path(got["path"]).unlink(missing_ok=True)
        raise DataError(NAME, LIBSVM_URL, "unexpected content", expected=f"({N_COUNTIES}, 6) finite",
                        actual=f"{x.shape}", hint="the download is not LIBSVM space_ga; retry")
    verification = (f"sha256 pinned by ${SHA256_ENV}" if pinned else
                    "no published checksum: verified by content (3,107 rows x 6 finite features)")
    return {"x": x, "y": y, "fips": np.array([""] * N_COUNTIES)}, {
        "kind": "url", "source": LIBSVM_URL, "verification": verification,
        "files": {"space_ga": {"sha256": got["sha256"], "size": got["size"],
                               "downloaded": not got["cached"]}},
        "feature_names": list(LIBSVM_FEATURES), "target_name": "ln(VOTES/POP)",
        "substitutions": [],
    }


def arrays_from_elect80(path: str | os.PathLike, sha256: str | None = ELECT80_SHA256,
                        source: str = ELECT80_SOURCE) -> tuple[dict, dict]:
    """Read the elect80 CSV and build the 5-feature stand-in.

    Args:
      path: the CSV (columns :data:`ELECT80_COLUMNS`).
      sha256: required sha256 of the file (``None`` skips the check, for tests).
      source: label for errors.

    Returns:
      ``(arrays, provenance)``; arrays ``x`` ``(3107, 5)``, ``y`` ``(3107,)``,
      ``fips`` ``(3107,)`` county FIPS codes.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(NAME, source, f"{path} is missing",
                        hint="run from a checkout of the repository (the CSV is committed)")
    if sha256 is not None:
        got = sha256_file(path)
        if got != sha256:
            raise DataError(NAME, source, f"sha256 mismatch for {path.name}", expected=sha256,
                            actual=got, hint="restore the committed file (git checkout -- "
                                             f"{ELECT80_PATH})")
    with open(path, newline="", encoding="ascii") as fh:
        reader = csv.reader(fh)
        header = tuple(next(reader, ()))
        if header != ELECT80_COLUMNS:
            raise DataError(NAME, source, "unexpected CSV header", expected=",".join(ELECT80_COLUMNS),
                            actual=",".join(header), hint="restore the committed file")
        rows = list(reader)
    try:
        fips = np.array([r[0] for r in rows])
        vals = np.array([[float(v) for v in r[1:]] for r in rows], dtype=np.float64)
    except (ValueError, IndexError) as e:
        raise DataError(NAME, source, f"malformed CSV row ({e})", hint="restore the committed file") from None
    if vals.shape != (N_COUNTIES, 6):
        raise DataError(NAME, source, "unexpected number of rows or columns",
                        expected=(N_COUNTIES, 6), actual=vals.shape, hint="restore the committed file")
    long, lat, turnout, college, home, income = vals.T
    ratios = np.stack([turnout, college, home, income])
    if not (np.isfinite(vals).all() and (ratios > 0).all()):
        raise DataError(NAME, source, "non-finite or non-positive per-capita values",
                        hint="restore the committed file")
    # exact_log, not np.log: see the module docstring (byte stability)
    x = np.stack([exact_log(college), exact_log(home), exact_log(income), long, lat], axis=1)
    y = exact_log(turnout)
    mean, std = TARGET_MEAN_STD
    got_mean, got_std = mean_std(y)
    if not (math.isclose(got_mean, mean, abs_tol=5e-7) and math.isclose(got_std, std, abs_tol=5e-7)):
        raise DataError(NAME, source, "target statistics differ from the published ones",
                        expected=TARGET_MEAN_STD, actual=(round(got_mean, 6), round(got_std, 6)),
                        hint="restore the committed file")
    return {"x": x, "y": y, "fips": fips}, {
        "kind": "committed", "source": source,
        "verification": "sha256 of the committed CSV (see data/raw/PROVENANCE.md)",
        "files": {path.name: {"sha256": sha256_file(path), "size": path.stat().st_size,
                              "downloaded": False}},
        "feature_names": list(STAND_IN_FEATURES), "target_name": "ln_pc_turnout = ln(VOTES/POP)",
        "substitutions": [SUBSTITUTION_NOTE],
    }


def _elect80_path() -> Path:
    root = repo_root()
    return (root if root is not None else Path.cwd()) / ELECT80_PATH


def sources(origin: str, cache: Path, *, timeout: float = 60.0) -> list[tuple[str, Callable]]:
    """Ordered ``(label, thunk)`` candidates for ``origin`` in ``auto|canonical|registry``."""
    canonical = [(LIBSVM_URL, lambda: _from_libsvm(cache, timeout))]
    registry = [(ELECT80_SOURCE, lambda: arrays_from_elect80(_elect80_path()))]
    return {"auto": canonical + registry, "canonical": canonical, "registry": registry}[origin]


def describe(arrays: dict) -> dict:
    """Dataset-specific metadata: size, feature count, target statistics."""
    y = arrays["y"]
    mean, std = mean_std(y)
    return {
        "split_sizes": {"all": int(y.shape[0])},
        "n_features": int(arrays["x"].shape[1]),
        "target_mean": round(mean, 6),
        "target_std": round(std, 6),
    }
