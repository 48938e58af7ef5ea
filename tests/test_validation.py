"""Declarative hyperparameter validation (bilevel._validate.hyper / validate, issue #13): every
solver field carries a symbol-and-constraint declaration, one function checks them for every
solver, and each violation's message names the field, the value, the constraint and the fix."""

from __future__ import annotations

import ast
import dataclasses
import pathlib
import re

import pytest

import bilevel as bl
from bilevel import _validate as V

from test_outer import OTHERS

OK = {**OTHERS,
      "aid": dict(inner_lr=0.1, linsys_lr=0.1, outer_lr=0.1),
      "itd": dict(inner_lr=0.1, outer_lr=0.1)}

#: a value violating each constraint (by its short name; optional(c) shares c's bad value)
BAD = {"step": -1.0, "> 0": 0.0, ">= 0": -0.5, "int >= 1": 0, "int >= 0": -1, "in [0, 1)": 1.0,
       "in [0, 1]": 1.5, "bool": "yes", "betas": (1.0, 0.9), ">= 2": 1.5}


def _bad_value(c: V.Constraint):
    name = c.name.removeprefix("None or ")
    return "no-such-option" if name.startswith("in {") else BAD[name]


def _declared():
    for name, cls in sorted(bl.solvers.REGISTRY.items()):
        for f in dataclasses.fields(cls):
            yield name, cls, f


def test_every_solver_field_declares_a_constraint():
    missing = [f"{cls.__name__}.{f.name}" for _, cls, f in _declared() if f.metadata.get("check") is None]
    assert missing == []
    assert set(OK) == set(bl.solvers.REGISTRY)


@pytest.mark.parametrize("name,field", [(n, f.name) for n, _, f in _declared()])
def test_each_violation_names_field_value_constraint_and_fix(name, field):
    cls = bl.solvers.REGISTRY[name]
    f = {g.name: g for g in dataclasses.fields(cls)}[field]
    c = f.metadata["check"]
    bad = _bad_value(c)
    with pytest.raises(V.HyperparameterError) as e:
        cls(**{**OK[name], field: bad})
    msg = str(e.value)
    assert isinstance(e.value, ValueError)
    assert msg.startswith(f"{cls.__name__}: {field}")
    if f.metadata["symbol"]:
        assert f"({f.metadata['symbol']})" in msg
    assert repr(bad) in msg and f"'{c.name}'" in msg and c.fix in msg


def test_validation_happens_in_one_place():
    """No solver class writes its own __post_init__ or passes its class name as a string to a check
    (plain functions such as ``epoch_schedule`` keep their argument checks)."""
    root = pathlib.Path(bl.__file__).parent / "solvers"
    solvers = {c.__name__ for c in bl.solvers.REGISTRY.values()}
    for path in root.glob("*.py"):
        tree = ast.parse(path.read_text())
        classes = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name in solvers]
        for c in classes:
            for node in ast.walk(c):
                if isinstance(node, ast.FunctionDef):
                    assert node.name != "__post_init__", f"{c.name} defines __post_init__"
                if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                        and node.args[0].value == c.name:
                    raise AssertionError(f"{path.name}:{node.lineno}: {c.name} checks a field by hand")


def test_betas_are_normalized_and_optional_lets_none_through():
    s = bl.solvers.SOBA(**OK["soba"], adam_betas=[0.5, 0.75])
    assert s.adam_betas == (0.5, 0.75)
    assert bl.solvers.F2SA(**OK["f2sa"], batch_size=None).batch_size is None
    with pytest.raises(ValueError, match=r"batch_size = 0 violates 'None or int >= 1'"):
        bl.solvers.F2SA(**OK["f2sa"], batch_size=0)


def test_cross_field_rules_still_apply():
    with pytest.raises(ValueError, match=r"linsys_lr \(eta\) = None .*linsys='cg'"):
        bl.solvers.AID(inner_lr=0.1, outer_lr=0.1, linsys="gd")
    bl.solvers.AID(inner_lr=0.1, outer_lr=0.1, linsys="cg")
    with pytest.raises(ValueError, match=r"neumann_steps \(Q\) = 0 .*neumann='sum'"):
        bl.solvers.TTSA(**OK["ttsa"], neumann_steps=0)
    bl.solvers.TTSA(**OK["ttsa"], neumann_steps=0, neumann="sum")
    with pytest.raises(ValueError, match="storm_weight"):
        bl.solvers.SUSTAIN(**OK["sustain"], storm_weight=0.0)
    with pytest.raises(ValueError, match="epoch_length"):
        bl.solvers.UniBiO(**{**OK["unibio"], "inner_steps": 2})


# -- the constraints of experiment configs live beside the solvers' ----------------------------

@pytest.mark.parametrize("c, good, bad", [
    (V.REAL, [0, -1.5, 10 ** 400], [True, float("nan"), float("inf"), "1", None]),
    (V.NAME, ["auto", "url"], ["", 1, None]),
    (V.INTS, [[0, -1], (2,)], [[], [1.0], [True], 3, "12"]),
    (V.NONEMPTY, [[1], ("a",)], [[], "ab", 3]),
    (V.list_of(V.NONNEG), [[0.0, 0.5]], [[], [-1.0], 0.5, [None]]),
    (V.list_of(V.one_of(("a", "b")), nonempty=False), [[], ["a", "b"]], [["c"], "ab"]),
])
def test_config_constraints_accept_and_refuse(c, good, bad):
    @dataclasses.dataclass(frozen=True)
    class Demo:
        v: object = V.hyper(None, "v", c)

        def __post_init__(self):
            V.validate(self)
    for g in good:
        Demo(g)
    for b in bad:
        with pytest.raises(V.HyperparameterError, match=rf"Demo: v \(v\) = .* violates '{re.escape(c.name)}': "
                                                         rf"must be {re.escape(c.desc)}; {re.escape(c.fix)}\."):
            Demo(b)


def test_notebook_reexports_the_config_constraints_and_keeps_no_copies():
    from bilevel import notebook
    assert (notebook.REAL, notebook.NAME, notebook.INTS, notebook.NONEMPTY) == (V.REAL, V.NAME, V.INTS, V.NONEMPTY)
    assert not hasattr(notebook, "_check") and not hasattr(notebook, "_is_int")


def test_only_violations_become_messages():
    """validate reports a constraint's violations; an error inside a constraint's own code (a bug)
    surfaces as itself instead of as a wrong 'violates' message."""
    def buggy(v):
        return v + "x"            # a TypeError for an int: a bug of the constraint, not a violation

    @dataclasses.dataclass(frozen=True)
    class Demo:
        v: object = V.hyper(None, "", V.Constraint("buggy", "anything", "nothing to fix", buggy))

        def __post_init__(self):
            V.validate(self)
    with pytest.raises(TypeError) as e:
        Demo(1)
    assert not isinstance(e.value, V.HyperparameterError)
    np = pytest.importorskip("numpy")
    with pytest.raises(V.HyperparameterError, match="violates 'in {'"):
        bl.solvers.AID(inner_lr=0.1, outer_lr=0.1, linsys=np.array(["cg", "gd"]))
