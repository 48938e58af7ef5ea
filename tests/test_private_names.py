"""No library module uses another module's private names (issue #13): no ``from .x import _name``,
no ``module._name`` on an imported module, no ``obj._name`` on another module's object; and oracle
counts are incremented only in bilevel/oracles.py. Private *modules* (``_validate``,
``_stochastic``) are package internals and may be imported; their public names are the interface."""

from __future__ import annotations

import ast
import pathlib

import bilevel

ROOT = pathlib.Path(bilevel.__file__).parent
OWN = ("self", "cls")


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _violations(path: pathlib.Path) -> list[str]:
    tree = ast.parse(path.read_text())
    out = []
    local_classes = {n.name for n in ast.walk(tree) if isinstance(n, ast.ClassDef)}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.level > 0 or (node.module or "").startswith("bilevel")):
            for a in node.names:
                mod_file = ROOT / (a.name + ".py")
                is_module = mod_file.exists() or (path.parent / (a.name + ".py")).exists()
                if _private(a.name) and not is_module:
                    out.append(f"{path.name}:{node.lineno} imports private {a.name}")
        if isinstance(node, ast.Attribute) and _private(node.attr) and isinstance(node.value, ast.Name) \
                and node.value.id not in OWN and node.value.id not in local_classes \
                and node.attr not in ("_replace", "_asdict", "_fields", "_make"):
            out.append(f"{path.name}:{node.lineno} uses {node.value.id}.{node.attr}")
    return out


def test_no_module_uses_another_modules_private_names():
    bad = []
    for path in sorted(ROOT.rglob("*.py")):
        if path.name == "oracles.py":
            # Curvature reads its own module's Oracles._noisy (same module)
            bad += [v for v in _violations(path) if "._noisy" not in v]
        elif path.parent.name != "data":      # data/safe_pickle allow-lists numpy's _reconstruct
            bad += _violations(path)
    assert bad == []


def test_oracle_counts_are_incremented_only_in_oracles():
    bad = []
    for path in sorted(ROOT.rglob("*.py")):
        if path.name == "oracles.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Attribute) \
                    and isinstance(node.target.value, ast.Attribute) and node.target.value.attr == "counts":
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert bad == []


def test_the_checks_catch_a_private_import(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("from ..hypergrad import _implicit\nimport bilevel.linsolve as linsolve\n"
                 "x = linsolve._UNCHECKED\ndef h(o):\n    return o._noisy('jvp', 1)\n")
    v = _violations(f)
    assert len(v) == 3 and "_implicit" in v[0] and "linsolve._UNCHECKED" in v[1] and "o._noisy" in v[2]
