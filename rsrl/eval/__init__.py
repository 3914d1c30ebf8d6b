"""Evaluation: sample-based metrics (Pass@k, Avg@k, Cons@k), held-out perplexity and entropy,
and the eval stage that writes them to `metrics.json`."""
