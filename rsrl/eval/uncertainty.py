"""Uncertainty over problems: every suite number is a mean over problems, so its noise is
the spread of the per-problem values.

- `standard_error(values)`: sample standard deviation / sqrt(count), the usual error of a
  mean over independently drawn problems (0 for a single problem: nothing to spread).
- `paired_difference(before, after)`: the mean of per-problem differences and its standard
  error. Pairing by problem removes the problems' own difficulty from the noise, which is
  what makes a small RL gain detectable on a few hundred problems.
- `bootstrap_interval(values)`: a percentile interval of the mean from resampling problems
  with replacement; used for Pass@k, whose per-problem values are far from normal (most
  problems sit at 0 or 1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

BOOTSTRAP_RESAMPLES = 2000
INTERVAL_LEVEL = 0.95
Z_95 = 1.959964  # two-sided 95% point of the standard normal


def standard_error(values: Sequence[float]) -> float:
    """std(values, ddof=1) / sqrt(len(values)); 0.0 for one value."""
    if len(values) == 0:
        raise ValueError("no values to take a standard error of")
    if len(values) == 1:
        return 0.0
    return float(np.std(np.asarray(values, dtype=np.float64), ddof=1) / math.sqrt(len(values)))


def paired_difference(before: Sequence[float], after: Sequence[float]) -> dict[str, float]:
    """{"mean", "se", "z"} of after - before, paired by position (the same problem)."""
    if len(before) != len(after):
        raise ValueError(f"paired values differ in length: {len(before)} vs {len(after)}")
    diff = np.asarray(after, dtype=np.float64) - np.asarray(before, dtype=np.float64)
    mean, se = float(diff.mean()), standard_error(diff.tolist())
    z = mean / se if se > 0 else (0.0 if mean == 0 else math.copysign(math.inf, mean))
    return {"mean": mean, "se": se, "z": z}


def bootstrap_interval(
    values: Sequence[float],
    level: float = INTERVAL_LEVEL,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> list[float]:
    """[low, high]: the percentile interval of the mean of `values` over `resamples`
    resamples of the problems with replacement (seeded, so a report is reproducible)."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        raise ValueError("no values to bootstrap")
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(resamples, x.size))].mean(axis=1)
    tail = (1 - level) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return [float(low), float(high)]


# Two-sided 95% points of Student's t by degrees of freedom (beyond the table: the normal's).
T_95 = {
    1: 12.706,
    2: 4.303,
    3: 3.182,
    4: 2.776,
    5: 2.571,
    6: 2.447,
    7: 2.365,
    8: 2.306,
    9: 2.262,
    10: 2.228,
    15: 2.131,
    20: 2.086,
    30: 2.042,
}


def t_interval(values: Sequence[float]) -> dict[str, float]:
    """{"mean", "se", "low", "high"}: the 95% Student-t interval of the mean of a few
    replicates (seeds); with one value the interval is unknown (nan)."""
    mean = float(np.mean(values))
    if len(values) < 2:
        return {"mean": mean, "se": math.nan, "low": math.nan, "high": math.nan}
    se = standard_error(values)
    df = len(values) - 1
    # Between table entries, the next smaller df: a slightly wider (conservative) interval.
    t = T_95[max(d for d in T_95 if d <= df)] if df <= max(T_95) else Z_95
    return {"mean": mean, "se": se, "low": mean - t * se, "high": mean + t * se}


def covers_zero(mean: float, se: float) -> bool:
    """True when the 95% normal interval mean +- 1.96 se contains 0: no detectable difference."""
    return abs(mean) <= Z_95 * se
