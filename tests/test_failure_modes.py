"""Failure modes found by probing (issue 12): each must end in a clear error, not a silent answer.

* CG on an inner Hessian that is not positive definite; a NaN/Inf solution of H_yy v = grad_y f;
* a run that blows up while staying finite (growth_limit of bl.run);
* results written at mode 0600 whatever the umask; stale temporary files of killed writes;
* ``python -m bilevel.data prepare --out <unwritable>``; DVC's update check.
"""

from __future__ import annotations

import configparser
import copy
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import bilevel as bl
from bilevel import io, linsolve
from bilevel.data import DataError, _files, prepare
from bilevel.problems import per_coordinate, stack
from bilevel.problems import uniform_convex as uc
from bilevel.problems.quadratic import kappa2d

F64 = torch.float64
ROOT = Path(__file__).resolve().parents[1]


def concave_problem():
    """g is concave in y (H_yy = -I): there is no y*(x); an implicit hypergradient is meaningless."""
    return bl.Problem(f=lambda x, y: ((y - 1) ** 2).sum(), g=lambda x, y: -0.5 * (y ** 2).sum() + (x * y).sum(),
                      x0=torch.zeros(2, dtype=F64), y0=torch.zeros(2, dtype=F64), name="concave")


def convex_problem(labels=None):
    """g = |y|^2/2 - x.y (H_yy = I); with ``labels``, two stacked copies."""
    p = bl.Problem(f=lambda x, y: ((y - 1) ** 2).sum(), g=lambda x, y: 0.5 * (y ** 2).sum() - (x * y).sum(),
                   x0=torch.zeros(2, dtype=F64), y0=torch.zeros(2, dtype=F64), name="convex")
    return p if labels is None else stack([p, p], labels=labels)


# ============================================================================ 1. CG and H_yy


def test_cg_indefinite_matrix_raises_naming_the_curvature():
    H = torch.diag(torch.tensor([2.0, -1.0], dtype=F64))
    with pytest.raises(bl.LinearSolveError) as ei:
        linsolve.cg(lambda v: H @ v, torch.ones(2, dtype=F64), steps=10)
    e = ei.value
    # p_0 = b = (1, 1): p^T H p = 1; r_1 = (-3, 3), p_1 = (6, 12): p^T H p = 72 - 144 = -72
    assert (e.iteration, e.curvature, e.block) == (1, -72.0, None)
    msg = str(e)
    assert "non-positive curvature p^T H p = -72 " in msg and "at iteration 1" in msg
    assert "not positive definite" in msg and "H_yy" in msg and "strongly convex in y" in msg
    assert isinstance(e, bl.BilevelError) and isinstance(e, ArithmeticError)


def test_cg_singular_matrix_raises_at_the_first_iteration():
    with pytest.raises(bl.LinearSolveError) as ei:
        linsolve.cg(lambda v: 0.0 * v, torch.ones(3, dtype=F64), steps=10)
    assert (ei.value.iteration, ei.value.curvature) == (0, 0.0)


def test_cg_ill_conditioned_but_positive_definite_still_solves():
    H = torch.diag(torch.tensor([1.0, 1e-12], dtype=F64))     # kappa = 1e12: the check must not fire
    v = linsolve.cg(lambda u: H @ u, torch.ones(2, dtype=F64), steps=10)
    torch.testing.assert_close(v, torch.tensor([1.0, 1e12], dtype=F64), rtol=1e-10, atol=0)


def test_cg_curvature_check_is_per_block():
    A = torch.tensor([[2.0, 1.0], [1.0, 3.0]], dtype=F64)
    H = torch.block_diag(A, torch.diag(torch.tensor([2.0, -1.0], dtype=F64)))
    seg = bl.Blocks.contiguous(["a", "b"], [0, 0], [2, 2])
    with pytest.raises(bl.LinearSolveError) as ei:
        linsolve.cg(lambda v: H @ v, torch.ones(4, dtype=F64), steps=10, blocks=seg)
    assert (ei.value.iteration, ei.value.block, ei.value.curvature) == (1, "b", -72.0)
    assert "at iteration 1 in block b" in str(ei.value)
    # a converged block stops, a positive definite stack solves exactly as before
    H2 = torch.block_diag(A, torch.diag(torch.tensor([2.0, 5.0], dtype=F64)))
    v = linsolve.cg(lambda u: H2 @ u, torch.ones(4, dtype=F64), steps=10, blocks=seg)
    torch.testing.assert_close(v, torch.linalg.solve(H2, torch.ones(4, dtype=F64)))


