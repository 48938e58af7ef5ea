"""Reproduction tooling: truthful stage dependencies and ``make verify``.

Two commands (``python -m bilevel.repro ...``):

``deps [--write]``
    Derives, for every stage of ``dvc.yaml``, the project modules its command
    imports: the notebook's code cells (or ``python -m <module>``) parsed with
    :mod:`ast`, followed transitively through every ``bilevel`` import, package
    ``__init__`` files and imports inside functions included. ``--check`` (the
    default) lists what a stage misses and exits 1; ``--write`` rewrites the
    ``deps`` lists of ``dvc.yaml`` in place (comments kept). A test runs the check,
    so a stage can no longer silently miss a module it uses.

``verify [--rev HEAD] [--report build/reproduction-report.md]``
    After a reproduce, compares every regenerated table under ``data/results/``
    with the committed version (``git show REV:path``), column by column, with the
    tolerances documented in ``data/results/tolerances.yaml`` (wall-time columns
    are reported, never compared), compares every claim's verdict, writes a
    markdown reproduction report and exits 1 when a number or a verdict moved
    beyond tolerance (2 on bad input). When the committed results come from a CPU
    of another vendor than this machine's (``data/results/machine.json``, written
    by ``make reproduce`` whenever stages ran), the ``across_vendors`` rules of the
    tolerances file apply too: measured cross-vendor differences (MKL's
    reproducible mode is Intel-only; see ``data/results/TOLERANCES.md``).

``machine [--write PATH]``
    The CPU this runs on (vendor, model) and the numerical libraries' versions, as
    JSON: what ``make reproduce`` records beside the results it regenerated.
"""

from __future__ import annotations

import argparse
import ast
import fnmatch
import io
import itertools
import json
import math
import platform
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["imported_modules", "import_closure", "stage_requirements", "missing_deps",
           "write_deps", "machine", "Tolerances", "compare_tables", "verify", "main"]

ROOT_PACKAGE = "bilevel"


