"""The statistics of a sweep's comparisons against scipy, statsmodels, hand-computed values
and simulation: paired t-test and interval, Holm, minimal detectable effect, seeds needed."""

import math

import numpy as np
import pytest
from scipy import stats

from rsrl.eval.compare import (
    NO_DIFFERENCE,
    ONE_SEED,
    decide_all,
    holm,
    minimal_detectable_effect,
    paired_comparison,
    seeds_needed,
)


def test_paired_comparison_is_scipys_paired_t_test():
    rng = np.random.default_rng(7)
    base = rng.normal(0.5, 0.1, size=6)
    arm = base + rng.normal(0.03, 0.02, size=6)
    c = paired_comparison(arm.tolist(), base.tolist())
    d = arm - base
    assert c["seeds"] == 6
    assert c["diff"] == pytest.approx(d.mean())
    assert c["se"] == pytest.approx(stats.sem(d))
    assert c["p"] == pytest.approx(stats.ttest_rel(arm, base).pvalue)
    low, high = stats.t.interval(0.95, 5, loc=d.mean(), scale=stats.sem(d))
    assert (c["ci_low"], c["ci_high"]) == pytest.approx((low, high))
    # t_{0.975, 5} = 2.571 from the textbook table
    assert (c["ci_high"] - c["diff"]) / c["se"] == pytest.approx(2.571, abs=5e-4)


def test_one_seed_has_no_interval_no_p_and_no_decision():
    c = decide_all([{"arm": {}, "metric": "m", **paired_comparison([0.7], [0.2])}])[0]
    assert c["diff"] == pytest.approx(0.5) and c["seeds"] == 1
    for key in ("se", "ci_low", "ci_high", "p", "p_holm", "mde"):
        assert math.isnan(c[key]), key
    assert c["seeds_needed"] is None and c["decision"] == ONE_SEED


def test_holm_matches_a_hand_computed_example():
    # Sorted: 0.005 * 4 = 0.02, 0.01 * 3 = 0.03, 0.03 * 2 = 0.06, 0.04 * 1 = 0.04 -> kept
    # monotone at 0.06. A nan p (one seed) is no test: it stays nan and is not counted.
    assert holm([0.01, 0.04, math.nan, 0.03, 0.005]) == pytest.approx(
        [0.03, 0.06, math.nan, 0.06, 0.02], nan_ok=True
    )
    assert holm([0.3, 0.9]) == pytest.approx([0.6, 0.9])


def test_decisions_use_holm_not_the_raw_p():
    # Two comparisons each at raw p ~ 0.03: alone each is below 0.05, under Holm neither is.
    seeds = [0.0, 1.0, 2.0, 3.0, 4.0]
    arm = [s + d for s, d in zip(seeds, [0.11, 0.02, 0.09, 0.13, 0.03])]
    one = {"arm": {"x": 1}, "metric": "m", **paired_comparison(arm, seeds)}
    two = {"arm": {"x": 2}, "metric": "m", **paired_comparison(arm, seeds)}
    assert 0.025 < one["p"] < 0.05
    decided = decide_all([one, two])
    assert all(c["p_holm"] == pytest.approx(2 * one["p"]) for c in decided)
    assert all(c["decision"] == NO_DIFFERENCE for c in decided)
    assert decide_all([dict(one)])[0]["decision"] == "higher"
    lower = {"arm": {}, "metric": "m", **paired_comparison(seeds, arm)}
    assert decide_all([lower])[0]["decision"] == "lower"


@pytest.mark.parametrize("seeds", [3, 5, 10, 40])
def test_mde_is_where_the_paired_t_test_has_80_percent_power(seeds):
    sd = 0.02
    mde = minimal_detectable_effect(sd, seeds)
    # The power of the two-sided one-sample t-test, written out with the noncentral t:
    df, nc = seeds - 1, mde / sd * math.sqrt(seeds)
    crit = stats.t.ppf(0.975, df)
    power = stats.nct.sf(crit, df, nc) + stats.nct.cdf(-crit, df, nc)
    assert power == pytest.approx(0.8, abs=1e-6)
    # statsmodels' own solver agrees (standardised effect size)
    from statsmodels.stats.power import TTestPower

    d = TTestPower().solve_power(nobs=seeds, alpha=0.05, power=0.8, alternative="two-sided")
    assert mde / sd == pytest.approx(d, rel=1e-4)


def test_mde_holds_in_simulation():
    # Brute force: 40000 sweeps of 5 seeds whose differences are normal with mean mde;
    # the paired t-test rejects in 80% of them (binomial sd 0.002).
    seeds, sd = 5, 1.0
    mde = minimal_detectable_effect(sd, seeds)
    d = np.random.default_rng(0).normal(mde, sd, size=(40000, seeds))
    rejected = stats.ttest_1samp(d, 0.0, axis=1).pvalue < 0.05
    assert rejected.mean() == pytest.approx(0.8, abs=0.01)
    # 2 seeds: t with 1 degree of freedom needs a difference of 11.55 sd
    assert minimal_detectable_effect(1.0, 2) == pytest.approx(11.55, abs=0.01)


@pytest.mark.parametrize("seeds", [2, 3, 7, 20])
def test_seeds_needed_is_the_fewest_seeds_whose_mde_reaches_the_difference(seeds):
    mde = minimal_detectable_effect(1.0, seeds)
    assert seeds_needed(mde * 1.001, 1.0) == seeds
    assert seeds_needed(-mde * 1.001, 1.0) == seeds  # the sign does not matter
    assert seeds_needed(mde * 0.999, 1.0) == seeds + 1
    assert minimal_detectable_effect(0.5, seeds) == pytest.approx(0.5 * mde)


def test_seeds_needed_at_a_corrected_alpha_matches_statsmodels():
    # alpha / 32: the threshold Holm sets for the smallest of 32 p values.
    from statsmodels.stats.power import TTestPower

    alpha = 0.05 / 32
    n = TTestPower().solve_power(effect_size=1.5, alpha=alpha, power=0.8)
    assert seeds_needed(1.5, 1.0, alpha) == math.ceil(n)
    assert seeds_needed(1.5, 1.0, alpha) > seeds_needed(1.5, 1.0)


def test_seeds_needed_is_null_without_a_difference_or_a_spread():
    assert seeds_needed(0.0, 0.1) is None
    assert seeds_needed(1e-19, 0.1) is None  # differences that cancel, up to rounding
    assert seeds_needed(0.1, 0.0) is None
    assert seeds_needed(0.1, math.nan) is None
    assert seeds_needed(100.0, 1.0) == 2  # never fewer than the two a t-test needs


def test_differences_all_alike():
    same = paired_comparison([0.75, 0.75, 0.75], [1.0, 1.0, 1.0])
    assert same["se"] == 0.0 and same["p"] == 0.0 and same["mde"] == 0.0
    assert same["seeds_needed"] is None
    none = paired_comparison([0.5, 0.6], [0.5, 0.6])
    assert none["diff"] == 0.0 and none["p"] == 1.0
