"""bilevel.runtime.reproducible_runtime: the pinned runtime gives the same bits whatever the threads.

Each case runs in a fresh interpreter, because the instruction-set variables are read
once per process and the thread count is global.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bilevel.runtime import REPRODUCIBLE_ENV

REPO = Path(__file__).resolve().parents[1]

needs_avx2 = pytest.mark.skipif(
    torch.backends.cpu.get_cpu_capability() not in ("AVX2", "AVX512"),
    reason="the pinned runtime uses torch's AVX2 kernels; this CPU has none")

# A small float32 MLP re-weighting run (the core of notebooks/paper001/04_reweighting):
# numbers only (no timings), hashed.
_RUN = """
import hashlib, json, sys
from bilevel.runtime import reproducible_runtime
info = reproducible_runtime(threads=int(sys.argv[1]), strict=sys.argv[2] == "strict") \\
    if sys.argv[2] != "none" else None
import torch
if info is None:
    torch.set_num_threads(int(sys.argv[1]))
from bilevel.papers.paper001 import experiments as paper001
cfg = paper001.ReweightingConfig(
    steps=20, loop_steps=2, loop_inner_steps=10, inner_lr=5e-2, outer_lr=1e-3, outer_optimizer="adam", n_train=200, n_val=100,
    n_test=100, corruption=0.2, hidden=32, activation="relu", seed=0, eval_every=5, plateau_fraction=0.2,
    plateau_threshold=0.05, plateau_tol=0.1, paper_plateau=0.65, origin="fixture", torch_threads=1)
curves, summary = paper001.reweighting_runs(cfg, methods=("itd1", "aidN"))
h = hashlib.sha256()
for df in (curves, summary):
    num = df[[c for c in df.columns if "time" not in c]]
    h.update(num.to_csv(index=False, float_format="%.17g").encode())
print(json.dumps({"sha": h.hexdigest(), "cap": torch.backends.cpu.get_cpu_capability(),
                  "info": info}))
"""


def _run(threads: int, mode: str, env: dict | None = None, script: str = _RUN) -> dict:
    e = {k: v for k, v in os.environ.items()
         if k not in (*REPRODUCIBLE_ENV, "MKL_ENABLE_INSTRUCTIONS")}
    e.update(env or {})
    e.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # speed only: no busy-waiting threads on shared cores
    e["PYTHONPATH"] = os.pathsep.join([str(REPO), e.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, "-c", script, str(threads), mode], env=e, cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        return {"error": proc.stderr}
    return json.loads(proc.stdout.splitlines()[-1])


@needs_avx2
def test_pinned_runtime_is_bitwise_stable_across_threads_and_mkl_isa():
    one = _run(1, "strict", REPRODUCIBLE_ENV)
    assert "error" not in one, one.get("error")
    assert one["cap"] == "AVX2" and one["info"]["threads"] == 1 and one["info"]["deterministic"]
    assert one["info"]["openblas_core"] in ("Haswell", None)
    assert one["info"]["env"] == REPRODUCIBLE_ENV
    two = _run(2, "strict", REPRODUCIBLE_ENV)
    mkl_avx2 = _run(1, "strict", {**REPRODUCIBLE_ENV, "MKL_ENABLE_INSTRUCTIONS": "AVX2"})
    # the torch/MKL/oneDNN variables are set in-process when missing (a notebook started
    # without make); OPENBLAS_CORETYPE cannot be (numpy is loaded already)
    in_process = _run(1, "strict", {"OPENBLAS_CORETYPE": REPRODUCIBLE_ENV["OPENBLAS_CORETYPE"]})
    for other in (two, mkl_avx2, in_process):
        assert "error" not in other, other.get("error")
        assert other["sha"] == one["sha"], (
            "the pinned runtime does not give the same numbers: "
            f"1 thread {one['sha'][:12]} vs {other['info']['threads']} thread(s), "
            f"env {other['info']['env']}: {other['sha'][:12]}")


@needs_avx2
def test_instruction_set_changes_the_numbers_so_the_pin_matters():
    """Counterfactual: torch's scalar (DEFAULT) and AVX2 kernels give different float32 results
    on this run, so the comparison above can fail and the ATen pin is needed."""
    scalar = _run(1, "none", {"ATEN_CPU_CAPABILITY": "default"})
    avx2 = _run(1, "none", {"ATEN_CPU_CAPABILITY": "avx2"})
    assert (scalar["cap"], avx2["cap"]) == ("DEFAULT", "AVX2")
    assert scalar["sha"] != avx2["sha"]


def test_unpinned_runtime_warns_or_raises_naming_the_fix():
    script = """
import sys, warnings, torch
torch.ones(1000).sum()  # a kernel ran: ATen's instruction set is fixed now
from bilevel.runtime import reproducible_runtime
try:
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        reproducible_runtime(strict=sys.argv[2] == "strict")
    print("WARN:" + str(w[0].message) if w else "OK")
except RuntimeError as e:
    print("RAISE:" + str(e))
"""
    env = {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "AUTO"}
    for mode, want in (("strict", "RAISE:"), ("warn", "WARN:")):
        proc = subprocess.run([sys.executable, "-c", script, "1", mode], cwd=REPO,
                              env={**{k: v for k, v in os.environ.items() if k not in REPRODUCIBLE_ENV},
                                   **env, "PYTHONPATH": str(REPO)},
                              capture_output=True, text=True, timeout=300)
        out = proc.stdout.strip().splitlines()[-1]
        assert out.startswith(want), (proc.stdout, proc.stderr)
        assert "MKL_CBWR='AUTO' (need 'AVX2,STRICT')" in out
        assert "torch uses the DEFAULT kernels" in out
        assert "ATEN_CPU_CAPABILITY=avx2 MKL_CBWR=AVX2,STRICT ONEDNN_MAX_CPU_ISA=AVX2" in out
        assert "OPENBLAS_CORETYPE=Haswell" in out


def test_bad_threads_raise():
    from bilevel.runtime import reproducible_runtime
    for bad in (0, -1, 1.5):
        with pytest.raises(ValueError, match="threads must be a positive integer"):
            reproducible_runtime(threads=bad)
