"""Paper 002: UniBiO: bilevel optimization with a uniformly convex lower level. Texts: ``shared/papers/002*``."""
