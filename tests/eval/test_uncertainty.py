"""Standard errors, paired differences and bootstrap intervals against exact values."""

import itertools
import math
import statistics

import numpy as np
import pytest

from rsrl.eval.config import SuiteSpec
from rsrl.eval.suite import summarise_suite
from rsrl.eval.uncertainty import (
    bootstrap_interval,
    covers_zero,
    paired_difference,
    standard_error,
    t_interval,
)


def test_standard_error_is_sample_std_over_root_n():
    values = [0.0, 0.25, 1.0, 1.0, 0.5]
    assert standard_error(values) == pytest.approx(statistics.stdev(values) / math.sqrt(5))
    assert math.isnan(standard_error([0.7]))  # one value: no spread known, not certainty
    with pytest.raises(ValueError):
        standard_error([])


def test_paired_difference_removes_problem_difficulty():
    # Each problem improves by exactly 0.1 while problems differ widely: pairing sees no
    # noise at all, an unpaired comparison would see a lot.
    before = [0.0, 0.5, 0.9, 0.2]
    after = [b + 0.1 for b in before]
    gain = paired_difference(before, after)
    assert gain["mean"] == pytest.approx(0.1)
    assert gain["se"] == pytest.approx(0.0, abs=1e-12) and gain["z"] > 1e6
    noisy = paired_difference([0, 1, 0, 1], [1, 1, 0, 0])
    d = [1, 0, 0, -1]
    assert noisy["mean"] == 0.0
    assert noisy["se"] == pytest.approx(statistics.stdev(d) / 2)
    with pytest.raises(ValueError, match="length"):
        paired_difference([0.0], [0.0, 1.0])


def test_paired_difference_never_gives_an_infinite_z():
    # One problem: its spread is unknown, so se and z are nan (they were 0 and inf, which
    # the report read as a detected gain).
    one = paired_difference([0.2], [0.7])
    assert one["mean"] == pytest.approx(0.5)
    assert math.isnan(one["se"]) and math.isnan(one["z"])
    # Every difference exactly alike: se is 0 and z undefined, not infinite.
    alike = paired_difference([0.0, 0.5], [1.0, 1.5])
    assert alike["se"] == 0.0 and math.isnan(alike["z"])


@pytest.mark.parametrize("n, t", [(3, 4.303), (41, 2.021), (11, 2.228)])
def test_t_interval_uses_student_t_at_any_degrees_of_freedom(n, t):
    # Textbook two-sided 95% points t_{0.975, n-1}; above 30 degrees of freedom the old
    # table fell back to the normal's 1.96 (too narrow).
    values = [0.1 * i + 0.01 * (i % 3) for i in range(n)]
    interval = t_interval(values)
    se = statistics.stdev(values) / math.sqrt(n)
    assert interval["mean"] == pytest.approx(statistics.mean(values))
    assert interval["se"] == pytest.approx(se)
    assert (interval["high"] - interval["mean"]) / se == pytest.approx(t, abs=5e-4)
    assert (interval["mean"] - interval["low"]) / se == pytest.approx(t, abs=5e-4)


def test_t_interval_of_one_value_is_unknown():
    interval = t_interval([0.4])
    assert interval["mean"] == 0.4
    assert all(math.isnan(interval[k]) for k in ("se", "low", "high"))


def test_bootstrap_interval_matches_the_exact_resampling_distribution():
    # Five problems: all 5^5 equally likely resamples enumerated give the exact
    # distribution of the resampled mean; the seeded bootstrap's quantiles land within one
    # atom (0.05) of its exact quantiles.
    values = [0.0, 0.25, 0.5, 1.0, 1.0]
    means = [np.mean(c) for c in itertools.product(values, repeat=len(values))]
    exact_low, exact_high = np.quantile(means, [0.025, 0.975], method="inverted_cdf")
    low, high = bootstrap_interval(values, resamples=20000, seed=1)
    assert low == pytest.approx(exact_low, abs=0.051)
    assert high == pytest.approx(exact_high, abs=0.051)
    assert exact_low < np.mean(values) < exact_high
    assert bootstrap_interval(values, seed=3) == bootstrap_interval(values, seed=3)
    assert bootstrap_interval([0.4, 0.4]) == pytest.approx([0.4, 0.4])


def test_covers_zero_at_95_percent():
    assert covers_zero(0.019, 0.01) and not covers_zero(0.021, 0.01)
    assert covers_zero(-0.019, 0.01) and not covers_zero(-0.021, 0.01)


def test_suite_summary_carries_errors_and_intervals():
    suite = SuiteSpec(name="s", n_samples=4, k=[1, 2])
    problems = [
        {"n": 4, "correct": c, "avg": c / 4, "cons": float(c > 2), "mean_score": c / 4}
        for c in (0, 1, 3, 4, 4)
    ]
    summary = summarise_suite(suite, problems, "p.parquet")
    avgs = [p["avg"] for p in problems]
    assert summary["avg@4_se"] == pytest.approx(statistics.stdev(avgs) / math.sqrt(5))
    pass2 = [0.0, 0.5, 1.0, 1.0, 1.0]  # 1 - C(4-c, 2)/C(4, 2) for c = 0, 1, 3, 4, 4
    assert summary["pass@2"] == pytest.approx(np.mean(pass2))
    assert summary["pass@2_se"] == pytest.approx(statistics.stdev(pass2) / math.sqrt(5))
    low, high = summary["pass@2_ci"]
    assert low <= summary["pass@2"] <= high
    assert summary["curve_se"][0] == pytest.approx(summary["pass@1_se"])
    assert len(summary["curve_se"]) == 4


def test_the_report_reads_a_one_problem_gain_as_no_interval():
    from rsrl.report.findings import gain_reading

    one = paired_difference([0.2], [0.7])
    assert gain_reading(one["mean"], one["se"]) == "one problem: no interval"
    assert gain_reading(0.05, 0.01) == "gain" and gain_reading(-0.05, 0.01) == "loss"
    assert gain_reading(0.019, 0.01) == "no detectable difference"