def test_implicit_on_concave_g_raises_instead_of_a_silent_answer():
    p = concave_problem()
    with pytest.raises(bl.LinearSolveError, match=r"curvature p\^T H p = -8 .*inner Hessian H_yy"):
        bl.hypergrad.implicit(p, p.x0, p.y0, linsys="cg", steps=10)
    aid = bl.solvers.AID(inner_steps=1, inner_lr=0.1, linsys="cg", linsys_steps=10, outer_lr=0.1)
    with pytest.raises(bl.LinearSolveError) as ei:
        bl.run(aid, p, steps=5)
    assert str(ei.value).startswith("aid, outer iteration k=0: CG met non-positive curvature")
    assert ei.value.iteration == 0 and ei.value.curvature < 0


def test_implicit_nonfinite_solution_names_linsys_lr():
    p = convex_problem()
    with pytest.raises(bl.LinearSolveError) as ei:   # |1 - 1e3|^200 overflows
        bl.hypergrad.implicit(p, p.x0, p.y0, linsys="gd", steps=200, lr=1e3)
    msg = str(ei.value)
    assert msg.startswith("implicit: the solution v of H_yy v = grad_y f is NaN/Inf after 200 steps "
                          "of linsys='gd', linsys_lr=1000.0, from finite x, y and grad_y f")
    assert "0 < linsys_lr < 2/L" in msg and "strongly convex in y" in msg
    v = bl.hypergrad.implicit(p, p.x0, p.y0, linsys="gd", steps=200, lr=1.5)[1]   # |1 - 1.5| < 1
    torch.testing.assert_close(v, torch.full((2,), -2.0, dtype=F64))


def test_implicit_finite_solution_whose_sum_overflows_passes():
    """The hot-path test is ``isfinite(sum(v))``; a finite ``v`` whose sum overflows is not an error."""
    big = torch.full((2,), 1.5e308, dtype=F64)
    p = bl.Problem(f=lambda x, y: big @ y + x @ x, g=lambda x, y: 0.5 * (y @ y) - 1e-300 * (x @ y),
                   x0=torch.zeros(2, dtype=F64), y0=torch.zeros(2, dtype=F64))
    grad, v = bl.hypergrad.implicit(p, p.x0, p.y0, linsys="gd", steps=1, lr=1.0)   # v = b
    assert not torch.isfinite(v.sum()) and torch.equal(v, big) and bool(torch.isfinite(grad).all())


def test_implicit_nonfinite_solution_names_the_block():
    p = convex_problem(labels=["calm", "wild"])
    lr = per_coordinate(p, [0.5, 1e3], "y")
    with pytest.raises(bl.LinearSolveError, match=r"NaN/Inf in block\(s\) \['wild'\] after 200 steps"):
        bl.hypergrad.implicit(p, p.x0, p.y0, linsys="gd", steps=200, lr=lr)


def test_linear_solve_error_pickles():
    e = bl.LinearSolveError("CG met ...", 3, -1.5, 2)
    for e2 in (pickle.loads(pickle.dumps(e)), copy.copy(e)):
        assert type(e2) is bl.LinearSolveError and str(e2) == str(e)
        assert (e2.iteration, e2.curvature, e2.block) == (3, -1.5, 2)


# ============================================================================ 2. growth_limit


def unibio_huge(neumann_lr=0.1):
    return bl.solvers.UniBiO(p=2, outer_lr=1e8, neumann_lr=neumann_lr)


def test_finite_blow_up_is_a_divergence():
    # UniBiO at outer_lr 1e8: grad_norm_sq 0.05 -> 2.5e14 at k = 1, finite (it never overflows)
    with pytest.raises(bl.DivergenceError) as ei:
        bl.run(unibio_huge(), kappa2d(kappa=2.0), steps=100)
    e = ei.value
    assert (e.quantity, e.iteration, e.solver) == ("grad_norm_sq", 1, "unibio")
    value, initial, limit = e.growth
    assert value > 2e14 and initial == pytest.approx(0.05) and limit == 1e12
    assert str(e).startswith("unibio: grad_norm_sq = 2.477e+14 at outer iteration k=1 exceeds "
                             "growth_limit * max(grad_norm_sq at the first evaluated iteration, 1) "
                             "= 1e+12 * max(0.05, 1). The run diverged; reduce the step sizes")
    # the same run without the check: finite throughout, so only growth_limit stops it
    tr = bl.run(unibio_huge(), kappa2d(kappa=2.0), steps=100, growth_limit=None)
    finite = tr[["grad_norm_sq", "inner_err_sq", "phi"]].map(np.isfinite)
    assert tr.grad_norm_sq.max() > 1e14 and bool(finite.all().all())


