"""Reproducible numerical runtime: threads and instruction sets pinned for bitwise-stable runs.

Run notebooks call :func:`reproducible_runtime` before their first computation; the
Makefile exports :data:`REPRODUCIBLE_ENV` so that every process of the pipeline starts
pinned. Measurements and the tolerances used when a bitwise comparison is not possible:
``data/results/TOLERANCES.md``.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

__all__ = ["REPRODUCIBLE_ENV", "reproducible_runtime"]


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
#:   (documented for Intel CPUs with AVX2). On AMD CPUs MKL takes its AVX2 path anyway,
#:   but CNR mode also fixes the cache-size-dependent blocking: it changed the bytes of
#:   a 500x256 @ 256x10 sgemm on the project's AMD machine.
#: * ``ONEDNN_MAX_CPU_ISA=AVX2``: the same for oneDNN kernels.
#: * ``OPENBLAS_CORETYPE=Haswell``: numpy's OpenBLAS (``np.polyfit``, ``np.linalg``) uses
#:   its AVX2 kernels; by default it picks SkylakeX kernels on AVX-512 machines, and
#:   ``np.polyfit`` slopes then differ in the last bits (measured). numpy loads OpenBLAS
#:   at import, so only an export before Python starts sets this one.
#:
#: All four need a CPU with AVX2 (x86-64-v3).
REPRODUCIBLE_ENV = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_CBWR": "AVX2,STRICT",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "OPENBLAS_CORETYPE": "Haswell",
}


def _openblas_core() -> str | None:
    """The kernel family numpy's bundled OpenBLAS uses (``None`` when it cannot be asked)."""
    import ctypes
    import glob
    import numpy as np
    libdir = Path(np.__file__).resolve().parent.parent / "numpy.libs"
    for lib in sorted(glob.glob(str(libdir / "*openblas*"))):
        try:
            handle = ctypes.CDLL(lib)  # already loaded by numpy: the same library instance
        except OSError:
            return None
        for name in ("scipy_openblas_get_corename64_", "scipy_openblas_get_corename",
                     "openblas_get_corename64_", "openblas_get_corename"):
            fn = getattr(handle, name, None)
            if fn is not None:
                fn.restype = ctypes.c_char_p
                return fn().decode()
    return None


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
    003) runs on an AVX-512 machine: with this configuration the results were
    bitwise identical with 1 and 2 threads (also at paper size, 3000 steps),
    with MKL restricted to AVX2 and with AVX-512 disabled (what an AVX2-only
    machine runs). Without it, ATen's AVX-512 and AVX2 kernels differ in the
    last float32 bit of losses and means, and after 3000 re-weighting steps by
    one of 500 validation samples in ``val_acc`` (2e-3). Tolerances per result
    column: ``data/results/TOLERANCES.md``. ``use_deterministic_algorithms``
    changed nothing on the CPU (measured) but makes CUDA runs fail loudly on
    nondeterministic kernels.

    Args:
      threads: intra-op threads for torch (``torch.set_num_threads``); the
        pipeline uses 1 (on the 2 shared cores, 2 threads ran up to 20x slower
        under load, with no effect on the pinned results).
      deterministic: passed to ``torch.use_deterministic_algorithms``.
      strict: raise instead of warn when the runtime is not the pinned one.

    Returns:
      What is in effect: ``{"threads", "cpu_capability", "openblas_core",
      "deterministic", "torch", "env": {variable: value}}`` (suitable for a
      results table or JSON).

    Raises:
      ValueError: ``threads`` < 1.
      RuntimeError: with ``strict``, a :data:`REPRODUCIBLE_ENV` variable set to
        another value, or ATen not using AVX2 (the CPU lacks it, or a tensor
        operation ran before this call), or numpy's OpenBLAS not on its Haswell
        kernels. The message names the fix.

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
    openblas = _openblas_core()
    if openblas is not None and openblas.lower() != REPRODUCIBLE_ENV["OPENBLAS_CORETYPE"].lower():
        problems.append(f"numpy's OpenBLAS uses the {openblas} kernels (need Haswell: "
                        "OPENBLAS_CORETYPE must be exported before Python starts)")
    if problems:
        msg = ("the numerical runtime is not the pinned one, so results may differ from the "
               "committed ones (float32 round-off, which long training runs amplify): " + "; ".join(problems) + ". Fix: start Python "
               "with " + " ".join(f"{k}={v}" for k, v in REPRODUCIBLE_ENV.items()) +
               " (make exports them) and call reproducible_runtime() before any tensor operation.")
        if strict:
            raise RuntimeError(msg)
        warnings.warn(msg, RuntimeWarning, stacklevel=2)
    return {"threads": torch.get_num_threads(), "cpu_capability": capability,
            "openblas_core": openblas, "deterministic": torch.are_deterministic_algorithms_enabled(),
            "torch": torch.__version__, "env": env}
