"""Notebooks as JupyterLab users meet them: profiles, type-checked parameters, inline figures,
figure notebooks that run on their own, the runner's progress lines and refusals."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from bilevel.io import results_source
from bilevel.notebook import (ParameterTypeError, UnknownParameterError, check_parameters, execute,
                              load_params)

ROOT = Path(__file__).resolve().parents[1]
NB = ROOT / "notebooks"


def _env(**extra):
    env = dict(os.environ, DVC_NO_ANALYTICS="1", PYTHONPATH=str(ROOT), MPLBACKEND="Agg")
    env.update(extra)
    return env


# -- profiles and overrides ------------------------------------------------------------------

def test_profile_selects_the_file_and_overrides_are_applied():
    smoke = load_params("paper001_quadratic", "smoke", root=ROOT)
    paper = load_params("paper001_quadratic", "paper", root=ROOT)
    assert (smoke.steps, paper.steps) == (1000, 10000)
    assert len(paper.kappas) > len(smoke.kappas)
    p = load_params("paper001_quadratic", "paper", {"steps": 20, "kappas": [2, 5]}, root=ROOT)
    assert p.steps == 20 and p.kappas == [2.0, 5.0] and all(isinstance(k, float) for k in p.kappas)
    assert not hasattr(p, "profile")


@pytest.mark.parametrize("name, value, expected", [
    ("kappas", "234", "list[float]"),          # papermill alone would iterate over '2', '3', '4'
    ("kappas", [2.0, "3"], "list[float]"),
    ("steps", 1000.5, "int"),
    ("steps", True, "int"),
    ("aid_beta_scale", "0.3", "float"),
])
def test_wrong_types_are_refused_naming_the_parameter(name, value, expected):
    with pytest.raises(ParameterTypeError) as err:
        load_params("paper001_quadratic", "smoke", {name: value}, root=ROOT)
    msg = str(err.value)
    assert f"parameter {name!r}" in msg and f"expects {expected}" in msg and repr(value) in msg


def test_bool_and_str_parameters_are_checked():
    with pytest.raises(ParameterTypeError, match="'theorem_c5' expects bool"):
        load_params("paper002_example3", "smoke", {"theorem_c5": 1}, root=ROOT)
    with pytest.raises(ParameterTypeError, match="'origin' expects str"):
        load_params("paper001_reweighting", "smoke", {"origin": 3}, root=ROOT)
    assert load_params("paper002_example3", "smoke", {"theorem_c5": False}, root=ROOT).theorem_c5 is False


def test_unknown_names_and_profiles_are_refused():
    with pytest.raises(UnknownParameterError, match=r"unknown parameter\(s\) \['kapas'\].*'kappas'"):
        load_params("paper001_quadratic", "smoke", {"kapas": [2.0]}, root=ROOT)
    with pytest.raises(FileNotFoundError, match="params-gpu.yaml.*known profiles: \\['cpu', 'paper', 'smoke'\\]"):
        load_params("paper001_quadratic", "gpu", root=ROOT)
    with pytest.raises(KeyError, match="no section 'paper009'"):
        load_params("paper009", "smoke", root=ROOT)


def test_every_notebook_loads_its_section_in_both_profiles():
    import papermill as pm
    for path in sorted(NB.glob("*/*.ipynb")):
        declared = pm.inspect_notebook(str(path))
        assert {"profile", "section", "overrides", "results_dir"} <= set(declared), path
        # the values themselves live only in the params files (smoke ones in params-smoke.yaml)
        assert set(declared) <= {"profile", "section", "overrides", "results_dir", "figures_dir"}, path
        assert declared["profile"]["default"] == '"smoke"', path
        section = declared["section"]["default"].strip('"')
        for profile in ("smoke", "paper"):
            load_params(section, profile, root=ROOT)
        src = path.read_text()
        assert "load_params(section, profile, overrides" in src, path


def test_a_sub_section_key_is_overridden_alone():
    """``"ba.steps"`` and ``{"ba": {"steps": ...}}`` replace one key of a sub-section and keep the rest."""
    from bilevel.papers.paper004.experiments import TutorialConfig
    base = load_params("paper004_tutorial", "smoke", root=ROOT, config=TutorialConfig)
    for ov in ({"ba.steps": 7}, {"ba": {"steps": 7}}, {"ba.ba.inner_steps": 3}):
        cfg = load_params("paper004_tutorial", "smoke", ov, root=ROOT, config=TutorialConfig)
        if "ba.ba.inner_steps" in ov:
            assert cfg.ba.ba["inner_steps"] == 3 and cfg.ba.steps == base.ba.steps
            assert {k: v for k, v in cfg.ba.ba.items() if k != "inner_steps"} == \
                {k: v for k, v in base.ba.ba.items() if k != "inner_steps"}
        else:
            assert cfg.ba.steps == 7 and cfg.ba.ba == base.ba.ba and cfg.tracking == base.tracking
    with pytest.raises(UnknownParameterError, match=r"paper004_tutorial\.ba: unknown parameter 'stepz'"):
        load_params("paper004_tutorial", "smoke", {"ba.stepz": 7}, root=ROOT)
    with pytest.raises(ParameterTypeError, match=r"paper004_tutorial\.ba: parameter 'steps' expects int"):
        load_params("paper004_tutorial", "smoke", {"ba": {"steps": "7"}}, root=ROOT)
    with pytest.raises(UnknownParameterError, match="has no sub-keys"):
        load_params("paper001_quadratic", "smoke", {"steps.x": 7}, root=ROOT)
    nb = NB / "paper004" / "01_tutorial.ipynb"
    assert check_parameters(nb, {"ba.steps": 5})["overrides"] == {"ba.steps": 5}


def test_runner_folds_section_keys_into_overrides_and_checks_them():
    nb = NB / "paper001" / "01_quadratic_runs.ipynb"
    injected = check_parameters(nb, {"steps": 50, "results_dir": "x"})
    assert injected == {"results_dir": "x", "overrides": {"steps": 50}}
    with pytest.raises(ParameterTypeError, match="'kappas'"):
        check_parameters(nb, {"kappas": "234"})


def test_cli_refuses_a_string_for_a_list_and_writes_nothing(tmp_path):
    nb = NB / "paper001" / "01_quadratic_runs.ipynb"
    out = tmp_path / "o.ipynb"
    res = subprocess.run([sys.executable, "-m", "bilevel.notebook", str(nb), "-o", str(out), "-p", "kappas", "'234'"],
                         capture_output=True, text=True, env=_env(), cwd=ROOT)
    assert res.returncode == 2, res.stderr
    assert "'kappas' expects list[float]" in res.stderr and "got str '234'" in res.stderr
    assert not out.exists()


def test_cli_refuses_to_write_over_the_source(tmp_path, monkeypatch):
    nb = NB / "paper001" / "01_quadratic_runs.ipynb"
    before = nb.read_bytes()
    res = subprocess.run([sys.executable, "-m", "bilevel.notebook", str(nb.relative_to(ROOT)), "-o", str(nb)],
                         capture_output=True, text=True, env=_env(), cwd=ROOT)
    assert res.returncode == 2 and "is the source notebook" in res.stderr, res.stderr
    monkeypatch.chdir(ROOT)
    for target in (nb.relative_to(ROOT), Path("notebooks/paper001/../paper001") / nb.name):
        with pytest.raises(ValueError, match="is the source notebook"):
            execute(nb.relative_to(ROOT), target)
    assert nb.read_bytes() == before


# -- figure notebooks on their own ---------------------------------------------------------

def test_results_source_prefers_complete_results_and_falls_back_whole(tmp_path, capsys):
    run, committed = tmp_path / "run", tmp_path / "committed"
    committed.mkdir()
    for name in ("a.csv", "b.csv"):
        (committed / name).write_text("x\n1\n")
    assert results_source(run, committed, ["a.csv", "b.csv"]) == committed
    assert "no results in" in capsys.readouterr().out
    run.mkdir()
    (run / "a.csv").write_text("x\n2\n")
    assert results_source(run, committed, ["a.csv", "b.csv"]) == committed   # never half of each
    (run / "b.csv").write_text("x\n2\n")
    assert results_source(run, committed, ["a.csv", "b.csv"]) == run
    assert capsys.readouterr().out.count("\n") == 1                         # one line, only on fallback
    with pytest.raises(FileNotFoundError, match="c.csv"):
        results_source(tmp_path / "none", committed, ["c.csv"])


@pytest.mark.slow
def test_figure_notebook_runs_alone_and_embeds_its_figures(tmp_path, monkeypatch):
    """02_quadratic_figures with no runs output: committed results, figures inline although MPLBACKEND=Agg."""
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = NB / "paper001" / "02_quadratic_figures.ipynb"
    out = execute(nb, tmp_path / "02.ipynb", {"results_dir": str(tmp_path / "no-runs"),
                                              "figures_dir": str(tmp_path / "figures")},
                  progress_interval=0)
    executed = nbformat.read(out, as_version=4)
    code = [c for c in executed.cells if c.cell_type == "code"]
    images = [o for c in code for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 2, "the two figures are not embedded in the executed copy"
    text = "".join(o.get("text", "") for c in code for o in c.outputs if o.output_type == "stream")
    assert "reading the committed results in ../../data/results/paper001" in text
    assert (tmp_path / "figures" / "aid_quadratic_vs_kappa_and_K.png").is_file()
    assert not any(o.output_type == "error" for c in code for o in c.outputs)


# -- progress and kernel transport ---------------------------------------------------------

def test_runner_prints_heartbeat_lines_and_no_tcp_warning(tmp_path):
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"display_name": "Python 3 (ipykernel)",
                                                            "language": "python", "name": "python3"}})
    nb.cells = [nbformat.v4.new_code_cell("seconds = 0.1", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("import time\ntime.sleep(seconds)"),
                nbformat.v4.new_code_cell("print('done')")]
    src = tmp_path / "tiny.ipynb"
    nbformat.write(nb, src)
    res = subprocess.run([sys.executable, "-m", "bilevel.notebook", str(src), "-o", str(tmp_path / "out.ipynb"),
                          "-p", "seconds", "2.5", "--label", "tiny_stage"], capture_output=True, text=True,
                         env=_env(BILEVEL_PROGRESS_INTERVAL="0.5", JUPYTER_RUNTIME_DIR=str(tmp_path / "rt")),
                         cwd=ROOT, timeout=120)
    assert res.returncode == 0, res.stderr
    beats = re.findall(r"^\[tiny_stage\] cell (\d)/(\d), elapsed 0m0\ds$", res.stderr, re.M)
    assert len(beats) >= 3, res.stderr
    assert ("3", "4") in beats                     # the sleeping cell (after the injected parameters cell)
    assert "[tiny_stage] done at cell 4/4" in res.stderr
    assert "without encryption" not in res.stderr
    executed = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    assert executed.cells[-1].outputs[0]["text"] == "done\n"


def test_runner_kernels_get_the_pinned_runtime(monkeypatch):
    """Kernels started by bilevel.notebook get every REPRODUCIBLE_ENV variable the caller left unset."""
    import asyncio
    import shutil

    from bilevel.notebook import _kernel_manager_class
    from bilevel.runtime import REPRODUCIBLE_ENV

    for key in REPRODUCIBLE_ENV:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("MKL_CBWR", "COMPATIBLE")            # set by the caller: kept
    seen = {}

    async def fake_pre_start(self, **kw):
        seen.update(kw["env"])
        return kw

    manager = _kernel_manager_class()
    monkeypatch.setattr(manager.__mro__[1], "_async_pre_start_kernel", fake_pre_start)
    km = manager()
    asyncio.run(km._async_pre_start_kernel())
    shutil.rmtree(km._ipc_dir, ignore_errors=True)
    assert seen["MKL_CBWR"] == "COMPATIBLE"
    assert all(seen[k] == v for k, v in REPRODUCIBLE_ENV.items() if k != "MKL_CBWR")
    assert seen["MPLBACKEND"] == "module://matplotlib_inline.backend_inline"


def _configs():
    """(notebook, section, config class) of every notebook that builds one config from its section: its
    default section and every section the pipeline (dvc.yaml) runs it with."""
    import importlib
    import re
    dvc = (ROOT / "dvc.yaml").read_text()
    out = []
    for path in sorted(NB.glob("*/*.ipynb")):
        src = path.read_text()
        m = re.search(r"config=(\w+)\.(\w+Config)", src)
        if m:
            mods = {alias or mod: f"{pkg}.{mod}" for pkg, mod, alias in
                    re.findall(r"from (bilevel\.papers\.\w+) import (\w+)(?: as (\w+))?", src)}
            cls = getattr(importlib.import_module(mods[m.group(1)]), m.group(2))
            rel = re.escape(path.relative_to(ROOT).as_posix())
            sections = {re.search(r'section = \\"(\w+)\\"', src).group(1)}
            sections |= set(re.findall(rf"bilevel\.notebook {rel}\b[^\n]*\n(?:[^\n]*\n)?\s*--params-file \S+ "
                                       r"--section (\w+)", dvc))
            out.extend((path, section, cls) for section in sorted(sections))
    return out


def _load_params_calls(path):
    """The ``load_params(...)`` calls (ast nodes) in the code cells of notebook ``path``."""
    import ast
    nb = nbformat.read(path, as_version=4)
    calls = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        code = "\n".join(line for line in cell.source.splitlines() if not line.lstrip().startswith(("%", "!")))
        calls += [n for n in ast.walk(ast.parse(code)) if isinstance(n, ast.Call)
                  and getattr(n.func, "id", getattr(n.func, "attr", None)) == "load_params"]
    return calls


def test_every_notebook_builds_its_sections_config():
    """A parameter travels one road: every notebook reads its section into a validated config
    (``load_params(..., config=...)``), never into a namespace unpacked by hand."""
    paths = sorted(NB.glob("*/*.ipynb"))
    assert len(paths) >= 18, paths
    for path in paths:
        calls = _load_params_calls(path)
        assert calls, f"{path}: no load_params call"
        for call in calls:
            assert any(k.arg == "config" for k in call.keywords), \
                f"{path}: load_params(...) without config=; pass the section's ExperimentConfig class"
    assert {p for p, _, _ in _configs()} == set(paths)    # every notebook's config class is found below


def test_every_config_takes_exactly_its_section_in_every_profile():
    import dataclasses

    import yaml
    configs = _configs()
    assert len(configs) >= 19, configs                    # every notebook, paper003_mnist_itd too
    for path, section, cls in configs:
        for f in sorted(ROOT.glob("params*.yaml")):
            if section not in (yaml.safe_load(f.read_text()) or {}):
                continue
            profile = "paper" if f.name == "params.yaml" else f.stem[len("params-"):]
            assert isinstance(load_params(section, profile, root=ROOT, config=cls), cls), (path, profile)
        values = vars(load_params(section, "smoke", root=ROOT))
        bogus = rf"{section}: unknown parameter\(s\) \['bogus'\] for {cls.__name__}"
        with pytest.raises(UnknownParameterError, match=bogus):
            cls.from_params({**values, "bogus": 1}, where=section)
        name = next((f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING), None)
        if name is None:                                   # a section without values (figures only)
            assert values == {} and cls.from_params({}, where=section) == cls(), (path, section)
            continue
        with pytest.raises(UnknownParameterError, match=rf"missing parameter\(s\) \['{name}'\]"):
            cls.from_params({k: v for k, v in values.items() if k != name}, where=section)


# -- nested sub-sections ---------------------------------------------------------------------

def _nested_configs():
    import dataclasses

    from bilevel._validate import INT1
    from bilevel.notebook import ExperimentConfig, config_section, param, solver_section

    @dataclasses.dataclass(frozen=True)
    class Leaf(ExperimentConfig):
        steps: int = param(INT1, "K")
        itd: dict = solver_section("itd", "inner_steps inner_lr outer_lr")

    @dataclasses.dataclass(frozen=True)
    class Middle(ExperimentConfig):
        leaf: Leaf = config_section(Leaf)
        seed: int = param(INT1, default=1)

    @dataclasses.dataclass(frozen=True)
    class Top(ExperimentConfig):
        middle: Middle = config_section(Middle)
        replicates: int = param(INT1)
    values = {"replicates": 2, "middle": {"leaf": {"steps": 3, "itd": {"inner_steps": 4, "inner_lr": 0.1,
                                                                         "outer_lr": 0.2}}}}
    return Top, values


@pytest.mark.parametrize("path, edit, error, message", [
    ("", lambda v: v.update(replicats=2), UnknownParameterError,
     r"^f\.yaml:s: unknown parameter\(s\) \['replicats'\] for Top; it takes \['middle', 'replicates'\]\. Fix"),
    ("middle.leaf", lambda v: v.update(stpes=3), UnknownParameterError,
     r"^f\.yaml:s\.middle\.leaf: unknown parameter\(s\) \['stpes'\] for Leaf; it takes \['itd', 'steps'\]\. Fix"),
    ("middle.leaf.itd", lambda v: v.update(inner_rl=0.1), UnknownParameterError,
     r"^f\.yaml:s\.middle\.leaf\.itd: unknown parameter\(s\) \['inner_rl'\] for ITD; it takes \[.*'inner_lr'.*\]"),
    ("", lambda v: v.pop("replicates"), UnknownParameterError,
     r"^f\.yaml:s: missing parameter\(s\) \['replicates'\] for Top; add them"),
    ("middle.leaf", lambda v: v.pop("steps"), UnknownParameterError,
     r"^f\.yaml:s\.middle\.leaf: missing parameter\(s\) \['steps'\] for Leaf; add them"),
    ("middle.leaf.itd", lambda v: v.pop("outer_lr"), UnknownParameterError,
     r"^f\.yaml:s\.middle\.leaf\.itd: missing parameter\(s\) \['outer_lr'\] for ITD; add them"),
    ("middle.leaf", lambda v: v.update(steps=0), "HyperparameterError",
     r"^f\.yaml:s\.middle\.leaf: Leaf: steps \(K\) = 0 violates 'int >= 1'"),
    ("middle.leaf.itd", lambda v: v.update(inner_lr=-1.0), "HyperparameterError",
     r"^f\.yaml:s\.middle\.leaf\.itd: ITD: inner_lr .* = -1\.0 violates"),
    ("middle", lambda v: v.update(leaf=[3]), "HyperparameterError",
     r"^f\.yaml:s\.middle\.leaf: expected a mapping .* got list \[3\]"),
])
def test_nested_sections_are_checked_by_the_same_rules_naming_the_key_path(path, edit, error, message):
    from bilevel import notebook
    Top, values = _nested_configs()
    cfg = Top.from_params(values, where="f.yaml:s")
    assert cfg.middle.leaf.itd == {"inner_steps": 4, "inner_lr": 0.1, "outer_lr": 0.2}
    assert cfg.middle.seed == 1 and cfg.middle.leaf.steps == 3
    node = values
    for part in filter(None, path.split(".")):
        node = node[part]
    edit(node)
    error = getattr(notebook, error) if isinstance(error, str) else error
    with pytest.raises(error, match=message):
        Top.from_params(values, where="f.yaml:s")


def test_a_solver_section_names_an_unknown_solver():
    import dataclasses

    from bilevel.notebook import ExperimentConfig, solver_section

    @dataclasses.dataclass(frozen=True)
    class Bad(ExperimentConfig):
        s: dict = solver_section("no_such_solver", "inner_lr")
    with pytest.raises(ValueError, match=r"unknown solver 'no_such_solver'; registered: \[.*'aid'"):
        Bad.from_params({"s": {"inner_lr": 0.1}})
