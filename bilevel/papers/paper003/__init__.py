"""Paper 003: Ji et al. (2022), will bilevel optimizers benefit from loops. Texts: ``shared/papers/003*``."""
