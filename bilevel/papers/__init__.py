"""One folder per paper: everything a paper needs and nothing general.

``bilevel/papers/paperNNN/`` mirrors ``notebooks/paperNNN/``:

* ``experiments.py`` -- the drivers (the one library call each notebook makes) and the claims;
* ``figures.py``     -- the figure functions (tidy tables in, a figure out; papers 000 and 004,
  with a few small figures each, keep them at the end of ``experiments.py``);
* ``bounds.py``      -- the theory curves, each with its theorem number (paper 001).

Drivers build the problems and solvers of one experiment, run them through :func:`bilevel.run`
and return tidy tables (one row per (run, iteration) or per (run, summary)) with the parameters
as columns. No file I/O here: notebooks save the tables with :mod:`bilevel.io`.

The library (everything in ``bilevel/`` outside this folder) never imports a paper
(``tests/test_layout.py``).
"""
