"""Bad input raises clear errors naming the offending parameter; divergence raises
bl.DivergenceError naming the iteration and the quantity."""

from __future__ import annotations

import math

import pytest
import torch

import bilevel as bl
from bilevel.problems import quadratic
from bilevel.solvers import AID, ITD

F64 = torch.float64
NAN = float("nan")

AID_OK = dict(inner_steps=2, inner_lr=0.5, linsys="gd", linsys_steps=2, linsys_lr=0.5, outer_lr=0.1)
ITD_OK = dict(inner_steps=2, inner_lr=0.5, outer_lr=0.1, mode="reverse")


def p001():
    return quadratic.kappa2d(2.0)


# -- solver hyperparameters --------------------------------------------------------

BAD_LRS = [-0.1, 0.0, NAN, math.inf, -math.inf, None]


@pytest.mark.parametrize("name", ["inner_lr", "outer_lr", "linsys_lr"])
@pytest.mark.parametrize("value", BAD_LRS, ids=str)
def test_aid_bad_step_sizes(name, value):
    with pytest.raises(ValueError, match=name):
        AID(**{**AID_OK, name: value})


@pytest.mark.parametrize("name", ["inner_lr", "outer_lr"])
@pytest.mark.parametrize("value", BAD_LRS, ids=str)
def test_itd_bad_step_sizes(name, value):
    with pytest.raises(ValueError, match=name):
        ITD(**{**ITD_OK, name: value})


@pytest.mark.parametrize("value", ["0.1", [0.1], True])
def test_non_numeric_step_size(value):
    with pytest.raises((TypeError, ValueError), match="inner_lr"):
        AID(**{**AID_OK, "inner_lr": value})
    with pytest.raises((TypeError, ValueError), match="outer_lr"):
        ITD(**{**ITD_OK, "outer_lr": value})


@pytest.mark.parametrize("bad", [torch.tensor([0.1, 0.0]), torch.tensor([0.1, NAN]),
                                 torch.tensor([0.1, -1.0]), torch.ones(2, 2), torch.tensor(0.1),
                                 torch.tensor([1, 2])], ids=["zero", "nan", "neg", "2d", "0d", "int"])
def test_bad_tensor_step_sizes(bad):
    with pytest.raises(ValueError, match="inner_lr"):
        AID(**{**AID_OK, "inner_lr": bad})
    with pytest.raises(ValueError, match="outer_lr"):
        ITD(**{**ITD_OK, "outer_lr": bad})


@pytest.mark.parametrize("name", ["inner_steps", "linsys_steps"])
@pytest.mark.parametrize("value", [0, -1, 1.5, 2.0, True, "3", None], ids=str)
def test_aid_bad_step_counts(name, value):
    with pytest.raises(ValueError, match=name):
        AID(**{**AID_OK, name: value})


@pytest.mark.parametrize("value", [0, -2, 1.0, None], ids=str)
def test_itd_bad_inner_steps(value):
    with pytest.raises(ValueError, match="inner_steps"):
        ITD(**{**ITD_OK, "inner_steps": value})


@pytest.mark.parametrize("value", ["lu", "CG", "", None])
def test_aid_unknown_linsys(value):
    with pytest.raises(ValueError, match="linsys") as ei:
        AID(**{**AID_OK, "linsys": value})
    for valid in ("gd", "cg", "neumann"):
        assert valid in str(ei.value)


@pytest.mark.parametrize("linsys", ["gd", "neumann"])
def test_aid_linsys_needs_lr(linsys):
    with pytest.raises(ValueError, match="linsys_lr"):
        AID(**{**AID_OK, "linsys": linsys, "linsys_lr": None})
    AID(**{**AID_OK, "linsys": "cg", "linsys_lr": None})   # cg needs none


@pytest.mark.parametrize("value", ["sideways", "Reverse", None, 1])
def test_itd_unknown_mode(value):
    with pytest.raises(ValueError, match="mode") as ei:
        ITD(**{**ITD_OK, "mode": value})
    assert "reverse" in str(ei.value) and "forward" in str(ei.value)


@pytest.mark.parametrize("value", ["yes", 1, 0, None, "True"])
def test_warm_start_must_be_bool(value):
    with pytest.raises(ValueError, match="warm_start"):
        AID(**{**AID_OK, "warm_start": value})
    with pytest.raises(ValueError, match="warm_start"):
        ITD(**{**ITD_OK, "warm_start": value})


