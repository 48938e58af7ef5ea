"""Experiment drivers: the one library call each notebook makes.

Each driver builds the problems and solvers of one paper experiment, runs them
through :func:`bilevel.run` and returns tidy tables (one row per (run,
iteration) or per (run, summary)) with the parameters as columns. No file I/O
here: notebooks save the tables with :mod:`bilevel.io`.
"""
