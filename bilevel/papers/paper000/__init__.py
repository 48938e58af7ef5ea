"""Paper 000: SSAID (stochastic AID): synthetic ε- and κ-scaling runs. Texts: ``shared/papers/000*``."""