# --------------------------------------------------------------------------- dependencies
def _resolve(node: ast.ImportFrom, current: str, is_package: bool) -> str:
    """Absolute module name of a (possibly relative) ``from ... import``."""
    if not node.level:
        return node.module or ""
    parts = current.split(".")
    base = parts if is_package else parts[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imported_modules(source: str, current: str = "", is_package: bool = False) -> set[str]:
    """Names of the ``bilevel`` modules (or candidates ``pkg.name``) that ``source`` imports."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            mod = _resolve(node, current, is_package)
            out.add(mod)
            out.update(f"{mod}.{a.name}" for a in node.names)  # may be submodules
    return {m for m in out if m == ROOT_PACKAGE or m.startswith(ROOT_PACKAGE + ".")}


def _module_file(name: str, root: Path) -> Path | None:
    rel = Path(*name.split("."))
    for cand in (root / rel / "__init__.py", root / rel.with_suffix(".py")):
        if cand.is_file():
            return cand
    return None


def _notebook_source(path: Path) -> str:
    cells = json.loads(path.read_text())["cells"]
    code = []
    for c in cells:
        if c.get("cell_type") == "code":
            src = "".join(c["source"])
            # IPython magics and shell escapes are not Python
            code.append("\n".join(l for l in src.splitlines() if not l.lstrip().startswith(("%", "!"))))
    return "\n".join(code)


def import_closure(modules, root: Path) -> set[Path]:
    """Files (relative to ``root``) of ``modules``, their parent packages and everything
    they import from the project, transitively."""
    seen: set[str] = set()
    files: set[Path] = set()
    todo = list(modules)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        f = _module_file(name, root)
        if f is None:
            continue  # an attribute imported from a module, not a module
        files.add(f.relative_to(root))
        parts = name.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))
        todo.extend(imported_modules(f.read_text(), name, f.name == "__init__.py"))
    return files


_NOTEBOOK_CMD = re.compile(r"python\s+-m\s+bilevel\.notebook\s+(\S+\.ipynb)")
_MODULE_CMD = re.compile(r"python\s+-m\s+(bilevel(?:\.\w+)*)")


def stage_requirements(cmd: str, root: Path) -> set[str]:
    """Project files a stage command needs: its notebook and the modules it imports."""
    need: set[str] = set()
    mods = set(_MODULE_CMD.findall(cmd))
    nb = _NOTEBOOK_CMD.search(cmd)
    if nb:
        need.add(nb.group(1))
        mods |= imported_modules(_notebook_source(root / nb.group(1)))
    for m in list(mods):
        if _module_file(m + ".__main__", root):
            mods.add(m + ".__main__")
    need |= {str(p) for p in import_closure(mods, root)}
    return need


def _covered(path: str, deps: list[str]) -> bool:
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in deps)


def _load_dvc(path: Path):
    from ruamel.yaml import YAML
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096
    yaml.indent(mapping=2, sequence=4, offset=2)
    return yaml, yaml.load(path.read_text())


def missing_deps(dvc_yaml: Path) -> dict[str, list[str]]:
    """Per stage, the project files its command uses but its ``deps`` do not list."""
    root = dvc_yaml.parent
    _, doc = _load_dvc(dvc_yaml)
    out = {}
    for name, stage in doc["stages"].items():
        deps = [d if isinstance(d, str) else next(iter(d)) for d in stage.get("deps", [])]
        miss = sorted(p for p in stage_requirements(str(stage["cmd"]), root) if not _covered(p, deps))
        if miss:
            out[name] = miss
    return out


def write_deps(dvc_yaml: Path) -> dict[str, list[str]]:
    """Rewrite each stage's ``deps``: its data inputs, then the derived project files.

    Non-project deps (data files, results) are kept in order; ``bilevel/`` files
    the command no longer imports are dropped. Returns what was added per stage.
    """
    root = dvc_yaml.parent
    yaml, doc = _load_dvc(dvc_yaml)
    added = {}
    for name, stage in doc["stages"].items():
        old = [d if isinstance(d, str) else next(iter(d)) for d in stage.get("deps", [])]
        need = stage_requirements(str(stage["cmd"]), root)
        keep = [d for d in old if not d.startswith(ROOT_PACKAGE + "/") and d not in need]
        code = sorted(need - set(keep), key=lambda p: (not p.endswith(".ipynb"), p))
        new = [d for d in code if d.endswith(".ipynb")] + keep + [d for d in code if not d.endswith(".ipynb")]
        if new != old:
            stage["deps"] = new
            added[name] = sorted(set(new) - set(old))
    buf = io.StringIO()
    yaml.dump(doc, buf)
    dvc_yaml.write_text(buf.getvalue())
    return added


# --------------------------------------------------------------------------- verification
def machine(cpuinfo: str | None = None) -> dict:
    """The CPU and numerical libraries of this machine (what moves results across machines).

    ``vendor`` (``GenuineIntel``, ``AuthenticAMD``, ...) decides which rules of
    ``tolerances.yaml`` apply: MKL's conditional numerical reproducibility
    (``MKL_CBWR=AVX2``) is documented for Intel CPUs, and on other vendors MKL runs its
    AUTO branch, so the pinned runtime gives the same bytes across CPUs of one vendor only.
    ``cpuinfo``: the text of ``/proc/cpuinfo`` (read when None; absent off Linux).
    """
    from importlib import metadata
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    fields = {}
    for line in cpuinfo.split("\n\n")[0].splitlines():
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    info = {"vendor": fields.get("vendor_id", ""), "model": fields.get("model name", platform.processor()),
            "family": fields.get("cpu family", ""), "model_number": fields.get("model", ""),
            "arch": platform.machine()}
    for lib in ("torch", "numpy"):
        try:
            info[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            info[lib] = None
    return info


@dataclass(frozen=True)
class Tolerances:
    """Comparison rules, read from ``data/results/tolerances.yaml``.

    ``rtol``/``atol``: default for numeric columns (|new - old| <= atol + rtol*|old|);
    ``wall_time``: regexes of column names that are wall-clock measurements
    (reported, never compared); ``files``: per glob (relative to data/results),
    per column (``"*"``: every column), ``{rtol, atol, why}`` overrides, or ``wall_time: true``
    (a claims file marked so has its verdicts reported, not compared).
    ``across_vendors``: the same per-file, per-column rules, applied on top only when the
    committed results come from a CPU of another vendor; besides ``rtol``/``atol`` a rule
    may say ``machine_dependent: true`` (reported, not compared across vendors), and a
    claims file's ``verdict:<id>`` key marks one claim's verdict so.
    """

    rtol: float = 0.0
    atol: float = 0.0
    wall_time: tuple = (r"(^|_)(time|runtime|wall_time|elapsed)(_s)?($|_)",)
    files: tuple = ()
    across_vendors: tuple = ()

    @classmethod
    def load(cls, path: Path | None) -> "Tolerances":
        if path is None or not Path(path).exists():
            return cls()
        import yaml
        data = yaml.safe_load(Path(path).read_text()) or {}
        unknown = set(data) - {"rtol", "atol", "wall_time", "files", "across_vendors"}
        if unknown:
            raise ValueError(f"{path}: unknown keys {sorted(unknown)}; expected rtol, atol, "
                             "wall_time, files, across_vendors.")

        def rules(key):
            return tuple((g, dict(cols)) for g, cols in (data.get(key) or {}).items())
        return cls(float(data.get("rtol", 0.0)), float(data.get("atol", 0.0)),
                   tuple(data.get("wall_time", cls.wall_time)), rules("files"), rules("across_vendors"))

    def rule(self, rel: str, column: str, across_vendors: bool = False) -> dict:
        rule = {"rtol": self.rtol, "atol": self.atol, "wall_time": False, "machine_dependent": False}
        if any(re.search(p, column) for p in self.wall_time):
            rule["wall_time"] = True
        for glob, cols in self.files + (self.across_vendors if across_vendors else ()):
            if fnmatch.fnmatch(rel, glob):
                rule.update(cols.get("*", {}))          # "*": every column of the file
                rule.update(cols.get(column, {}))
        return rule


def _is_numeric(s) -> bool:
    import pandas as pd
    return pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)


def compare_tables(old, new, rel: str, tol: Tolerances, across_vendors: bool = False) -> list[dict]:
    """One row per column: max relative difference, tolerance and verdict.

    ``across_vendors``: the committed table comes from a CPU of another vendor, so the
    tolerances' ``across_vendors`` rules apply too."""
    import numpy as np
    rows = []
    if list(old.columns) != list(new.columns):
        gone = [c for c in old.columns if c not in new.columns]
        extra = [c for c in new.columns if c not in old.columns]
        return [dict(file=rel, column="(columns)", diff=f"missing {gone}, new {extra}",
                     tolerance="identical", verdict="MOVED")]
    if len(old) != len(new):
        return [dict(file=rel, column="(rows)", diff=f"{len(old)} -> {len(new)} rows",
                     tolerance="identical", verdict="MOVED")]
    for col in old.columns:
        rule = tol.rule(rel, col, across_vendors)
        a, b = old[col], new[col]
        if _is_numeric(a) and _is_numeric(b):
            x, y = a.to_numpy(float), b.to_numpy(float)
            same_nan = np.isnan(x) == np.isnan(y)
            equal = (x == y) | (np.isnan(x) & np.isnan(y))       # inf == inf counts as equal
            with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
                d = np.where(equal, 0.0, np.abs(y - x))
                d = np.where(np.isnan(d), np.inf, d)
                scale = np.where(np.isfinite(x), np.abs(x), np.inf)
                relv = np.where(d == 0, 0.0, np.where(scale > 0, d / scale, np.inf))
            maxrel = float(np.max(relv)) if len(relv) else 0.0
            within = bool(np.all(same_nan) and np.all(
                equal | (np.isfinite(d) & (d <= rule["atol"] + rule["rtol"] * np.where(np.isfinite(scale), scale, 0)))))
            diff = "0" if maxrel == 0 else f"{maxrel:.3g}"
            if not np.all(same_nan):
                diff += " (NaN pattern changed)"
            tolerance = f"rtol {rule['rtol']:g}" + (f", atol {rule['atol']:g}" if rule["atol"] else "")
        else:
            eq = (a.astype(str) == b.astype(str)) | (a.isna() & b.isna())   # pandas 3: str NaN != NaN
            within = bool(eq.all())
            diff = "identical" if within else f"{int((~eq).sum())} values differ"
            tolerance = "identical"
        if rule["wall_time"]:
            verdict, tolerance = "wall time (not compared)", "-"
        elif rule["machine_dependent"]:
            verdict, tolerance = "machine-dependent (not compared across CPU vendors)", "-"
        else:
            verdict = "ok" if within else "MOVED"
        rows.append(dict(file=rel, column=col, diff=diff, tolerance=tolerance, verdict=verdict,
                         why=rule.get("why", "")))
    return rows


def _git(args, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True)


MACHINE_FILE = "machine.json"


def vendors_differ(then: dict | None, now: dict) -> bool:
    """Whether the committed results' machine (``then``, None if unrecorded) has another CPU vendor
    than ``now``'s; False when either vendor is unknown."""
    return bool(then and then.get("vendor") and now.get("vendor") and then["vendor"] != now["vendor"])


def committed_machine(root: Path, rev: str = "HEAD", results: str = "data/results") -> dict | None:
    """``rev``'s record of the machine that produced its results (None if it has none)."""
    shown = _git(["show", f"{rev}:{results}/{MACHINE_FILE}"], root)
    if shown.returncode:
        return None
    try:
        return json.loads(shown.stdout.decode())
    except ValueError:
        return None


def verify(root: Path, rev: str = "HEAD", results: str = "data/results",
           tolerances: str | None = "data/results/tolerances.yaml",
           across_vendors: bool | None = None) -> tuple[list[dict], list[dict], list[str]]:
    """Compare the working tree's tables under ``results`` with ``rev``'s.

    ``across_vendors``: apply the tolerances' cross-vendor rules; None decides it from
    ``rev``'s ``machine.json`` and this machine (:func:`machine`): when both vendors are
    known and differ. Returns (column rows, claim rows, problems); any row whose verdict
    is ``MOVED`` and every problem count as a failed reproduction.
    """
    import pandas as pd
    tol = Tolerances.load(root / tolerances if tolerances else None)
    ls = _git(["ls-tree", "-r", "--name-only", rev, "--", results], root)
    if ls.returncode:
        raise ValueError(f"git ls-tree {rev} failed: {ls.stderr.decode().strip()}; "
                         "run verify inside the repository, against a commit that exists.")
    if across_vendors is None:
        across_vendors = vendors_differ(committed_machine(root, rev, results), machine())
    committed = sorted(p for p in ls.stdout.decode().split("\n") if p.endswith(".csv"))
    present = sorted(str(p.relative_to(root)) for p in (root / results).rglob("*.csv"))
    rows, claim_rows, problems = [], [], []
    for path in committed:
        rel = path[len(results) + 1:]
        if not (root / path).exists():
            problems.append(f"{path}: committed but not regenerated")
            continue
        old = pd.read_csv(io.BytesIO(_git(["show", f"{rev}:{path}"], root).stdout))
        new = pd.read_csv(root / path)
        rows += compare_tables(old, new, rel, tol, across_vendors)
        if path.endswith("_claims.csv") and "verdict" in old and "verdict" in new:
            o, n = old.set_index("id")["verdict"], new.set_index("id")["verdict"]
            for cid in sorted(set(o.index) | set(n.index)):
                ov, nv = o.get(cid, "(absent)"), n.get(cid, "(absent)")
                if tol.rule(rel, "verdict", across_vendors)["wall_time"]:
                    verdict = "wall time (not compared)"
                elif tol.rule(rel, f"verdict:{cid}", across_vendors)["machine_dependent"]:
                    verdict = "machine-dependent (not compared across CPU vendors)"
                else:
                    verdict = "ok" if ov == nv else "MOVED"
                claim_rows.append(dict(file=rel, claim=cid, committed=ov, rerun=nv, verdict=verdict))
    for path in present:
        if path not in committed:
            problems.append(f"{path}: new table, not in {rev} (commit it to compare next time)")
    return rows, claim_rows, problems


def _describe(m: dict | None) -> str:
    if not m:
        return "not recorded"
    return f"{m.get('model') or '?'} ({m.get('vendor') or '?'}), torch {m.get('torch')}, numpy {m.get('numpy')}"


def report_markdown(rows, claim_rows, problems, rev: str,
                    machines: tuple[dict | None, dict] | None = None,
                    across_vendors: bool = False) -> tuple[str, bool]:
    """The markdown report and whether the rerun reproduced (nothing moved, nothing missing).

    ``machines``: (the committed results' machine, this machine), named in the report;
    ``across_vendors``: whether :func:`verify` applied the cross-vendor rules (said in the report)."""
    moved = [r for r in rows if r["verdict"] == "MOVED"]
    cmoved = [r for r in claim_rows if r["verdict"] == "MOVED"]
    failed = [p for p in problems if "not regenerated" in p]
    ok = not (moved or cmoved or failed)
    dependent = [r for r in rows + claim_rows if r["verdict"].startswith("machine-dependent")]
    lines = [f"# Reproduction report (against {rev})", "",
             f"**{'REPRODUCED' if ok else 'NOT REPRODUCED'}**: "
             f"{len(rows)} columns compared in {len({r['file'] for r in rows})} tables, "
             f"{len(moved)} moved beyond tolerance; {len(claim_rows)} claim verdicts, "
             f"{len(cmoved)} changed; wall-time columns are reported, never compared"
             + (f"; {len(dependent)} columns or verdicts are machine-dependent across CPU vendors "
                "(reported, not compared)" if dependent else "") + ".", ""]
    if machines is not None:
        then, now = machines
        lines += [f"- committed results: {_describe(then)}", f"- this rerun: {_describe(now)}"]
    differ = machines is not None and vendors_differ(*machines)
    if differ or across_vendors:
        lines.append(("- the CPU vendors differ: " if differ else "- ")
                     + ("the `across_vendors` rules of the tolerances applied (data/results/TOLERANCES.md, "
                        "section 'Across CPU vendors')" if across_vendors else
                        "the `across_vendors` rules were not applied (--across-vendors no)"))
    if machines is not None or across_vendors:
        lines.append("")
    if problems:
        lines += ["## Problems", ""] + [f"- {p}" for p in problems] + [""]
    if claim_rows:
        lines += ["## Claim verdicts", "", "| file | claim | committed | rerun | verdict |",
                  "|---|---|---|---|---|"]
        lines += [f"| {r['file']} | {r['claim']} | {r['committed']} | {r['rerun']} | {r['verdict']} |"
                  for r in claim_rows] + [""]
    lines += ["## Columns", "", "| file | column | max relative difference | tolerance | verdict |",
              "|---|---|---|---|---|"]
    lines += [f"| {r['file']} | {r['column']} | {r['diff']} | {r['tolerance']}"
              f"{' (' + r['why'] + ')' if r.get('why') else ''} | {r['verdict']} |" for r in rows]
    return "\n".join(lines) + "\n", ok


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bilevel.repro", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("deps", help="check (or --write) the project-module deps of dvc.yaml")
    d.add_argument("--dvc-yaml", default="dvc.yaml")
    d.add_argument("--write", action="store_true")
    v = sub.add_parser("verify", help="compare regenerated results with a commit")
    v.add_argument("--rev", default="HEAD")
    v.add_argument("--results", default="data/results")
    v.add_argument("--tolerances", default="data/results/tolerances.yaml")
    v.add_argument("--report", default="build/reproduction-report.md")
    v.add_argument("--across-vendors", choices=["auto", "yes", "no"], default="auto",
                   help="apply the cross-vendor tolerances: auto = when REV's machine.json names "
                        "another CPU vendor than this machine's")
    m = sub.add_parser("machine", help="print (or --write) this machine's CPU and library versions")
    m.add_argument("--write", metavar="PATH", help="write the JSON there (e.g. data/results/machine.json)")
    args = ap.parse_args(argv)
    root = Path.cwd()
    if args.cmd == "machine":
        text = json.dumps(machine(), indent=2, sort_keys=True) + "\n"
        if args.write:
            from .io import atomic_path
            with atomic_path(Path(args.write)) as tmp:
                tmp.write_text(text)
        else:
            print(text, end="")
        return 0
    if args.cmd == "deps":
        path = Path(args.dvc_yaml)
        if not path.is_file():
            print(f"error: {path} not found; run from the repository root.", file=sys.stderr)
            return 2
        if args.write:
            for stage, new in write_deps(path).items():
                print(f"{stage}: + {', '.join(new) if new else '(reordered / pruned)'}")
            return 0
        miss = missing_deps(path)
        for stage, files in miss.items():
            print(f"{stage}: missing deps {', '.join(files)}")
        if miss:
            print("fix: python -m bilevel.repro deps --write", file=sys.stderr)
        return 1 if miss else 0
    machines = (committed_machine(root, args.rev, args.results), machine())
    across = {"auto": vendors_differ(*machines), "yes": True, "no": False}[args.across_vendors]
    try:
        rows, claim_rows, problems = verify(root, args.rev, args.results, args.tolerances, across)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    text, ok = report_markdown(rows, claim_rows, problems, args.rev, machines, across)
    from .io import atomic_path
    with atomic_path(Path(args.report)) as tmp:
        tmp.write_text(text)
    for r in rows:
        if r["verdict"] == "MOVED":
            print(f"MOVED: {r['file']} {r['column']}: {r['diff']} (tolerance {r['tolerance']})")
    for r in claim_rows:
        if r["verdict"] == "MOVED":
            print(f"MOVED: {r['file']} {r['claim']}: {r['committed']} -> {r['rerun']} "
                  "(tolerance identical verdict)")
    for p in problems:
        print(p)
    header = itertools.takewhile(lambda line: not line.startswith("## "), text.splitlines()[2:])
    print("\n".join(line for line in header if line))       # the verdict and the machines
    print(f"report: {args.report}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
