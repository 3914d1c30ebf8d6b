"""Rollout engines (vLLM, transformers) behind one contract, Ray actor groups, weight sync.

Nothing is imported here: the apply's driver uses pool.py without loading torch."""
