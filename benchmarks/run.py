"""Run every benchmark (``make benchmark``); each writes its CSV under benchmarks/results/.

The numbers are summarised, with the machine they were measured on, in
benchmarks/REPORT.md. Benchmarks are never part of the test suite.
``benchmarks.peers`` (TorchOpt, benchmark_bilevel's JAX solvers) is run on its own: it needs the
``[peers]`` extra and a benchmark_bilevel checkout (see its docstring).
"""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = ["benchmarks.core_overhead", "benchmarks.solver_table", "benchmarks.scaling",
              "benchmarks.compile_oracles", "benchmarks.x_only_terms"]


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    for name in BENCHMARKS:
        print(f"== {name}", flush=True)
        importlib.import_module(name).main(argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
