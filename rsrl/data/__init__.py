"""Data: sources, per-stage mixtures, packing, and the built-in synthetic corpora."""
