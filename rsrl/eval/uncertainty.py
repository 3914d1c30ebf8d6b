"""Uncertainty over problems: every suite number is a mean over problems, so its noise is
the spread of the per-problem values.

- `standard_error(values)`: sample standard deviation / sqrt(count), the usual error of a
  mean over independently drawn problems (nan for a single problem: one value says nothing
  about the spread, and an error of 0 would read as certainty).
- `paired_difference(before, after)`: the mean of per-problem differences and its standard
  error. Pairing by problem removes the problems' own difficulty from the noise, which is
  what makes a small RL gain detectable on a few hundred problems.
- `bootstrap_interval(values)`: a percentile interval of the mean from resampling problems
  with replacement; used for Pass@k, whose per-problem values are far from normal (most
  problems sit at 0 or 1).
- `t_interval(values)`: the Student-t interval of a mean over a few replicates (seeds).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

BOOTSTRAP_RESAMPLES = 2000
INTERVAL_LEVEL = 0.95
Z_95 = 1.959964  # two-sided 95% point of the standard normal


def standard_error(values: Sequence[float]) -> float:
    """std(values, ddof=1) / sqrt(len(values)); nan for one value."""
    if len(values) == 0:
        raise ValueError("no values to take a standard error of")
    if len(values) == 1:
        return math.nan
    return float(np.std(np.asarray(values, dtype=np.float64), ddof=1) / math.sqrt(len(values)))


def paired_difference(before: Sequence[float], after: Sequence[float]) -> dict[str, float]:
    """{"mean", "se", "z"} of after - before, paired by position (the same problem).

    z is nan where it is undefined: one problem (se nan), or differences all alike (se 0),
    where the reading comes from the mean alone; it is never infinite."""
    if len(before) != len(after):
        raise ValueError(f"paired values differ in length: {len(before)} vs {len(after)}")
    diff = np.asarray(after, dtype=np.float64) - np.asarray(before, dtype=np.float64)
    mean, se = float(diff.mean()), standard_error(diff.tolist())
    z = mean / se if se > 0 else math.nan
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


def t_interval(values: Sequence[float], level: float = INTERVAL_LEVEL) -> dict[str, float]:
    """{"mean", "se", "low", "high"}: the Student-t interval (len - 1 degrees of freedom) of
    the mean of a few replicates (seeds), where the normal's 1.96 would be too narrow; with
    one value the spread, and so the interval, is unknown (nan)."""
    from scipy import stats  # seconds to import: only where an interval is taken

    mean = float(np.mean(values))
    se = standard_error(values)
    if math.isnan(se):
        return {"mean": mean, "se": se, "low": math.nan, "high": math.nan}
    half = float(stats.t.ppf(0.5 + level / 2, len(values) - 1)) * se
    return {"mean": mean, "se": se, "low": mean - half, "high": mean + half}


def covers_zero(mean: float, se: float) -> bool:
    """True when the 95% normal interval mean +- 1.96 se contains 0: no detectable difference."""
    return abs(mean) <= Z_95 * se
