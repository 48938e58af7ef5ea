"""Paper 004: tutorial slides on stochastic bilevel algorithms. Texts: ``shared/papers/004*``."""