def test_growth_floor_lets_zero_starts_grow_to_the_limit():
    # inner_err_sq starts at 4e-31 and reaches 2.54 (ratio 6e30): below 10 * max(4e-31, 1)
    tr = bl.run(unibio_huge(1.0), uc.example3(p=2), steps=20, growth_limit=10)
    assert tr.inner_err_sq.iloc[0] < 1e-30 and 2.5 < tr.inner_err_sq.max() < 10
    with pytest.raises(bl.DivergenceError) as ei:
        bl.run(unibio_huge(1.0), uc.example3(p=2), steps=20, growth_limit=2)
    assert (ei.value.quantity, ei.value.iteration) == ("inner_err_sq", 5)


def test_growth_of_the_inner_iterate_without_exact_metrics():
    # no grad_phi / y_star: |y|^2 is tracked; GD on g = |y|^2/2 - x.y with inner_lr 3 doubles y each step
    p = convex_problem()
    p = bl.Problem(f=p.f, g=p.g, x0=torch.ones(2, dtype=F64), y0=p.y0, name="convex")
    itd = bl.solvers.ITD(inner_steps=1, inner_lr=3.0, outer_lr=1e-9)
    with pytest.raises(bl.DivergenceError) as ei:
        bl.run(itd, p, steps=60)
    e = ei.value
    assert e.quantity == "|y|^2" and e.growth[0] > 1e12 * max(e.growth[1], 1)
    assert 15 <= e.iteration <= 25                # |y_k| ~ 2^k: |y|^2 passes 1e12 near k = 20


def test_growth_is_checked_per_block():
    p = stack([kappa2d(kappa=2.0), kappa2d(kappa=2.0)], labels=["calm", "wild"])
    s = bl.solvers.AID(inner_steps=1, inner_lr=5.0, linsys="gd", linsys_steps=1, linsys_lr=5.0,
                       outer_lr=per_coordinate(p, [0.02, 1e6], "x"))
    with pytest.raises(bl.DivergenceError) as ei:
        bl.run(s, p, steps=100)
    assert ei.value.quantity.endswith("(block wild)") and "(block wild) = " in str(ei.value)


def test_growth_check_does_not_change_a_normal_run():
    s = bl.solvers.AID(inner_steps=1, inner_lr=5.0, linsys="gd", linsys_steps=1, linsys_lr=5.0, outer_lr=0.02)
    a = bl.run(s, kappa2d(kappa=2.0), steps=200, eval_every=7)
    b = bl.run(s, kappa2d(kappa=2.0), steps=200, eval_every=7, growth_limit=None)
    pd.testing.assert_frame_equal(a.drop(columns="time_s"), b.drop(columns="time_s"), check_exact=True)


def test_growth_limit_is_validated_and_the_error_pickles():
    s = bl.solvers.AID(inner_steps=1, inner_lr=5.0, linsys="gd", linsys_steps=1, linsys_lr=5.0, outer_lr=0.02)
    with pytest.raises(ValueError, match="growth_limit must be > 1"):
        bl.run(s, kappa2d(kappa=2.0), steps=3, growth_limit=0.5)
    with pytest.raises(TypeError, match="growth_limit"):
        bl.run(s, kappa2d(kappa=2.0), steps=3, growth_limit="1e12")
    e = bl.DivergenceError("|y|^2", 9, "itd", growth=(5e13, 2.0, 1e12))
    e2 = pickle.loads(pickle.dumps(e))
    assert e2.growth == (5e13, 2.0, 1e12) and str(e2) == str(e) and "|y|^2 = 5e+13" in str(e)


