"""Notebook parameters (profiles) and the papermill runner of the pipeline.

**Profiles.** Every notebook's ``parameters`` cell holds a handful of literals::

    profile = "smoke"          # "smoke" (params-smoke.yaml) | "paper" (params.yaml) | <name> (params-<name>.yaml)
    section = "paper001_quadratic"   # the section of that file this notebook reads
    overrides = {}             # e.g. {"steps": 5000}: values that differ from the profile
    results_dir = "../../build/smoke/results/paper001"

and the cell right after it calls :func:`load_params`, which reads ``section``
from the profile's file, applies ``overrides`` and checks every value against
the profile's own value (type and name). A reader switches scale by changing the
one word ``profile``; the values themselves live only in ``params.yaml`` /
``params-smoke.yaml``.

**Configs.** A runs notebook passes its experiment's config class,
``cfg = load_params(section, profile, overrides, config=QuadraticConfig)``, and calls
``experiment(cfg, progress=True)``: an :class:`ExperimentConfig` is a frozen dataclass whose
fields are the section's keys (named as the arguments that receive them, a solver's field names
for solver hyperparameters), each checked by its :func:`param` constraint when it is built; an
unknown or missing key fails naming the key and the section. A field declared with
:func:`config_section` (another config) or :func:`solver_section` (a solver's own fields) holds a
nested sub-section, checked by the same rules; its errors name the key path
(``params.yaml:paper004_tutorial.tracking.ttsa``).

**Runner.** ``python -m bilevel.notebook`` is what ``dvc.yaml`` calls::

    python -m bilevel.notebook notebooks/paper001/01_quadratic_runs.ipynb \\
        -o build/executed/paper001/01_quadratic_runs.ipynb \\
        --params-file params.yaml --section paper001_quadratic -p results_dir ../../data/results/paper001

It injects the section's ``profile`` (and ``section``), passes the values that
differ from the profile's file as ``overrides``, and accepts ``-p NAME VALUE``
(YAML-parsed) both for the notebook's own parameters and for any key of its
section (``-p steps 5000`` becomes ``overrides={"steps": 5000}``; ``-p ba.steps 20`` one key
of the sub-section ``ba``). Names and types are
checked before a kernel starts (papermill alone only warns on unknown names and
would run ``-p kappas "'234'"`` as kappa in {2, 3, 4}). The executed copy goes to
``--output`` (default ``build/executed/<notebook path>``) atomically; the runner
refuses to write over the source notebook. While the kernel runs it prints a
one-line heartbeat (``[label] cell i/n, elapsed ...``) every
``BILEVEL_PROGRESS_INTERVAL`` seconds (default 30; 0 turns it off) to stderr.

**Clean sources.** ``python -m bilevel.notebook strip NB...`` (``make strip``) removes outputs,
execution counts and editor metadata and writes :data:`CANONICAL_METADATA`;
``tests/test_notebook_hygiene.py`` fails when a committed notebook needs it.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace

from ._validate import INT1, INTS, NAME, NONEMPTY, REAL, HyperparameterError, validate

__all__ = ["load_params", "ExperimentConfig", "param", "config_section", "solver_section",
           "REAL", "NAME", "INTS", "NONEMPTY",
           "profile_file", "find_root", "declared_parameters", "check_parameters",
           "execute", "main", "strip_notebook", "CANONICAL_METADATA", "UnknownParameterError",
           "ParameterTypeError"]

#: the inline backend that ipykernel selects when MPLBACKEND is unset; the runner sets it for
#: its kernels so that executed copies embed their figures even when MPLBACKEND=Agg is exported
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"


class UnknownParameterError(ValueError):
    pass


class ParameterTypeError(TypeError):
    pass


# -- profiles --------------------------------------------------------------------------------

def find_root(start: str | os.PathLike | None = None) -> Path:
    """The repository root: the first directory from ``start`` (default: cwd) upwards with a dvc.yaml."""
    start = Path(start or os.getcwd()).resolve()
    for d in (start, *start.parents):
        if (d / "dvc.yaml").is_file() and (d / "params.yaml").is_file():
            return d
    raise FileNotFoundError(f"no dvc.yaml + params.yaml in {start} or above; run from inside the "
                            "repository (notebooks run with their own folder as cwd) or pass root=.")


def profile_file(profile: str, root: str | os.PathLike | None = None) -> Path:
    """``params.yaml`` for ``"paper"``, ``params-<profile>.yaml`` otherwise (under the repository root)."""
    if not isinstance(profile, str) or not profile.isidentifier():
        raise ValueError(f"profile must be a name like 'smoke' or 'paper', got {profile!r}.")
    root = Path(root) if root is not None else find_root()
    path = root / ("params.yaml" if profile == "paper" else f"params-{profile}.yaml")
    if not path.is_file():
        known = sorted(["paper"] + [p.stem[len("params-"):] for p in root.glob("params-*.yaml")])
        raise FileNotFoundError(f"profile {profile!r}: no file {path.name} in {root}; known profiles: "
                                f"{known}. Use one of those or create {path.name}.")
    return path


def _load_section(params_file, section):
    import yaml
    data = yaml.safe_load(Path(params_file).read_text())
    node = data
    for part in section.split("."):
        if not isinstance(node, dict) or part not in node:
            have = sorted(k for k in (data or {}) if isinstance(data[k], dict))
            raise KeyError(f"{params_file}: no section {section!r}; sections: {have}.")
        node = node[part]
    if not isinstance(node, dict):
        raise ValueError(f"{params_file}:{section} must be a mapping of parameter names.")
    return dict(node)


def _type_name(ref) -> str:
    if isinstance(ref, list):
        inner = sorted({_type_name(v) for v in ref})
        if inner == ["float", "int"]:
            inner = ["float"]
        return f"list[{' | '.join(inner)}]" if inner else "list"
    return type(ref).__name__


def _conform(name, value, ref, where):
    """``value`` converted to the type of the reference value ``ref``, or ParameterTypeError."""
    def fail():
        raise ParameterTypeError(
            f"{where}: parameter {name!r} expects {_type_name(ref)} (the profile's value is {ref!r}), got "
            f"{type(value).__name__} {value!r}. Fix the value in overrides / `-p {name} VALUE` "
            f"(YAML syntax, e.g. -p {name} '{_example(ref)}').")
    if ref is None:
        return value
    if isinstance(ref, bool):
        return value if isinstance(value, bool) else fail()
    if isinstance(ref, int):
        return value if isinstance(value, int) and not isinstance(value, bool) else fail()
    if isinstance(ref, float):
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else fail()
    if isinstance(ref, str):
        return value if isinstance(value, str) else fail()
    if isinstance(ref, dict):
        return dict(value) if isinstance(value, dict) else fail()
    if isinstance(ref, list):
        if not isinstance(value, (list, tuple)):
            fail()
        if not ref:
            return list(value)
        elem = 0.0 if all(isinstance(r, (int, float)) and not isinstance(r, bool) for r in ref) and \
            any(isinstance(r, float) for r in ref) else ref[0]
        try:
            return [_conform(f"{name}[{i}]", v, elem, where) for i, v in enumerate(value)]
        except ParameterTypeError:
            fail()
    return value


def _override(values: dict, path: list, value, where: str) -> None:
    """Set ``values[path[0]]...[path[-1]] = value`` (conformed to the profile's value). A sub-section
    (a dict) is merged key by key, so ``{"ba": {"steps": 20}}`` and ``"ba.steps": 20`` replace one
    key of ``ba`` and keep the others."""
    head, *rest = path
    if head not in values:
        raise UnknownParameterError(f"{where}: unknown parameter {head!r}; it has {sorted(values)}. "
                                    "Fix the name, or add the key to every profile.")
    ref = values[head]
    if isinstance(ref, dict) and (rest or isinstance(value, dict)):
        values[head] = sub = dict(ref)
        for k, v in ({".".join(rest): value} if rest else value).items():
            _override(sub, k.split("."), v, f"{where}.{head}")
    elif rest:
        raise UnknownParameterError(f"{where}: parameter {head!r} has no sub-keys (it is {ref!r}); "
                                    f"override it as {head!r}.")
    else:
        values[head] = _conform(head, value, ref, where)


def _example(ref) -> str:
    import yaml
    return yaml.safe_dump(ref, default_flow_style=True).strip().replace("\n...", "")


def load_params(section: str, profile: str = "smoke", overrides: dict | None = None, *,
                root: str | os.PathLike | None = None, config: type | None = None):
    """The values of ``section`` for ``profile``, with ``overrides`` applied and type-checked.

    Args:
        section: the section of the profile's file (one per DVC stage, e.g. ``"paper001_quadratic"``).
        profile: ``"smoke"`` -> ``params-smoke.yaml``, ``"paper"`` -> ``params.yaml``, any other
            name -> ``params-<name>.yaml`` (all at the repository root, found upwards from the cwd).
        overrides: ``{name: value}`` replacing the profile's values; a key of a sub-section is
            ``"sub.key"`` (or ``{"sub": {"key": value}}``: merged, the other keys kept). Unknown names raise
            :class:`UnknownParameterError`; a value whose type differs from the profile's value
            raises :class:`ParameterTypeError` (ints are accepted where floats are expected).
        root: the repository root (default: :func:`find_root`).

        config: an :class:`ExperimentConfig` subclass: return ``config.from_params(values)``
            (every key of the section a field of ``config``, each value validated) instead of
            a namespace.

    Returns a namespace of the section's values (without its ``profile`` key), or the
    ``config`` built from them.

    >>> p = load_params("paper001_quadratic", "smoke", {"steps": 50}, root=find_root(__file__))
    >>> p.steps, p.kappas
    (50, [2.0, 3.0, 4.0])
    >>> load_params("paper001_quadratic", "smoke", {"kappas": "234"},
    ...             root=find_root(__file__))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    bilevel.notebook.ParameterTypeError: params-smoke.yaml:paper001_quadratic: parameter 'kappas' expects list[float] ...
    """
    path = profile_file(profile, root)
    values = _load_section(path, section)
    declared = values.pop("profile", profile)
    if declared != profile:
        raise ValueError(f"{path.name}:{section} declares profile {declared!r}, but profile {profile!r} "
                         f"maps to this file; fix the `profile:` key of the section.")
    overrides = dict(overrides or {})
    unknown = sorted(k for k in overrides if k.split(".")[0] not in values)
    if unknown:
        raise UnknownParameterError(f"{path.name}:{section}: unknown parameter(s) {unknown}; the section "
                                    f"has {sorted(values)}. Fix the name, or add the key to every profile.")
    where = f"{path.name}:{section}"
    for name, value in overrides.items():
        _override(values, name.split("."), value, where)
    if config is not None:
        return config.from_params(values, where=where)
    return SimpleNamespace(**values)


# -- experiment configs ----------------------------------------------------------------------

def param(check=None, symbol: str = "", default=dataclasses.MISSING):
    """A field of an :class:`ExperimentConfig`: required unless ``default`` is given, checked by
    ``check`` (a :class:`bilevel._validate.Constraint`: :data:`INT1`, :data:`REAL`, :data:`NAME`,
    :data:`INTS`, :data:`NONEMPTY`, ...) when the config is built."""
    return dataclasses.field(default=default, metadata={"symbol": symbol, "check": check})


def config_section(config: type, symbol: str = ""):
    """A field of an :class:`ExperimentConfig` whose value is a params sub-section, built as
    ``config`` (another :class:`ExperimentConfig`) by :meth:`ExperimentConfig.from_params`; its
    errors name the key path (``params.yaml:section.field.key``)."""
    def build(values, where):
        return config.from_params(values, where=where)
    return dataclasses.field(metadata={"symbol": symbol, "check": None, "section": build})


def solver_section(solver, keys: str, symbol: str = ""):
    """A field of an :class:`ExperimentConfig` whose value is a params sub-section of solver
    hyperparameters, kept as a dict for ``make(name, **section)``: its keys are the solver's own field
    names (``solver``: a registry name such as ``"ttsa"``, or a solver class) and must include ``keys``
    (space-separated: the hyperparameters the experiment sets; the solver's defaults stand for the
    others). :meth:`ExperimentConfig.from_params` checks the names and builds the solver once, so a
    bad value fails with the solver's own message, prefixed by the key path."""
    required = tuple(keys.split())

    def build(values, where):
        cls = _solver_class(solver)
        fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
        _check_keys(values, fields, required, cls.__name__, where)
        _construct(cls, values, where)
        return dict(values)
    return dataclasses.field(metadata={"symbol": symbol, "check": None, "section": build})


def _solver_class(solver) -> type:
    if isinstance(solver, type):
        return solver
    from .solvers import REGISTRY, available
    if solver not in REGISTRY:
        raise ValueError(f"solver_section: unknown solver {solver!r}; registered: {available()}.")
    return REGISTRY[solver]


def _check_keys(values, fields: dict, required, owner: str, where: str) -> None:
    """:class:`UnknownParameterError` for a key of ``values`` that is not in ``fields`` and for a
    ``required`` name that is not in ``values``; ``where`` is the file:section (and key path)."""
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise UnknownParameterError(
            f"{where}: unknown parameter(s) {unknown} for {owner}; it takes {sorted(fields)}. "
            "Fix the name in the params file / overrides.")
    missing = sorted(set(required) - set(values))
    if missing:
        raise UnknownParameterError(f"{where}: missing parameter(s) {missing} for {owner}; "
                                    "add them to the section of every profile.")


def _construct(cls, values, where):
    """``cls(**values)``, its ``ValueError``/``TypeError`` re-raised prefixed with ``where``."""
    try:
        return cls(**values)
    except (ValueError, TypeError) as e:
        raise HyperparameterError(f"{where}: {e}") from None


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """Base of an experiment's config: a frozen dataclass whose fields are the keys of one params
    section, named as the arguments that receive them (a solver's field names for solver
    hyperparameters). Subclasses declare fields with :func:`param`; a field declared with
    :func:`config_section` or :func:`solver_section` holds a nested sub-section, checked the same way.
    Building one validates every field in one place (``__post_init__``).

    >>> @dataclasses.dataclass(frozen=True)
    ... class Demo(ExperimentConfig):
    ...     steps: int = param(INT1)
    >>> Demo.from_params({"steps": 3}, where="params.yaml:demo")
    Demo(steps=3)
    >>> Demo.from_params({"stpes": 3}, where="params.yaml:demo")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    bilevel.notebook.UnknownParameterError: params.yaml:demo: unknown parameter(s) ['stpes'] for Demo; ...
    >>> Demo.from_params({"steps": 0}, where="params.yaml:demo")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    bilevel._validate.HyperparameterError: params.yaml:demo: Demo: steps = 0 violates 'int >= 1': ...

    Nested sub-sections report their key path:

    >>> @dataclasses.dataclass(frozen=True)
    ... class Outer(ExperimentConfig):
    ...     seed: int = param(INT1)
    ...     inner: Demo = config_section(Demo)
    ...     itd: dict = solver_section("itd", "inner_steps inner_lr outer_lr")
    >>> Outer.from_params({"seed": 1, "inner": {"steps": 2},
    ...                    "itd": {"inner_steps": 5, "inner_lr": 0.1, "outer_lr": 0.1}}, where="params.yaml:demo")
    Outer(seed=1, inner=Demo(steps=2), itd={'inner_steps': 5, 'inner_lr': 0.1, 'outer_lr': 0.1})
    >>> Outer.from_params({"seed": 1, "inner": {"steps": 0},
    ...                    "itd": {"inner_steps": 5, "inner_lr": 0.1, "outer_lr": 0.1}},
    ...                   where="params.yaml:demo")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    bilevel._validate.HyperparameterError: params.yaml:demo.inner: Demo: steps = 0 violates 'int >= 1': ...
    >>> Outer.from_params({"seed": 1, "inner": {"steps": 2}, "itd": {"inner_lr": 0.1, "outer_rl": 0.1}},
    ...                   where="params.yaml:demo")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    bilevel.notebook.UnknownParameterError: params.yaml:demo.itd: unknown parameter(s) ['outer_rl'] for ITD; ...
    """

    def __post_init__(self):
        validate(self)

    @classmethod
    def from_params(cls, values, where: str | None = None):
        """The config of ``values`` (a mapping or :func:`load_params`' namespace); ``where``
        (e.g. ``"params.yaml:paper003_mnist_aid"``) prefixes every error, followed by the key path
        inside nested sub-sections (``where.field``). Raises :class:`UnknownParameterError` for a key
        that is no field and for a missing field, :class:`~bilevel._validate.HyperparameterError` for
        a value that violates its field's check or a sub-section that is no mapping."""
        values = dict(vars(values) if isinstance(values, SimpleNamespace) else values)
        values.pop("profile", None)
        where = where or cls.__name__
        fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
        required = [n for n, f in fields.items()
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        _check_keys(values, fields, required, cls.__name__, where)
        for name, f in fields.items():
            build = f.metadata.get("section")
            if build is None or name not in values:
                continue
            sub, at = values[name], f"{where}.{name}"
            if not isinstance(sub, Mapping):
                raise HyperparameterError(f"{at}: expected a mapping of parameter names (a sub-section), got "
                                          f"{type(sub).__name__} {sub!r}; write it as {name}: {{key: value, ...}}.")
            values[name] = build(dict(sub), at)
        return _construct(cls, values, where)


# -- clean source notebooks --------------------------------------------------------------------

#: the notebook metadata JupyterLab 4 writes for this project's kernel (kernelspec of
#: ipykernel's "python3" and the kernel_info reply of CPython 3.11.7, the project's Python);
#: committed notebooks carry exactly this, so opening and saving one changes no byte
CANONICAL_METADATA = {
    "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
    "language_info": {"codemirror_mode": {"name": "ipython", "version": 3}, "file_extension": ".py",
                      "mimetype": "text/x-python", "name": "python", "nbconvert_exporter": "python",
                      "pygments_lexer": "ipython3", "version": "3.11.7"},
}
#: cell metadata kept in source notebooks (papermill's ``parameters`` tag lives here)
KEPT_CELL_METADATA = ("tags",)


def strip_notebook(nb):
    """``nb`` (an nbformat node) without outputs, execution counts or editor state, with the canonical
    notebook metadata; returns it (modified in place)."""
    import copy
    nb.metadata = copy.deepcopy(CANONICAL_METADATA)
    for cell in nb.cells:
        cell.metadata = {k: v for k, v in cell.metadata.items() if k in KEPT_CELL_METADATA}
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    return nb


def _strip_files(paths) -> int:
    """``python -m bilevel.notebook strip NB...`` (``make strip``): rewrite the notebooks that change."""
    import nbformat
    for path in paths:
        text = Path(path).read_text()
        nb = strip_notebook(nbformat.reads(text, as_version=4))
        new = nbformat.writes(nb) + "\n"      # what jupyter_server writes on save
        if new != text:
            Path(path).write_text(new)
            print(f"stripped {path}")
    return 0


# -- the runner ------------------------------------------------------------------------------

def declared_parameters(notebook: str | os.PathLike) -> dict:
    """The names (and default literals) of the notebook's ``parameters`` cell."""
    import papermill as pm
    params = pm.inspect_notebook(str(notebook))
    if not params:
        raise ValueError(f"{notebook}: no cell tagged 'parameters'; tag the cell of "
                         "parameter literals with the 'parameters' tag.")
    return params


def _default(declared, name):
    try:
        return ast.literal_eval(declared[name]["default"])
    except (KeyError, ValueError, SyntaxError):
        return None


def check_parameters(notebook, parameters: dict) -> dict:
    """Split ``parameters`` into the notebook's own and its section's, and validate both.

    Returns the papermill parameters to inject (section keys folded into ``overrides``).
    Raises :class:`UnknownParameterError` for a name neither the notebook nor its section
    declares, :class:`ParameterTypeError` for a value of the wrong type.
    """
    declared = declared_parameters(notebook)
    own = {k: v for k, v in parameters.items() if k in declared}
    rest = {k: v for k, v in parameters.items() if k not in declared}
    if "section" not in declared or "profile" not in declared:
        if rest:
            raise UnknownParameterError(f"{notebook}: unknown parameter(s) {sorted(rest)}; the notebook "
                                        f"declares {sorted(declared)}.")
        return own
    section = own.get("section", _default(declared, "section"))
    profile = own.get("profile", _default(declared, "profile"))
    overrides = {**dict(own.get("overrides") or {}), **rest}
    root = find_root(Path(notebook).parent)
    keys = set(_load_section(profile_file(profile, root), section)) - {"profile"}
    unknown = sorted(k for k in overrides if k.split(".")[0] not in keys)
    if unknown:
        raise UnknownParameterError(
            f"{notebook}: unknown parameter(s) {unknown}; the notebook declares {sorted(declared)} and "
            f"its section {section!r} has {sorted(keys)}. Fix the name in params.yaml / -p / overrides, "
            "or add the key to the section of every profile.")
    load_params(section, profile, overrides, root=root)
    if rest or "overrides" in own:
        own["overrides"] = overrides
    return own


class _Heartbeat:
    """nbclient ``on_cell_start`` hook plus a thread printing ``[label] cell i/n, elapsed`` lines."""

    def __init__(self, label, n_cells, interval, stream):
        self.label, self.n, self.interval, self.stream = label, n_cells, interval, stream
        self.index, self.t0 = 0, time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def on_cell_start(self, cell=None, cell_index=0, **_):
        self.index = int(cell_index) + 1

    def line(self) -> str:
        s = int(time.monotonic() - self.t0)
        return f"[{self.label}] cell {self.index}/{self.n}, elapsed {s // 60}m{s % 60:02d}s"

    def _loop(self):
        while not self._stop.wait(self.interval):
            print(self.line(), file=self.stream, flush=True)

    def __enter__(self):
        if self.interval > 0:
            print(f"[{self.label}] started: {self.n} cells", file=self.stream, flush=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        if self.interval > 0:
            s = int(time.monotonic() - self.t0)
            state = "failed" if exc[0] else "done"
            print(f"[{self.label}] {state} at cell {self.index}/{self.n} after {s // 60}m{s % 60:02d}s",
                  file=self.stream, flush=True)


def _kernel_manager_class():
    """AsyncKernelManager on IPC transport with the inline matplotlib backend.

    * IPC: the kernel's sockets are files in an owner-only temporary folder (removed when the
      kernel is cleaned up) instead of TCP ports on 127.0.0.1, so ipykernel >= 7 no longer prints
      "Kernel is running over TCP without encryption" once per stage.
    * MPLBACKEND: the Makefile exports ``MPLBACKEND=Agg`` for batch processes; a kernel that
      inherits it would not embed figures in the executed copy, so the runner's kernels get
      ipykernel's own default, the inline backend.
    * :data:`bilevel.runtime.REPRODUCIBLE_ENV`: every variable of the pinned runtime that the
      caller did not set is set for the kernel, so a notebook run by ``python -m bilevel.notebook``
      outside ``make`` computes the same bytes as under ``make reproduce`` (numpy's OpenBLAS reads
      its variable at import, before a notebook could set it).
    """
    from .runtime import REPRODUCIBLE_ENV
    from jupyter_client import AsyncKernelManager
    from traitlets import default

    class BatchKernelManager(AsyncKernelManager):
        @default("transport")
        def _transport_default(self):
            return "ipc"

        async def _async_pre_start_kernel(self, **kw):
            env = dict(kw.pop("env", None) or os.environ)
            env["MPLBACKEND"] = INLINE_BACKEND
            for key, value in REPRODUCIBLE_ENV.items():
                env.setdefault(key, value)
            kw["env"] = env
            if self.transport == "ipc" and not self.connection_file:
                # Unix socket paths hold at most 107 bytes, too few under a deep JUPYTER_RUNTIME_DIR:
                # the sockets live in a fresh owner-only (0700) temporary folder, removed afterwards
                self._ipc_dir = tempfile.mkdtemp(prefix="bilevel-kernel-")
                self.connection_file = os.path.join(self._ipc_dir, "kernel.json")
                self.ip = os.path.join(self._ipc_dir, "ipc")
            return await super()._async_pre_start_kernel(**kw)

        async def _async_cleanup_resources(self, restart=False):
            await super()._async_cleanup_resources(restart=restart)
            if not restart and getattr(self, "_ipc_dir", None):
                shutil.rmtree(self._ipc_dir, ignore_errors=True)

    return BatchKernelManager


def execute(notebook, output=None, parameters=None, kernel="python3", log_output=False, label=None,
            progress_interval=None, stream=None):
    """Check parameters, then execute ``notebook`` to ``output`` atomically (never over the source)."""
    import nbformat
    import papermill as pm

    from .io import atomic_path
    notebook = Path(notebook)
    output = Path(output) if output else Path("build/executed") / notebook
    if output.resolve() == notebook.resolve() or (output.exists() and output.samefile(notebook)):
        raise ValueError(f"output {output} is the source notebook {notebook}; executed copies never "
                         "overwrite the source. Pass -o build/executed/<path> (the default).")
    parameters = check_parameters(notebook, dict(parameters or {}))
    if progress_interval is None:
        progress_interval = float(os.environ.get("BILEVEL_PROGRESS_INTERVAL", "30"))
    n_cells = len(nbformat.read(notebook, as_version=4).cells) + (1 if parameters else 0)
    beat = _Heartbeat(label or notebook.stem, n_cells, progress_interval, stream or sys.stderr)
    with beat, atomic_path(output) as tmp:
        pm.execute_notebook(str(notebook), str(tmp), parameters=parameters, kernel_name=kernel,
                            cwd=str(notebook.parent), log_output=log_output, progress_bar=False,
                            kernel_manager_class=_kernel_manager_class(), on_cell_start=beat.on_cell_start)
    return output


def _section_overrides(params_file, section, root):
    """The section's profile, and its values that differ from that profile's file."""
    values = _load_section(params_file, section)
    if "profile" not in values:
        raise KeyError(f"{params_file}:{section} has no `profile:` key (smoke | paper | ...).")
    profile = values.pop("profile")
    reference = _load_section(profile_file(profile, root), section)
    reference.pop("profile", None)
    return profile, {k: v for k, v in values.items() if k not in reference or reference[k] != v}


def main(argv=None) -> int:
    import yaml
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["strip"]:
        return _strip_files(argv[1:])
    ap = argparse.ArgumentParser(prog="python -m bilevel.notebook", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("notebook")
    ap.add_argument("--output", "-o", default=None)
    ap.add_argument("--params-file", default=None)
    ap.add_argument("--section", default=None,
                    help="section of --params-file: its profile and values are passed to the notebook")
    ap.add_argument("-p", "--parameter", nargs=2, action="append", default=[],
                    metavar=("NAME", "VALUE"))
    ap.add_argument("--kernel", default="python3")
    ap.add_argument("--label", default=None, help="name in the progress lines (default: the section)")
    args = ap.parse_args(argv)
    params = {}
    try:
        if args.section:
            if not args.params_file:
                ap.error("--section needs --params-file")
            root = find_root(Path(args.params_file).resolve().parent)
            profile, overrides = _section_overrides(args.params_file, args.section, root)
            params.update(profile=profile, section=args.section)
            if overrides:
                params["overrides"] = overrides
        for name, value in args.parameter:
            params[name] = yaml.safe_load(value)
        label = args.label or args.section or Path(args.notebook).stem
        out = execute(args.notebook, args.output, params, kernel=args.kernel, label=label)
    except (UnknownParameterError, ParameterTypeError, ValueError, KeyError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"executed {args.notebook} -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
