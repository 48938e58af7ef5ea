"""Paper 001: sharper analysis of single-loop AID/ITD (anonymous ICLR 2026 submission). Texts: ``shared/papers/001*``."""