# ============================================================================ 3. file modes


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_writes_get_the_umask_mode(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        assert io._umask() == umask
        table = io.save_table(pd.DataFrame({"a": [1.5]}), tmp_path / "t.csv")
        js = io.save_json({"a": 1}, tmp_path / "t.json")
        _files.write_json(tmp_path / "d.json", {"a": 1})
        npz = tmp_path / "d.npz"
        _files.write_npz(npz, {"a": np.arange(3)})
    finally:
        os.umask(old)
    for path in (table, js, tmp_path / "d.json", npz):
        assert path.stat().st_mode & 0o777 == mode, path
    assert _files.atomic_path is io.atomic_path    # one writer for the whole project


# ============================================================================ 4. stale temp files


def _temp(dirpath: Path, stem: str, tag: str, suffix: str = ".csv", age_s: float = 0.0) -> Path:
    p = dirpath / f".{stem}.{tag}.tmp{suffix}"
    p.write_text("half-written")
    if age_s:
        t = time.time() - age_s
        os.utime(p, (t, t))
    return p


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_new_write_sweeps_stale_temps_of_its_own_target_only(tmp_path):
    host, dead, hour = io._HOST, _dead_pid(), io.STALE_TEMP_S
    swept = [_temp(tmp_path, "res", f"{dead}-{host}.abcd_123"),                  # killed here
             _temp(tmp_path, "res", "4242-elsewhere.oldoldol", age_s=hour + 60),   # other host, old
             _temp(tmp_path, "res", "oldoldol", age_s=hour + 60)]                  # older naming, old
    kept = [_temp(tmp_path, "res", f"{os.getpid()}-{host}.abcdefgh", age_s=10 * hour),  # live writer
            _temp(tmp_path, "res", "4242-elsewhere.abcdefgh", age_s=60),                # other host, fresh
            _temp(tmp_path, "res", "abcdefgh", age_s=60),                               # older naming, fresh
            _temp(tmp_path, "other", f"{dead}-{host}.abcdefgh"),                        # another target
            _temp(tmp_path, "res", f"{dead}-{host}.abcdefgh", suffix=".json"),          # another target
            _temp(tmp_path, "res.v2", f"{dead}-{host}.abcdefgh")]                       # another target
    (tmp_path / "res.csv.bak").write_text("mine")
    io.save_table(pd.DataFrame({"a": [1]}), tmp_path / "res.csv")
    left = {p.name for p in tmp_path.iterdir()}
    assert left == {p.name for p in kept} | {"res.csv", "res.csv.bak"}
    assert not any(p.exists() for p in swept)


def test_killed_write_leaves_an_ignored_temp_that_the_next_write_removes(tmp_path):
    out = tmp_path / "curves.csv"
    code = ("import os, sys, bilevel.io as io\n"
            "with io.atomic_path(sys.argv[1]) as tmp:\n"
            "    tmp.write_text('half')\n"
            "    os._exit(9)\n")                        # killed: no cleanup runs
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    assert subprocess.run([sys.executable, "-c", code, str(out)], env=env).returncode == 9
    (stale,) = [p for p in tmp_path.iterdir()]
    assert io._temp_pattern(out).fullmatch(stale.name) and not out.exists()
    # git and DVC ignore such names wherever they appear in the repository
    rel = f"data/results/paper001/{stale.name}"
    assert subprocess.run(["git", "-C", str(ROOT), "check-ignore", "-q", "--no-index", rel]).returncode == 0
    assert ".*.tmp.*" in (ROOT / ".dvcignore").read_text().split()
    io.save_table(pd.DataFrame({"a": [1]}), out)
    assert [p.name for p in tmp_path.iterdir()] == ["curves.csv"]


# ============================================================================ 5. prepare --out


def test_prepare_into_an_unwritable_directory_is_a_data_error(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")        # fails even for root
    out = blocker / "processed"
    env = dict(os.environ, PYTHONPATH=str(ROOT), BILEVEL_DATA_OFFLINE="1")
    r = subprocess.run([sys.executable, "-m", "bilevel.data", "prepare", "space_ga", "--origin", "registry",
                        "--out", str(out), "--cache", str(tmp_path / "cache")],
                       env=env, capture_output=True, text=True)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith(f"error: space_ga: source --out {out}: cannot create or write files there: "
                               f"[Errno 20] Not a directory: '{blocker}'")
    assert "what to do: pass --out a directory you can write to" in r.stderr
    assert "Traceback" not in r.stderr and not list(tmp_path.glob("cache/*"))   # failed before fetching
    with pytest.raises(DataError) as ei:                                          # the same, in-process
        prepare("space_ga", tmp_path / "ok", origin="registry", cache=blocker / "cache")
    assert ei.value.source == f"--cache {blocker / 'cache'}"
    assert isinstance(ei.value.__cause__, NotADirectoryError)


# ============================================================================ 6. DVC config


def test_dvc_does_not_contact_its_update_server():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / ".dvc" / "config")
    assert cfg.get("core", "check_update") == "false"
    assert cfg.get("core", "analytics") == "false"
