"""Run a parameterized notebook with papermill, refusing unknown parameters.

papermill only *warns* when a parameter is not declared in the notebook's
``parameters`` cell, so a typo in ``params.yaml`` would silently run the smoke
defaults. This runner inspects the notebook first and fails with the list of
valid names. Values come from ``-p name value`` pairs (YAML-parsed) and/or a
section of ``params.yaml``.

Usage (what ``dvc.yaml`` calls)::

    python -m bilevel.notebook notebooks/paper001/01_quadratic_runs.ipynb \
        --params-file params.yaml --section paper001_quadratic -p out_dir ../../data/results

The executed copy is written to ``--output`` (default:
``build/executed/<notebook path>``), atomically; the source notebook is never
overwritten. The kernel runs with the notebook's directory as cwd.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

__all__ = ["declared_parameters", "check_parameters", "execute", "main"]


class UnknownParameterError(ValueError):
    pass


def declared_parameters(notebook: str | os.PathLike) -> dict:
    """The names (and default literals) of the notebook's ``parameters`` cell."""
    import papermill as pm
    params = pm.inspect_notebook(str(notebook))
    if not params:
        raise ValueError(f"{notebook}: no cell tagged 'parameters'; tag the cell of "
                         "parameter literals with the 'parameters' tag.")
    return params


def check_parameters(notebook, parameters: dict) -> None:
    """Raise :class:`UnknownParameterError` for names the notebook does not declare."""
    declared = declared_parameters(notebook)
    unknown = sorted(set(parameters) - set(declared))
    if unknown:
        raise UnknownParameterError(
            f"{notebook}: unknown parameter(s) {unknown}; the notebook declares "
            f"{sorted(declared)}. Fix the name in params.yaml / -p, or add it to the "
            "notebook's parameters cell.")


def _load_section(params_file, section):
    import yaml
    data = yaml.safe_load(Path(params_file).read_text())
    node = data
    for part in section.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(f"{params_file}: no section {section!r}.")
        node = node[part]
    if not isinstance(node, dict):
        raise ValueError(f"{params_file}:{section} must be a mapping of parameter names.")
    return dict(node)


def execute(notebook, output=None, parameters=None, kernel="python3", log_output=False):
    """Check parameters, then execute ``notebook`` to ``output`` atomically."""
    import papermill as pm
    from .io import atomic_path
    notebook = Path(notebook)
    parameters = dict(parameters or {})
    check_parameters(notebook, parameters)
    output = Path(output) if output else Path("build/executed") / notebook
    with atomic_path(output) as tmp:
        pm.execute_notebook(str(notebook), str(tmp),
                            parameters=parameters, kernel_name=kernel,
                            cwd=str(notebook.parent), log_output=log_output,
                            progress_bar=False)
    return output


def main(argv=None) -> int:
    import yaml
    ap = argparse.ArgumentParser(prog="python -m bilevel.notebook", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("notebook")
    ap.add_argument("--output", "-o", default=None)
    ap.add_argument("--params-file", default=None)
    ap.add_argument("--section", action="append", default=[],
                    help="section of --params-file whose keys are notebook parameters (repeatable)")
    ap.add_argument("-p", "--parameter", nargs=2, action="append", default=[],
                    metavar=("NAME", "VALUE"))
    ap.add_argument("--kernel", default="python3")
    args = ap.parse_args(argv)
    params = {}
    for sec in args.section:
        if not args.params_file:
            ap.error("--section needs --params-file")
        params.update(_load_section(args.params_file, sec))
    for name, value in args.parameter:
        params[name] = yaml.safe_load(value)
    try:
        out = execute(args.notebook, args.output, params, kernel=args.kernel)
    except UnknownParameterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"executed {args.notebook} -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