def test_missing_required_hyperparameters():
    with pytest.raises(ValueError, match="inner_lr"):
        AID()
    with pytest.raises(ValueError, match="outer_lr"):
        AID(inner_lr=0.1, linsys_lr=0.1)
    with pytest.raises(ValueError, match="inner_lr"):
        ITD()


def test_make_unknown_name_lists_available():
    with pytest.raises(ValueError, match="nope") as ei:
        bl.solvers.make("nope", inner_lr=0.1)
    assert "aid" in str(ei.value) and "itd" in str(ei.value)


def test_make_unknown_hyperparameter_lists_valid():
    with pytest.raises(ValueError, match="lr_inner") as ei:
        bl.solvers.make("aid", lr_inner=0.1, outer_lr=0.1)
    msg = str(ei.value)
    for valid in ("inner_steps", "inner_lr", "linsys", "linsys_steps", "linsys_lr", "outer_lr",
                  "warm_start"):
        assert valid in msg
    with pytest.raises(ValueError, match="linsys") as ei:
        bl.solvers.make("itd", inner_lr=0.1, outer_lr=0.1, linsys="cg")
    assert "mode" in str(ei.value)


def test_make_validates_values():
    with pytest.raises(ValueError, match="inner_steps"):
        bl.solvers.make("itd", inner_lr=0.1, outer_lr=0.1, inner_steps=0)


# -- per-coordinate step shapes -------------------------------------------------------

@pytest.mark.parametrize("name,size", [("inner_lr", 3), ("outer_lr", 5), ("linsys_lr", 1)])
def test_aid_per_coordinate_wrong_length(name, size):
    p = p001()
    s = AID(**{**AID_OK, name: torch.full((size,), 0.1, dtype=F64)})
    with pytest.raises(ValueError, match=name):
        bl.run(s, p, steps=1)


@pytest.mark.parametrize("name", ["inner_lr", "outer_lr"])
def test_itd_per_coordinate_wrong_length(name):
    s = ITD(**{**ITD_OK, name: torch.full((3,), 0.1, dtype=F64)})
    with pytest.raises(ValueError, match=name):
        bl.run(s, p001(), steps=1)


def test_per_coordinate_wrong_dtype():
    s = ITD(**{**ITD_OK, "inner_lr": torch.full((2,), 0.1, dtype=torch.float32)})
    with pytest.raises(ValueError, match="inner_lr"):
        bl.run(s, p001(), steps=1)


def test_per_coordinate_helper_errors():
    grid = quadratic.kappa2d_grid([2.0, 3.0])
    with pytest.raises(ValueError):
        bl.problems.per_coordinate(grid, [1.0], "y")
    with pytest.raises(ValueError):
        bl.problems.per_coordinate(grid, [1.0, 2.0], "z")
    with pytest.raises(ValueError):
        bl.problems.per_coordinate(p001(), [1.0], "x")


# -- Problem construction ---------------------------------------------------------------

def quad_f(x, y):
    return (x * x).sum() + (y * y).sum()


def quad_g(x, y):
    return 0.5 * (y * y).sum() - (x * y).sum()


def z(n=2, **kw):
    return torch.zeros(n, dtype=kw.pop("dtype", F64), **kw)


def test_problem_ok():
    p = bl.Problem(f=quad_f, g=quad_g, x0=z(), y0=z())
    assert p.dim_x == 2 and p.dtype == F64


def test_problem_2d_x0():
    with pytest.raises(ValueError, match="x0"):
        bl.Problem(f=quad_f, g=quad_g, x0=torch.zeros(2, 1, dtype=F64), y0=z())
    with pytest.raises(ValueError, match="y0"):
        bl.Problem(f=quad_f, g=quad_g, x0=z(), y0=torch.zeros(1, 2, dtype=F64))
    with pytest.raises(ValueError, match="x0"):
        bl.Problem(f=quad_f, g=quad_g, x0=torch.tensor(0.0, dtype=F64), y0=z())


def test_problem_int_dtype():
    with pytest.raises(TypeError, match="x0"):
        bl.Problem(f=quad_f, g=quad_g, x0=torch.zeros(2, dtype=torch.int64), y0=z())


def test_problem_not_a_tensor():
    with pytest.raises(TypeError, match="x0"):
        bl.Problem(f=quad_f, g=quad_g, x0=[0.0, 0.0], y0=z())


def test_problem_mismatched_dtype():
    with pytest.raises(TypeError, match="y0"):
        bl.Problem(f=quad_f, g=quad_g, x0=z(), y0=z(dtype=torch.float32))


