"""A stage's mixture: how many packed rows each source gets, and in which order they come.

The budget `tokens` becomes ceil(tokens / seq_len) rows (each row trains seq_len targets).
Rows are shared between sources in proportion to their weights (largest remainder, so
the counts add up exactly), and interleaved by a seeded shuffle: the same spec gives the
same order, and every stretch of the stage sees the sources in about their proportions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def rows_for_budget(tokens: int, seq_len: int) -> int:
    return math.ceil(tokens / seq_len)


def split_rows(total: int, weights: Sequence[float]) -> list[int]:
    """`total` rows shared in proportion to `weights`; the shares sum to `total` exactly."""
    scale = total / sum(weights)
    shares = [w * scale for w in weights]
    rows = [math.floor(s) for s in shares]
    by_remainder = sorted(range(len(shares)), key=lambda i: rows[i] - shares[i])
    for i in by_remainder[: total - sum(rows)]:
        rows[i] += 1
    return rows


def blend_order(rows_per_source: Sequence[int], seed: int) -> np.ndarray:
    """Source index of each output row: rows_per_source[i] entries i, in a seeded order."""
    order = np.repeat(np.arange(len(rows_per_source), dtype=np.int32), rows_per_source)
    np.random.default_rng(seed).shuffle(order)
    return order


def rank_within_source(order: np.ndarray, num_sources: int) -> np.ndarray:
    """For each output row, which row of its own source it is (0, 1, 2, ... per source)."""
    ranks = np.empty(len(order), dtype=np.int64)
    for i in range(num_sources):
        where = np.flatnonzero(order == i)
        ranks[where] = np.arange(len(where))
    return ranks
