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
import re
import socket
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

if TYPE_CHECKING:  # pandas is imported where it is used: the data layer imports this module
    import pandas as pd

__all__ = ["atomic_path", "save_table", "load_table", "save_json", "save_figure",
           "check_finite", "STALE_TEMP_S"]

#: age (seconds since the last modification) after which a temporary file of a
#: writer on another host counts as abandoned (see :func:`atomic_path`)
STALE_TEMP_S = 3600.0
_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname()) or "host"


def _umask() -> int:
    """The process umask, read without changing it where ``/proc`` allows (thread-safe)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _temp_pattern(path: Path) -> re.Pattern:
    """Names of ``path``'s temporary files: ``.{stem}.{pid}-{host}.{random}.tmp{suffix}``.

    The ``{pid}-{host}.`` part is optional so that temporary files of older
    versions (``.{stem}.{random}.tmp{suffix}``) are recognised too.
    """
    return re.compile(rf"\.{re.escape(path.stem)}\.(?:(\d+)-([A-Za-z0-9-]+)\.)?[a-z0-9_]+"
                      rf"\.tmp{re.escape(path.suffix)}")


def _pid_alive(pid: int) -> bool:
    if os.name != "posix":
        return True                    # no safe probe: rely on the age rule
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def _sweep_stale_temps(path: Path) -> list[Path]:
    """Delete abandoned temporary files of ``path`` (a killed earlier write); return them.

    Only files named like ``path``'s own temporary files are considered, and one
    is deleted when the process that created it is gone: its PID is no longer
    alive on this host, or (another host, or a name without PID) it was not
    modified for :data:`STALE_TEMP_S` seconds.
    """
    pattern, removed, now = _temp_pattern(path), [], time.time()
    for p in path.parent.iterdir():
        m = pattern.fullmatch(p.name)
        if m is None:
            continue
        pid, host = m.group(1), m.group(2)
        try:
            if pid is not None and host == _HOST:
                stale = not _pid_alive(int(pid))
            else:
                stale = now - p.stat().st_mtime > STALE_TEMP_S
            if stale:
                p.unlink()
                removed.append(p)
        except FileNotFoundError:      # swept by a concurrent writer
            pass
    return removed


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    The one atomic writer of the project (results, figures, notebooks, data).
    The caller writes (and may verify) the temporary file inside the ``with``
    block; if the block raises, the temporary file is deleted and ``path`` is
    left as it was. The file gets the mode of an ordinary new file,
    ``0o666 & ~umask`` (not ``mkstemp``'s ``0o600``). The temporary file is
    ``.{stem}.{pid}-{host}.{random}.tmp{suffix}`` (ignored by git and DVC);
    abandoned ones of the same ``path`` left by a killed writer are deleted
    first (see :func:`_sweep_stale_temps`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _sweep_stale_temps(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.{os.getpid()}-{_HOST}.",
                               suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


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
    import pandas as pd
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
