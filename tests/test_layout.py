"""The house's layout: the library knows no paper; each paper's code lives in one folder."""

import ast
from pathlib import Path

import bilevel

ROOT = Path(bilevel.__file__).parent
PAPERS = ROOT / "papers"


def _imports(path: Path) -> set[str]:
    """Absolute module names imported by ``path`` (relative imports resolved)."""
    pkg = list(path.relative_to(ROOT.parent).parts[:-1])   # the package a relative import starts from
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = pkg[: len(pkg) - node.level + 1] if node.level else []
            mod = ".".join(base + ([node.module] if node.module else []))
            out.add(mod)
            out.update(f"{mod}.{a.name}" for a in node.names)
    return out


def library_modules():
    return [p for p in ROOT.rglob("*.py") if PAPERS not in p.parents]


def test_resolver_sees_relative_imports():
    names = _imports(PAPERS / "paper001" / "experiments.py")
    assert "bilevel.papers.paper001.bounds" in names and "bilevel.run" in names


def test_library_imports_no_paper():
    offenders = {str(p.relative_to(ROOT.parent)): sorted(n for n in _imports(p) if n.startswith("bilevel.papers"))
                 for p in library_modules()}
    offenders = {k: v for k, v in offenders.items() if v}
    assert not offenders, f"library modules import paper modules (move the code into bilevel/papers/): {offenders}"


def test_papers_mirror_notebooks():
    notebooks = {p.name for p in (ROOT.parent / "notebooks").iterdir() if p.is_dir()}
    papers = {p.name for p in PAPERS.iterdir() if p.is_dir() and p.name.startswith("paper")}
    assert notebooks == papers


def test_no_paper_named_objects_in_library():
    """Library names are general (a paper may be cited in a docstring, not named in an API)."""
    bad = []
    for p in library_modules():
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name.startswith("paper00"):
                bad.append(f"{p.relative_to(ROOT.parent)}:{node.lineno} {node.name}")
    assert not bad, bad
