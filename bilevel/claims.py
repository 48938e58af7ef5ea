"""Claims tables: a paper's claims checked on measured numbers, one row per claim.

Every figure notebook ends with a claims table: which claim of the paper, what it
says, the measured value(s), the paper's number where it gives one, and whether the
claim holds on these results. A claim that does not hold stays in the table (never
swapped for an easier one); the notebook says so, the pipeline goes on, and
``make verify`` compares each verdict with the committed one.

The checks are small pure functions of numbers so that a unit test can feed them
counterfactual data and see them fail:

* :func:`within` -- two-sided: the measured value lies in ``[low, high]`` (use it
  wherever the paper gives a number);
* :func:`interval_within` -- a fitted value's confidence interval lies in ``[low, high]``;
* :func:`all_true` -- a per-point condition over every point (never a selected subset).

>>> c = within("slope", "ITD's plateau grows like kappa^2", 2.03, 1.9, 2.1, paper="2")
>>> c.holds, c.measured
(True, 2.03)
>>> within("slope", "same", 2.5, 1.9, 2.1).holds
False
>>> table([c]).loc[0, "verdict"]
'holds'
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Sequence

import pandas as pd

__all__ = ["Claim", "within", "interval_within", "all_true", "table", "save", "metrics", "report",
           "VERDICTS"]

#: the verdict strings, as written to the claims CSV and the DVC metrics
VERDICTS = {True: "holds", False: "does not hold", None: "not tested"}


@dataclass(frozen=True)
class Claim:
    """One checked claim.

    ``measured`` is a number (the quantity the check is about) or a short text
    listing several; ``holds`` is ``None`` when the data cannot test the claim
    (e.g. too few points at smoke scale) -- ``reason`` then says why.
    """

    id: str
    statement: str
    measured: float | str
    holds: bool | None
    paper: str = ""
    criterion: str = ""
    reason: str = ""

    def __post_init__(self):
        if not self.id or not self.id.replace("_", "").isalnum():
            raise ValueError(f"claim id {self.id!r} must be a non-empty snake_case word; "
                             "it names the claim in the claims CSV and the DVC metrics.")
        if self.holds not in (True, False, None):
            raise ValueError(f"claim {self.id}: holds must be True, False or None, got "
                             f"{self.holds!r}.")


def _number(x) -> float:
    x = float(x)
    if not math.isfinite(x):
        raise ValueError(f"measured value {x} is not finite: a run diverged or a fit failed; "
                         "report the run instead of checking a claim on it.")
    return x


def within(id: str, statement: str, measured, low: float, high: float, paper: str = "",
           reason: str = "") -> Claim:
    """Two-sided check ``low <= measured <= high``."""
    if not low <= high:
        raise ValueError(f"claim {id}: empty range [{low}, {high}].")
    m = _number(measured)
    return Claim(id, statement, m, bool(low <= m <= high), paper,
                 f"{low:g} <= measured <= {high:g}", reason)


def interval_within(id: str, statement: str, estimate, ci: Sequence[float], low: float,
                    high: float, paper: str = "", reason: str = "") -> Claim:
    """A fitted value whose confidence interval ``ci`` must lie inside ``[low, high]``.

    The measured column reads ``estimate [ci_low, ci_high]``.
    """
    lo, hi = (_number(v) for v in ci)
    est = _number(estimate)
    if not lo <= est <= hi:
        raise ValueError(f"claim {id}: estimate {est} lies outside its interval [{lo}, {hi}].")
    return Claim(id, statement, f"{est:.3g} [{lo:.3g}, {hi:.3g}]",
                 bool(low <= lo and hi <= high), paper,
                 f"interval within [{low:g}, {high:g}]", reason)


def all_true(id: str, statement: str, conditions: Iterable[bool], labels: Iterable = (),
             paper: str = "", reason: str = "") -> Claim:
    """A condition that must hold at *every* point (kappa, K, seed, ...).

    ``measured`` reports how many points hold and lists the failing ones by label.
    An empty set of points is an error: a claim tested on nothing would hold vacuously.
    """
    conds = [bool(c) for c in conditions]
    labels = list(labels) or list(range(len(conds)))
    if not conds:
        raise ValueError(f"claim {id}: no points to test; a claim over an empty set cannot fail.")
    if len(labels) != len(conds):
        raise ValueError(f"claim {id}: {len(labels)} labels for {len(conds)} conditions.")
    failing = [lab for lab, c in zip(labels, conds) if not c]
    measured = f"{len(conds) - len(failing)}/{len(conds)} hold"
    if failing:
        measured += "; fails at " + ", ".join(map(str, failing[:8])) + (" ..." if len(failing) > 8 else "")
    return Claim(id, statement, measured, not failing, paper, "at every point", reason)


def table(claims: Iterable[Claim]) -> pd.DataFrame:
    """The claims as a tidy table (one row per claim, ``verdict`` in words)."""
    rows = [asdict(c) for c in claims]
    ids = [r["id"] for r in rows]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise ValueError(f"duplicate claim ids {dup}: each claim needs its own id.")
    df = pd.DataFrame(rows, columns=["id", "statement", "measured", "paper", "criterion",
                                     "holds", "reason"])
    df["measured"] = df["measured"].astype(str)
    df["verdict"] = [VERDICTS[h] for h in df["holds"]]
    return df


def _finite_or_none(v):
    """JSON has no NaN: a number that is undefined (too few points to fit) becomes null."""
    if isinstance(v, (int, float)):
        return float(v) if math.isfinite(v) else None
    return v


def metrics(claims: Iterable[Claim], numbers: dict | None = None) -> dict:
    """DVC metrics: each claim's verdict (and number, when numeric) plus key numbers."""
    out: dict = {"claims": {}}
    for c in claims:
        entry = {"verdict": VERDICTS[c.holds]}
        if isinstance(c.measured, (int, float)):
            entry["measured"] = _finite_or_none(c.measured)
        out["claims"][c.id] = entry
    if numbers:
        out["numbers"] = {k: _finite_or_none(v) for k, v in numbers.items()}
    return out


def save(claims: Sequence[Claim], results_dir, name: str, numbers: dict | None = None) -> pd.DataFrame:
    """Write ``<results_dir>/<name>_claims.csv`` and ``<name>_metrics.json``; return the table.

    ``numbers`` holds a figure's key numbers (fitted exponents, plateau levels, ...)
    that ``dvc metrics show`` and ``dvc exp show`` should list beside the verdicts.
    """
    from .io import save_json, save_table
    claims = list(claims)
    df = table(claims)
    results_dir = Path(results_dir)
    save_table(df, results_dir / f"{name}_claims.csv")
    save_json(metrics(claims, numbers), results_dir / f"{name}_metrics.json")
    return df


def report(claims: Iterable[Claim]) -> str:
    """One line per claim that does not hold or is not tested, with its numbers.

    A notebook prints it above the claims table, so a claim that does not reproduce
    is said in words ("does not reproduce: ...") and not only in the verdict column.
    """
    lines = []
    for c in claims:
        if c.holds is False:
            lines.append(f"does not reproduce: [{c.id}] {c.statement}: measured {c.measured} "
                         f"({c.criterion}; paper: {c.paper or '-'})")
        elif c.holds is None:
            lines.append(f"not tested: [{c.id}] {c.statement}: {c.reason}")
    return "\n".join(lines) if lines else "every claim holds on these results"