def test_problem_mismatched_device():
    # the meta device exists on every machine: no GPU needed for the check
    with pytest.raises(ValueError, match="y0"):
        bl.Problem(f=quad_f, g=quad_g, x0=z(), y0=z(device="meta"))


def test_problem_nonfinite_start():
    with pytest.raises(ValueError, match="finite"):
        bl.Problem(f=quad_f, g=quad_g, x0=torch.tensor([0.0, NAN], dtype=F64), y0=z())


def test_problem_f_returns_vector():
    with pytest.raises(ValueError, match="scalar"):
        bl.Problem(f=lambda x, y: x * y, g=quad_g, x0=z(), y0=z())
    with pytest.raises(ValueError, match="Problem.g"):
        bl.Problem(f=quad_f, g=lambda x, y: float((y * y).sum()), x0=z(), y0=z())


def test_problem_f_crashes_on_shapes():
    M = torch.ones(3, 3, dtype=F64)
    with pytest.raises(ValueError, match="Problem.f") as ei:
        bl.Problem(f=lambda x, y: (M @ x).sum(), g=quad_g, x0=z(), y0=z())
    assert "dim 2" in str(ei.value)


def test_problem_not_callable():
    with pytest.raises(TypeError, match="f"):
        bl.Problem(f=1.0, g=quad_g, x0=z(), y0=z())
    with pytest.raises(TypeError, match="grad_phi"):
        bl.Problem(f=quad_f, g=quad_g, x0=z(), y0=z(), grad_phi=3)
    with pytest.raises(TypeError, match="val"):
        bl.Problem(f=quad_f, g=quad_g, x0=z(), y0=z(), metrics={"val": 1})


# -- hypergrad entry points ----------------------------------------------------------

def test_implicit_wrong_x():
    p = p001()
    y = p.y0
    with pytest.raises(ValueError, match="x"):
        bl.hypergrad.implicit(p, z(3), y)
    with pytest.raises(TypeError, match="x"):
        bl.hypergrad.implicit(p, z(dtype=torch.float32), y)
    with pytest.raises(ValueError, match="x"):
        bl.hypergrad.implicit(p, torch.zeros(2, 1, dtype=F64), y)
    with pytest.raises(TypeError, match="x"):
        bl.hypergrad.implicit(p, [0.0, 0.0], y)


def test_implicit_wrong_y_and_v0():
    p = p001()
    with pytest.raises(ValueError, match="y"):
        bl.hypergrad.implicit(p, p.x0, z(5))
    with pytest.raises(ValueError, match="v0"):
        bl.hypergrad.implicit(p, p.x0, p.y0, v0=z(3))
    with pytest.raises(TypeError, match="v0"):
        bl.hypergrad.implicit(p, p.x0, p.y0, v0=z(dtype=torch.float32))


def test_implicit_bad_solver_settings():
    p = p001()
    with pytest.raises(ValueError, match="linsys"):
        bl.hypergrad.implicit(p, p.x0, p.y0, linsys="lu")
    with pytest.raises(ValueError, match="linsys_lr"):
        bl.hypergrad.implicit(p, p.x0, p.y0, linsys="gd", steps=3)
    with pytest.raises(ValueError, match="steps"):
        bl.hypergrad.implicit(p, p.x0, p.y0, linsys="cg", steps=-1)
    with pytest.raises(ValueError, match="linsys_lr"):
        bl.hypergrad.implicit(p, p.x0, p.y0, linsys="gd", steps=3, lr=torch.ones(5, dtype=F64))


def test_unrolled_bad_input():
    p = p001()
    with pytest.raises(ValueError, match="x"):
        bl.hypergrad.unrolled(p, z(4), p.y0, steps=2, lr=1.0)
    with pytest.raises(TypeError, match="x"):
        bl.hypergrad.unrolled(p, z(dtype=torch.float32), p.y0, steps=2, lr=1.0)
    with pytest.raises(ValueError, match="y0"):
        bl.hypergrad.unrolled(p, p.x0, z(1), steps=2, lr=1.0)
    with pytest.raises(ValueError, match="mode"):
        bl.hypergrad.unrolled(p, p.x0, p.y0, steps=2, lr=1.0, mode="backward")
    with pytest.raises(ValueError, match="steps"):
        bl.hypergrad.unrolled(p, p.x0, p.y0, steps=0, lr=1.0)
    for lr in (0.0, -1.0, NAN, None):
        with pytest.raises(ValueError, match="inner_lr"):
            bl.hypergrad.unrolled(p, p.x0, p.y0, steps=2, lr=lr)
    with pytest.raises(ValueError, match="inner_lr"):
        bl.hypergrad.unrolled(p, p.x0, p.y0, steps=2, lr=torch.ones(3, dtype=F64))


