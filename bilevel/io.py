"""File I/O of the compendium: atomic, deterministic writes of tables and figures.

The library proper does no file I/O; notebooks and pipeline stages call these.
Every writer writes to a temporary file in the target directory and renames it
into place, so an interrupted run never leaves a half-written output that a
later DVC stage would trust.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pandas as pd

__all__ = ["atomic_path", "save_table", "load_table", "save_json", "save_figure",
           "check_finite"]


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def check_finite(df: pd.DataFrame, columns, what: str = "results") -> None:
    """Raise ``ValueError`` naming the first row/column with NaN/Inf in ``columns``.

    Used before plotting so that a diverged run is reported, never drawn silently.
    """
    for col in columns:
        if col not in df:
            raise KeyError(f"{what}: missing column {col!r}; have {list(df.columns)}.")
        bad = ~df[col].map(lambda v: isinstance(v, (int, float)) and math.isfinite(v))
        if bad.any():
            row = df[bad].iloc[0]
            raise ValueError(f"{what}: column {col!r} is NaN/Inf at row {row.to_dict()}; "
                             "a run diverged or a metric is undefined there.")


def save_table(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write a tidy table as CSV (float repr round-trips exactly), atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, float_format="%.17g", lineterminator="\n")
    return path


def load_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a table written by :func:`save_table`."""
    return pd.read_csv(path)


def save_json(obj: Any, path: str | os.PathLike) -> Path:
    """Write JSON with sorted keys (stable bytes), atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=float) + "\n")
    return path


def save_figure(fig, stem: str | os.PathLike, formats=("png", "pdf"), dpi: int = 150) -> list[Path]:
    """Save ``fig`` as ``<stem>.png`` and ``<stem>.pdf`` with fixed metadata.

    Creation dates and software versions are stripped so that reruns are
    byte-identical.
    """
    stem = Path(stem)
    out = []
    meta = {"png": {"Software": None},
            "pdf": {"Creator": None, "Producer": None, "CreationDate": None, "ModDate": None},
            "svg": {"Date": None, "Creator": None}}
    for fmt in formats:
        path = stem.with_suffix("." + fmt)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight", metadata=meta.get(fmt))
        out.append(path)
    return out


def results_source(results_dir: str | os.PathLike, committed: str | os.PathLike, files=(),
                   verbose: bool = True) -> Path:
    """Where a figure/table notebook reads its inputs: ``results_dir``, or the committed results.

    Returns ``results_dir`` when it holds every name in ``files`` (all or nothing, so one
    figure never mixes two runs); otherwise ``committed`` (the paper-scale results under
    ``data/results/<paper>/`` that git ships), after printing one line saying so when
    ``verbose``. This lets a figure notebook opened on its own in JupyterLab run before its
    runs notebook has written anything. Raises ``FileNotFoundError`` when neither has the files.

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp()); (d / "a.csv").write_text("x\\n1\\n") and None
    >>> results_source(d / "missing", d, ["a.csv"])  # doctest: +ELLIPSIS
    no results in .../missing (missing: a.csv); reading the committed results in ...
    PosixPath(...)
    """
    results_dir, committed = Path(results_dir), Path(committed)
    files = list(files)
    missing = [f for f in files if not (results_dir / f).is_file()] if files else \
        ([] if results_dir.is_dir() else ["the folder"])
    if not missing:
        return results_dir
    absent = [f for f in files if not (committed / f).is_file()]
    if absent or not committed.is_dir():
        raise FileNotFoundError(f"neither {results_dir} nor the committed {committed} has {absent or files}; "
                                "run the runs notebook (or `dvc repro`) first.")
    if verbose:
        print(f"no results in {results_dir} (missing: {', '.join(missing)}); reading the committed "
              f"results in {committed}")
    return committed
