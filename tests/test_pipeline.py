"""Pipeline tests: `dvc repro` on the smoke profile in a temporary copy of the repository.

Checks that the pipeline runs end to end, that a second `dvc repro` is a no-op,
that a forced rerun rewrites byte-identical figures, and that the notebook runner
refuses unknown parameters.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from helpers import copy_checkout

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SMOKE_TARGETS = ["paper001_quadratic_figures"]


def _env(tmp: Path) -> dict:
    env = dict(os.environ)
    env.update(DVC_NO_ANALYTICS="1", DVC_SITE_CACHE_DIR=str(tmp / ".dvc" / "tmp" / "site-cache"),
               PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", MPLBACKEND="Agg",
               GIT_AUTHOR_NAME="ci", GIT_AUTHOR_EMAIL="ci@localhost",
               GIT_COMMITTER_NAME="ci", GIT_COMMITTER_EMAIL="ci@localhost")
    return env


def _copy_repo(dst: Path) -> None:
    copy_checkout(dst)
    shutil.copy2(ROOT / "params-smoke.yaml", dst / "params.yaml")
    for other in ROOT.glob("params-*.yaml"):       # e.g. params-cpu.yaml: every stage runs smoke here
        if other.name != "params-smoke.yaml":
            shutil.copy2(ROOT / "params-smoke.yaml", dst / other.name)


def _run(cmd, cwd, env, timeout=900):
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, f"{' '.join(cmd)} failed:\n{res.stdout[-4000:]}\n{res.stderr[-4000:]}"
    return res.stdout + res.stderr


def _digest(paths):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


@pytest.fixture(scope="module")
def smoke_repo(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("repo")
    _copy_repo(tmp)
    env = _env(tmp)
    _run(["git", "init", "-q"], tmp, env)
    _run([str(BIN / "dvc"), "repro", *SMOKE_TARGETS], tmp, env)
    return tmp, env


@pytest.mark.slow
def test_repro_builds_figures_and_second_repro_is_noop(smoke_repo):
    tmp, env = smoke_repo
    figs = sorted((tmp / "figures" / "paper001").glob("*"))
    assert {p.name for p in figs} >= {"aid_quadratic_vs_kappa_and_K.png", "aid_quadratic_vs_kappa_and_K.pdf",
                                      "itd_quadratic_bounds_vs_kappa.png", "itd_quadratic_bounds_vs_kappa.pdf"}
    out = _run([str(BIN / "dvc"), "repro", *SMOKE_TARGETS], tmp, env)
    assert "didn't change, skipping" in out and "Running stage" not in out, out
    status = _run([str(BIN / "dvc"), "status", "--with-deps", *SMOKE_TARGETS], tmp, env)
    assert "up to date" in status, status
    summary = (tmp / "data" / "results" / "paper001" / "quadratic_summary.csv").read_text()
    assert ",smoke" in summary  # the smoke profile's parameters reached the notebook


@pytest.mark.slow
def test_forced_rerun_gives_byte_identical_figures_and_results(smoke_repo):
    tmp, env = smoke_repo
    watched = sorted((tmp / "figures" / "paper001").glob("*")) + [
        tmp / "data" / "results" / "paper001" / "quadratic_bounds.csv"]
    before = _digest(watched)
    _run([str(BIN / "dvc"), "repro", "-f", "paper001_quadratic_figures", "--single-item"], tmp, env)
    assert _digest(watched) == before


@pytest.mark.slow
def test_verify_passes_on_a_rerun_and_fails_on_a_moved_number(smoke_repo):
    """`make verify` after a forced smoke rerun: same numbers -> exit 0; a moved number -> exit 1."""
    tmp, env = smoke_repo
    _run(["git", "add", "-A"], tmp, env)
    _run(["git", "commit", "-qm", "smoke results", "--no-verify"], tmp, env)
    _run([str(BIN / "dvc"), "repro", "-f", *SMOKE_TARGETS], tmp, env)
    ok = subprocess.run([sys.executable, "-m", "bilevel.repro", "verify"], cwd=tmp, env=env,
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    report = (tmp / "build" / "reproduction-report.md").read_text()
    assert "**REPRODUCED**" in report and "paper001/quadratic_summary.csv | final_grad_norm_sq | 0 |" in report
    path = tmp / "data" / "results" / "paper001" / "quadratic_summary.csv"
    table = pd.read_csv(path)
    table.loc[0, "final_grad_norm_sq"] *= 1 + 1e-9
    table.to_csv(path, index=False, float_format="%.17g")
    bad = subprocess.run([sys.executable, "-m", "bilevel.repro", "verify"], cwd=tmp, env=env,
                         capture_output=True, text=True)
    assert bad.returncode == 1 and "MOVED: paper001/quadratic_summary.csv final_grad_norm_sq" in bad.stdout
    _run(["git", "checkout", "--", "data/results"], tmp, env)


def test_notebook_runner_refuses_unknown_parameter(tmp_path):
    nb = ROOT / "notebooks" / "paper001" / "01_quadratic_runs.ipynb"
    res = subprocess.run([sys.executable, "-m", "bilevel.notebook", str(nb), "-o", str(tmp_path / "o.ipynb"),
                          "-p", "kapas", "[2.0]"], capture_output=True, text=True, env=_env(tmp_path))
    assert res.returncode == 2
    assert "unknown parameter(s) ['kapas']" in res.stderr and "kappas" in res.stderr
    assert not (tmp_path / "o.ipynb").exists()


def test_params_yaml_sections_match_notebook_parameters():
    """Every section a stage passes is a valid profile section of its notebook, in the paper and smoke
    profile files and in the stage's own --params-file (params-cpu.yaml for paper 003's MNIST stages)."""
    import yaml

    from bilevel.notebook import _section_overrides, check_parameters, declared_parameters
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    checked = expected = 0
    for name, stage in stages.items():
        cmd = stage["cmd"]
        if "bilevel.notebook" not in cmd:
            continue
        parts = cmd.split()
        own = parts[parts.index("--params-file") + 1]
        files = sorted({"params.yaml", "params-smoke.yaml", own})
        expected += len(files)
        for profile_path in files:
            params = yaml.safe_load((ROOT / profile_path).read_text())
            nb = ROOT / parts[parts.index("bilevel.notebook") + 1]
            assert {"profile", "section", "overrides"} <= set(declared_parameters(nb)), nb
            sec = parts[parts.index("--section") + 1]
            assert sec in params, f"{profile_path} lacks section {sec} used by stage {name}"
            profile, overrides = _section_overrides(ROOT / profile_path, sec, ROOT)
            assert overrides == {}, (profile_path, sec, overrides)   # each file is its profile's file
            values = {k: v for k, v in params[sec].items() if k != "profile"}
            check_parameters(nb, {"profile": profile, "section": sec, "overrides": values})
            checked += 1
    assert checked == expected