# -- run arguments -------------------------------------------------------------------

def test_run_bad_arguments():
    p, s = p001(), AID(**AID_OK)
    with pytest.raises(ValueError, match="steps"):
        bl.run(s, p, steps=-1)
    with pytest.raises(ValueError, match="steps"):
        bl.run(s, p, steps=2.5)
    with pytest.raises(ValueError, match="eval_every"):
        bl.run(s, p, steps=3, eval_every=0)
    with pytest.raises(ValueError, match="seed"):
        bl.run(s, p, steps=3, seed="0")
    with pytest.raises(TypeError, match="solver"):
        bl.run(AID_OK, p, steps=3)
    with pytest.raises(TypeError, match="problem"):
        bl.run(s, (p.f, p.g), steps=3)


# -- divergence ----------------------------------------------------------------------

HUGE = AID(inner_steps=1, inner_lr=5.0, linsys="gd", linsys_steps=1, linsys_lr=5.0, outer_lr=1e6)
NO_GROWTH = {"growth_limit": None}  # these tests exercise the NaN/Inf check (growth: test_failure_modes)


def test_divergence_error_every_step():
    with pytest.raises(bl.DivergenceError) as ei:
        bl.run(HUGE, p001(), steps=200, **NO_GROWTH)
    e = ei.value
    assert isinstance(e, bl.BilevelError) and isinstance(e, FloatingPointError)
    assert isinstance(e.iteration, int) and 0 < e.iteration < 200
    assert e.quantity and e.quantity.startswith("x")
    assert e.solver == "aid"
    msg = str(e)
    assert f"k={e.iteration}" in msg
    assert e.quantity in msg
    assert "outer_lr" in msg           # the hint names the fix
    # x grows by |1 - 1e6 * 0.2| per step: it overflows after ~ 308 / 5.3 = 58 steps
    assert 50 <= e.iteration <= 65


def test_divergence_error_with_eval_every():
    with pytest.raises(bl.DivergenceError) as ei:
        bl.run(HUGE, p001(), steps=200, eval_every=10, **NO_GROWTH)
    e = ei.value
    assert e.iteration % 10 == 0 and e.last_finite == e.iteration - 10
    msg = str(e)
    assert "between" in msg
    assert f"k={e.last_finite}" in msg and f"k={e.iteration}" in msg
    assert e.quantity in msg


def test_divergence_detected_at_final_row():
    # diverges after the last evaluated iteration: caught by the final check at k = steps
    with pytest.raises(bl.DivergenceError) as ei:
        bl.run(HUGE, p001(), steps=65, eval_every=50, **NO_GROWTH)
    e = ei.value
    assert e.iteration == 65 and e.last_finite == 50
    assert "k=50" in str(e) and "k=65" in str(e)


def test_divergence_itd():
    s = ITD(inner_steps=1, inner_lr=5.0, outer_lr=1e100)
    with pytest.raises(bl.DivergenceError) as ei:
        bl.run(s, p001(), steps=20)
    assert ei.value.iteration < 20 and ei.value.solver == "itd"
    assert "k=" in str(ei.value)


def test_divergence_error_direct():
    e = bl.DivergenceError("hypergrad", 7, "aid")
    assert e.iteration == 7 and e.quantity == "hypergrad" and e.last_finite is None
    assert "k=7" in str(e) and "hypergrad" in str(e)
    e = bl.DivergenceError("y", 20, "itd", last_finite=10, hint="try smaller inner_lr")
    assert "between" in str(e) and "k=10" in str(e) and "k=20" in str(e)
    assert str(e).endswith("try smaller inner_lr")


def test_divergence_error_pickles():
    """Sweeps run in worker processes send exceptions back pickled; BaseException pickles
    as type(e)(*e.args) = DivergenceError(message), which misses `iteration`."""
    import copy
    import pickle

    e = bl.DivergenceError("x", 20, "aid", last_finite=10, hint="h")
    for e2 in (pickle.loads(pickle.dumps(e)), copy.copy(e)):
        assert type(e2) is bl.DivergenceError
        assert (e2.quantity, e2.iteration, e2.solver, e2.last_finite) == ("x", 20, "aid", 10)
        assert str(e2) == str(e)
