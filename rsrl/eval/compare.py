"""Comparing an arm with a baseline arm over seeds, as a reviewer would accept it.

Arms run with the same seeds, so each arm is compared with the baseline paired by seed (a
one-sample t-test on the per-seed differences): the seed's own luck (initialisation, data
order) cancels. A sweep compares many arms on many metrics, so the decisions use Holm's
correction over the whole table, not each comparison's own p. Each comparison also says
how small a difference its seeds could have detected (`mde`) and how many seeds the
observed difference would need (`seeds_needed`), both at 80% power and the uncorrected
two-sided alpha 0.05 (`POWER_ALPHA`): a per-comparison planning figure; under Holm more
seeds are needed.

statsmodels and scipy take seconds to import, so they load inside the functions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from rsrl.eval.uncertainty import t_interval

ALPHA = 0.05  # decisions: Holm-adjusted p below this
POWER = 0.8
POWER_ALPHA = 0.05  # mde and seeds_needed: uncorrected, two-sided
CORRECTION = "holm"
ROUNDING = 1e-9  # a mean difference below this many sds is 0 up to floating-point rounding

ONE_SEED = "one seed: no interval"
NO_PAIRS = "no paired seeds"
NO_DIFFERENCE = "no detectable difference"


def paired_comparison(values: Sequence[float], baseline: Sequence[float]) -> dict[str, Any]:
    """values - baseline, paired by position (the same seed): {"diff", "se", "ci_low",
    "ci_high", "p", "mde", "seeds", "seeds_needed"}. With fewer than two seeds the spread is
    unknown: se, interval, p and mde are nan and seeds_needed None."""
    if len(values) != len(baseline):
        raise ValueError(f"paired values differ in length: {len(values)} vs {len(baseline)}")
    d = np.asarray(values, dtype=np.float64) - np.asarray(baseline, dtype=np.float64)
    n = int(d.size)
    if n == 0:
        interval = {"mean": math.nan, "se": math.nan, "low": math.nan, "high": math.nan}
    else:
        interval = t_interval(d.tolist())
    sd = float(np.std(d, ddof=1)) if n > 1 else math.nan
    return {
        "diff": interval["mean"],
        "se": interval["se"],
        "ci_low": interval["low"],
        "ci_high": interval["high"],
        "p": paired_p(d),
        "mde": minimal_detectable_effect(sd, n),
        "seeds": n,
        "seeds_needed": seeds_needed(interval["mean"], sd),
    }


def paired_p(differences: np.ndarray) -> float:
    """The two-sided p of the paired t-test (`scipy.stats.ttest_1samp` on the differences).

    Differences all alike have no spread to test against: p is 1 when they are all 0 and
    0 otherwise (every seed moved the same way by the same amount), where scipy would give
    nan or warn about cancellation. nan with fewer than two seeds."""
    from scipy import stats

    if differences.size < 2:
        return math.nan
    if np.all(differences == differences[0]):
        return 1.0 if differences[0] == 0 else 0.0
    return float(stats.ttest_1samp(differences, 0.0).pvalue)


def minimal_detectable_effect(sd: float, seeds: int) -> float:
    """The smallest true mean difference that a paired t-test over `seeds` seeds detects
    with probability POWER at POWER_ALPHA, given the differences' standard deviation `sd`:
    how much a 'no detectable difference' rules out. nan below two seeds or with sd nan."""
    from scipy.optimize import brentq

    if seeds < 2 or math.isnan(sd):
        return math.nan
    if sd == 0:
        return 0.0
    high = 1.0
    while power(high, seeds) < POWER:
        high *= 2
    return float(brentq(lambda effect: power(effect, seeds) - POWER, 0.0, high)) * sd


def seeds_needed(diff: float, sd: float, alpha: float = POWER_ALPHA) -> int | None:
    """How many seeds a paired t-test needs to detect a true difference of `diff` with
    probability POWER at `alpha`, the differences spreading by `sd`: the smallest n
    whose power reaches POWER. None when diff is 0 (nothing to detect; a mean of
    differences that cancel comes out as ~1e-18, not 0, hence the rounding margin) or sd is
    0 or unknown (no spread to plan against)."""
    if not (math.isfinite(diff) and math.isfinite(sd) and sd > 0):
        return None
    if abs(diff) <= ROUNDING * sd:
        return None
    effect = abs(diff) / sd
    # Power grows with n: double past the answer, then bisect to the exact integer. One
    # seed is never enough (no spread to test against).
    low, high = 1, 2
    while power(effect, high, alpha) < POWER:
        low, high = high, 2 * high
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if power(effect, mid, alpha) >= POWER else (mid, high)
    return high


def power(effect: float, seeds: int, alpha: float = POWER_ALPHA) -> float:
    """The chance that a two-sided paired t-test at `alpha` over `seeds` seeds rejects
    when the true differences have mean / sd = `effect` (Cohen's d): the noncentral t's
    mass beyond +-t_crit. Both tails are taken as upper tails (the lower one with the
    noncentrality negated): scipy's nct.cdf far into the lower tail returns nan at large
    noncentrality, and statsmodels' TTestPower inherits those nans."""
    from scipy import stats

    df, noncentrality = float(seeds - 1), effect * math.sqrt(seeds)
    critical = stats.t.ppf(1 - alpha / 2, df)
    upper = stats.nct.sf(critical, df, noncentrality)
    return float(upper + stats.nct.sf(critical, df, -noncentrality))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values over every finite p (a nan p, from one seed, is no test and
    stays nan): deciding on adjusted p < ALPHA keeps the chance of any false 'higher' or
    'lower' in the whole table at ALPHA."""
    from statsmodels.stats.multitest import multipletests

    tested = [i for i, p in enumerate(p_values) if not math.isnan(p)]
    adjusted = [math.nan] * len(p_values)
    if tested:
        holm_p = multipletests([p_values[i] for i in tested], alpha=ALPHA, method="holm")[1]
        for i, p in zip(tested, holm_p):
            adjusted[i] = float(p)
    return adjusted


def decision(comparison: dict[str, Any]) -> str:
    """'higher' / 'lower' when the Holm-adjusted p is below ALPHA, else no detectable
    difference; no decision without two paired seeds."""
    if comparison["seeds"] == 0:
        return NO_PAIRS
    if comparison["seeds"] < 2:
        return ONE_SEED
    if comparison["p_holm"] < ALPHA:
        return "higher" if comparison["diff"] > 0 else "lower"
    return NO_DIFFERENCE


def decide_all(comparisons: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each comparison with `p_holm` (Holm over all of them) and its `decision`."""
    for comparison, p in zip(comparisons, holm([c["p"] for c in comparisons])):
        comparison["p_holm"] = p
        comparison["decision"] = decision(comparison)
    return comparisons


def diff_with_interval(c: dict[str, Any]) -> str:
    """A comparison's 'diff [low, high]', to the decimals that give the interval's half-width
    two significant digits: a cancelling mean prints +0.000, not +1.85e-17."""
    half = (c["ci_high"] - c["ci_low"]) / 2
    if not half > 0:  # nan (one seed) or 0 (differences all alike)
        return "-" if math.isnan(c["diff"]) else format(c["diff"], "+.4g")
    places = f"+.{max(0, 1 - math.floor(math.log10(half)))}f"
    return f"{c['diff']:{places}} [{c['ci_low']:{places}}, {c['ci_high']:{places}}]"
