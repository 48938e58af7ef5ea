"""File I/O of the compendium: atomic, deterministic writes of tables and figures.

The library proper does no file I/O; notebooks and pipeline stages call these.
Every writer writes to a temporary file in the target directory and renames it
into place, so an interrupted run never leaves a half-written output that a
later DVC stage would trust.

:func:`reproducible_runtime` pins the numerical runtime (threads, instruction
sets of ATen, MKL and oneDNN) so that a run notebook writes the same numbers
on any x86-64 machine; notebooks call it before their first computation.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pandas as pd

__all__ = ["atomic_path", "save_table", "load_table", "save_json", "save_figure",
           "check_finite", "REPRODUCIBLE_ENV", "reproducible_runtime"]


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


#: Environment of a bitwise-reproducible CPU run. Each library reads its variable once,
#: at its first computation, so export these before Python starts (the Makefile does);
#: :func:`reproducible_runtime` sets any that are missing, which works when it is called
#: before the first tensor operation.
#:
#: * ``ATEN_CPU_CAPABILITY=avx2``: torch's own vectorised kernels (reductions, softmax,
#:   exp/log, elementwise) use the AVX2 code on every machine; by default an AVX-512
#:   machine runs 16-lane kernels and sums in a different order than an AVX2 machine.
#: * ``MKL_CBWR=AVX2,STRICT``: MKL's conditional numerical reproducibility, the AVX2
#:   branch of sgemm/dgemm with deterministic reductions whatever the thread count
#:   (documented for Intel CPUs with AVX2; on AMD CPUs MKL takes its AVX2 path anyway).
#: * ``ONEDNN_MAX_CPU_ISA=AVX2``: the same for oneDNN kernels.
REPRODUCIBLE_ENV = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_CBWR": "AVX2,STRICT",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
}


def reproducible_runtime(threads: int = 1, *, deterministic: bool = True,
                         strict: bool = False) -> dict:
    """Pin threads, instruction sets and deterministic algorithms for a reproducible run.

    Sets every :data:`REPRODUCIBLE_ENV` variable that is not set, then
    ``torch.set_num_threads(threads)`` and
    ``torch.use_deterministic_algorithms(deterministic)`` (with
    ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` when unset, which cuBLAS needs for it),
    and checks what torch actually uses. Call it before the first tensor
    operation; a kernel that already ran has fixed ATen's instruction set.

    Measured on the MNIST re-weighting (paper 001) and regularization (paper
    003) runs on an AVX-512 machine: with this configuration the results are
    bitwise identical with 1 and 2 threads, with MKL restricted to AVX2 and
    with AVX-512 disabled (what an AVX2-only machine runs); without it, the
    AVX-512 and AVX2 kernels already differ by about 1 float32 ulp per step,
    which the training loops amplify (tolerances per result column:
    ``TOLERANCES.md``). ``use_deterministic_algorithms`` changed nothing on the
    CPU (measured) but makes CUDA runs fail loudly on nondeterministic kernels.

    Args:
      threads: intra-op threads for torch (``torch.set_num_threads``); the
        pipeline uses 1 (on 2 shared cores, 2 threads were 10-20x slower).
      deterministic: passed to ``torch.use_deterministic_algorithms``.
      strict: raise instead of warn when the runtime is not the pinned one.

    Returns:
      What is in effect: ``{"threads", "cpu_capability", "deterministic", "torch",
      "env": {variable: value}}`` (suitable for a results table or JSON).

    Raises:
      ValueError: ``threads`` < 1.
      RuntimeError: with ``strict``, a :data:`REPRODUCIBLE_ENV` variable set to
        another value, or ATen not using AVX2 (the CPU lacks it, or a tensor
        operation ran before this call). The message names the fix.

    >>> import torch
    >>> info = reproducible_runtime(threads=1)  # doctest: +SKIP
    >>> info["threads"], info["cpu_capability"]  # doctest: +SKIP
    (1, 'AVX2')
    """
    if int(threads) != threads or threads < 1:
        raise ValueError(f"threads must be a positive integer, got {threads!r}")
    for key, value in REPRODUCIBLE_ENV.items():
        os.environ.setdefault(key, value)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    import torch
    torch.set_num_threads(int(threads))
    torch.use_deterministic_algorithms(bool(deterministic))
    capability = torch.backends.cpu.get_cpu_capability()
    env = {key: os.environ.get(key) for key in REPRODUCIBLE_ENV}
    problems = [f"{key}={env[key]!r} (need {value!r})" for key, value in REPRODUCIBLE_ENV.items()
                if env[key] != value]
    if capability != "AVX2":
        problems.append(f"torch uses the {capability} kernels (need AVX2: the CPU lacks AVX2, or "
                        "a tensor operation ran before reproducible_runtime)")
    if problems:
        msg = ("the numerical runtime is not the pinned one, so results may differ from the "
               "committed ones in the last digits: " + "; ".join(problems) + ". Fix: start Python "
               "with " + " ".join(f"{k}={v}" for k, v in REPRODUCIBLE_ENV.items()) +
               " (make exports them) and call reproducible_runtime() before any tensor operation.")
        if strict:
            raise RuntimeError(msg)
        warnings.warn(msg, RuntimeWarning, stacklevel=2)
    return {"threads": torch.get_num_threads(), "cpu_capability": capability,
            "deterministic": torch.are_deterministic_algorithms_enabled(),
            "torch": torch.__version__, "env": env}
