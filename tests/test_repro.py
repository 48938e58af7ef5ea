"""Reproduction tooling: derived stage dependencies and `verify` (which must be able to fail)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from bilevel import repro

ROOT = Path(__file__).resolve().parents[1]


def test_every_stage_lists_every_project_module_it_imports():
    missing = repro.missing_deps(ROOT / "dvc.yaml")
    assert missing == {}, ("stages miss modules they import (fix: python -m bilevel.repro deps "
                           f"--write): {missing}")


def _pkg(tmp_path: Path) -> Path:
    (tmp_path / "bilevel" / "sub").mkdir(parents=True)
    (tmp_path / "bilevel" / "__init__.py").write_text("from . import core\n")
    (tmp_path / "bilevel" / "core.py").write_text("import numpy\n")
    (tmp_path / "bilevel" / "sub" / "__init__.py").write_text("")
    (tmp_path / "bilevel" / "sub" / "a.py").write_text(
        "from ..core import x\n\ndef f():\n    from . import b\n")
    (tmp_path / "bilevel" / "sub" / "b.py").write_text("from bilevel.lonely import y\n")
    (tmp_path / "bilevel" / "lonely.py").write_text("")
    (tmp_path / "bilevel" / "unused.py").write_text("")
    return tmp_path


def test_import_closure_follows_relative_lazy_and_package_imports(tmp_path):
    root = _pkg(tmp_path)
    got = {str(p) for p in repro.import_closure({"bilevel.sub.a"}, root)}
    assert got == {"bilevel/__init__.py", "bilevel/core.py", "bilevel/sub/__init__.py",
                   "bilevel/sub/a.py", "bilevel/sub/b.py", "bilevel/lonely.py"}


def test_missing_dep_is_reported(tmp_path):
    root = _pkg(tmp_path)
    nb = {"cells": [{"cell_type": "code", "source": ["%matplotlib inline\n", "from bilevel.sub import a\n"]}]}
    (root / "nb.ipynb").write_text(__import__("json").dumps(nb))
    (root / "dvc.yaml").write_text(
        "stages:\n  s:\n    cmd: python -m bilevel.notebook nb.ipynb -o out.ipynb\n"
        "    deps:\n      - nb.ipynb\n      - bilevel/sub\n")
    miss = repro.missing_deps(root / "dvc.yaml")
    assert miss == {"s": ["bilevel/__init__.py", "bilevel/core.py", "bilevel/lonely.py"]}
    repro.write_deps(root / "dvc.yaml")
    assert repro.missing_deps(root / "dvc.yaml") == {}


def _tables(**new_cols):
    old = pd.DataFrame({"k": [0, 1, 2], "loss": [1.0, 0.5, float("nan")], "time_s": [0.1, 0.2, 0.3],
                        "method": ["AID", "AID", "ITD"], "reason": [None, "smoke", None]})
    new = old.copy()
    for c, v in new_cols.items():
        new[c] = v
    return old, new


def _verdicts(rows):
    return {r["column"]: r["verdict"] for r in rows}


def test_identical_tables_pass_and_wall_time_is_not_compared():
    old, new = _tables(time_s=[9.0, 9.0, 9.0])
    v = _verdicts(repro.compare_tables(old, new, "p/x.csv", repro.Tolerances()))
    assert v == {"k": "ok", "loss": "ok", "time_s": "wall time (not compared)", "method": "ok", "reason": "ok"}


@pytest.mark.parametrize("col,val", [("loss", [1.0, 0.5000001, float("nan")]),
                                     ("loss", [1.0, 0.5, 3.0]),          # NaN pattern changed
                                     ("method", ["AID", "ITD", "ITD"])])
def test_moved_numbers_and_labels_fail(col, val):
    old, new = _tables(**{col: val})
    assert _verdicts(repro.compare_tables(old, new, "p/x.csv", repro.Tolerances()))[col] == "MOVED"


def test_documented_tolerance_is_applied_per_file_and_column():
    old, new = _tables(loss=[1.0, 0.5000001, float("nan")])
    tol = repro.Tolerances(files=(("p/*.csv", {"loss": {"rtol": 1e-6, "why": "measured"}}),))
    assert _verdicts(repro.compare_tables(old, new, "p/x.csv", tol))["loss"] == "ok"
    assert _verdicts(repro.compare_tables(old, new, "q/x.csv", tol))["loss"] == "MOVED"


def test_shape_changes_fail():
    old, _ = _tables()
    assert repro.compare_tables(old, old.iloc[:2], "x.csv", repro.Tolerances())[0]["verdict"] == "MOVED"
    assert repro.compare_tables(old, old.drop(columns="loss"), "x.csv",
                                repro.Tolerances())[0]["verdict"] == "MOVED"


def _git(cwd, *args):
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@localhost",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@localhost")
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, env=env)


def test_verify_cli_fails_on_a_moved_number_or_verdict(tmp_path):
    res = tmp_path / "data" / "results" / "p"
    res.mkdir(parents=True)
    old, _ = _tables()
    old.to_csv(res / "t.csv", index=False)
    pd.DataFrame({"id": ["c1"], "verdict": ["holds"]}).to_csv(res / "s_claims.csv", index=False)
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-qm", "results")

    def run():
        return subprocess.run([sys.executable, "-m", "bilevel.repro", "verify"], cwd=tmp_path,
                              capture_output=True, text=True,
                              env=dict(os.environ, PYTHONPATH=str(ROOT)))

    ok = run()
    assert ok.returncode == 0, ok.stdout + ok.stderr
    report = (tmp_path / "build" / "reproduction-report.md").read_text()
    assert "**REPRODUCED**" in report and "| p/t.csv | time_s | 0 | - | wall time (not compared) |" in report
    pd.DataFrame({"id": ["c1"], "verdict": ["does not hold"]}).to_csv(res / "s_claims.csv", index=False)
    bad = run()
    assert bad.returncode == 1 and "MOVED: p/s_claims.csv c1: holds -> does not hold" in bad.stdout
    (res / "s_claims.csv").unlink()
    gone = run()
    assert gone.returncode == 1 and "committed but not regenerated" in gone.stdout


def test_wall_time_file_rule_covers_every_column_and_claim_verdicts(tmp_path):
    tol = repro.Tolerances(files=(("p/*_claims.csv", {"*": {"wall_time": True, "why": "equal-time"}}),))
    assert tol.rule("p/s_claims.csv", "verdict")["wall_time"] is True
    assert tol.rule("p/s_claims.csv", "measured")["why"] == "equal-time"
    assert tol.rule("q/s_claims.csv", "verdict")["wall_time"] is False


def test_machine_reads_vendor_and_model_from_cpuinfo():
    text = ("processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\n"
            "model name\t: AMD EPYC 9R14\n\nprocessor\t: 1\nvendor_id\t: GenuineIntel\n")
    m = repro.machine(text)
    assert (m["vendor"], m["model"], m["family"], m["model_number"]) == ("AuthenticAMD", "AMD EPYC 9R14", "25", "17")
    assert {"torch", "numpy", "arch"} <= set(m)


def test_across_vendor_rules_apply_only_across_vendors():
    old = pd.DataFrame({"loss": [1.0, 2.0], "chaos": [0.5, 0.1]})
    new = pd.DataFrame({"loss": [1.0 + 1e-9, 2.0], "chaos": [0.2, 0.3]})
    tol = repro.Tolerances(across_vendors=(("p/*.csv", {"loss": {"rtol": 2e-9, "why": "measured"},
                                                       "chaos": {"machine_dependent": True}}),))
    same = _verdicts(repro.compare_tables(old, new, "p/x.csv", tol))
    assert same == {"loss": "MOVED", "chaos": "MOVED"}            # same vendor: bitwise, as before
    cross = _verdicts(repro.compare_tables(old, new, "p/x.csv", tol, across_vendors=True))
    assert cross["loss"] == "ok" and cross["chaos"].startswith("machine-dependent")
    far = new.assign(loss=[1.0 + 1e-6, 2.0])                       # beyond the measured tolerance
    assert _verdicts(repro.compare_tables(old, far, "p/x.csv", tol, across_vendors=True))["loss"] == "MOVED"


def test_verify_applies_cross_vendor_rules_from_the_committed_machine(tmp_path):
    res = tmp_path / "data" / "results" / "p"
    res.mkdir(parents=True)
    claims = pd.DataFrame({"id": ["c1", "c2"], "verdict": ["holds", "holds"]})
    claims.to_csv(res / "s_claims.csv", index=False)
    (tmp_path / "data" / "results" / "tolerances.yaml").write_text(
        "across_vendors:\n  p/s_claims.csv:\n    verdict: {machine_dependent: true}\n"
        "    'verdict:c1': {machine_dependent: true, why: measured flip}\n")
    other = dict(repro.machine(), vendor="SomeOtherVendor", model="CPU X")
    (tmp_path / "data" / "results" / "machine.json").write_text(json.dumps(other))
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-qm", "results")

    def run(*flags):
        return subprocess.run([sys.executable, "-m", "bilevel.repro", "verify", *flags], cwd=tmp_path,
                              capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))

    claims.assign(verdict=["does not hold", "holds"]).to_csv(res / "s_claims.csv", index=False)
    ok = run()                                                     # c1's flip is machine-dependent
    assert ok.returncode == 0, ok.stdout + ok.stderr
    report = (tmp_path / "build" / "reproduction-report.md").read_text()
    assert "committed results: CPU X (SomeOtherVendor)" in report and "the CPU vendors differ" in report
    assert run("--across-vendors", "no").returncode == 1          # same-vendor rules: a moved verdict
    claims.assign(verdict=["does not hold", "does not hold"]).to_csv(res / "s_claims.csv", index=False)
    bad = run()                                                    # c2 has no such rule
    assert bad.returncode == 1 and "MOVED: p/s_claims.csv c2: holds -> does not hold" in bad.stdout
