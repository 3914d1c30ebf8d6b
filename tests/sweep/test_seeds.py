"""Sweeps with seeds: arms aggregated over seeds, each compared with the baseline arm,
paired by seed; and the space Tune gets."""

import math
import statistics

import pytest

from rsrl.sweep.config import SearchDimSpec, SweepSpec
from rsrl.sweep.run import SweepResult, format_results, summarise

METRIC = "eval.count.avg@16"
SWEEP = SweepSpec(
    space={"objective.beta": SearchDimSpec(grid=[0.0, -0.25, 0.5])},
    metric=METRIC,
    seeds=3,
    baseline={"objective.beta": 0.0},
    show=["eval.heldout.pretrain.entropy"],
)
# seed -> baseline value; each arm adds a per-seed offset.
BASE = {0: 0.40, 1: 0.50, 2: 0.45}
OFFSETS = {0.0: [0, 0, 0], -0.25: [0.05, 0.06, 0.04], 0.5: [0.03, -0.04, 0.01]}


def rows() -> list[dict]:
    return [
        {
            "objective.beta": beta,
            "seed": seed,
            METRIC: BASE[seed] + OFFSETS[beta][seed],
            f"{METRIC}_se": 0.01,  # the trial's own error over problems
            "eval.heldout.pretrain.entropy": 1.0 + beta,
            "stage_dirs": {},
        }
        for beta in OFFSETS
        for seed in BASE
    ]


def arms_by_beta() -> dict[float, dict]:
    arms, _ = summarise(rows(), SWEEP)
    return {arm["objective.beta"]: arm for arm in arms}


def test_arms_are_means_over_seeds_with_standard_errors():
    arms = arms_by_beta()
    assert set(arms) == {0.0, -0.25, 0.5}
    sharp = arms[-0.25]
    values = [BASE[s] + OFFSETS[-0.25][s] for s in BASE]
    assert sharp["seeds"] == 3
    assert sharp[METRIC] == pytest.approx(statistics.mean(values))
    assert sharp[f"{METRIC}_se"] == pytest.approx(statistics.stdev(values) / math.sqrt(3))
    assert "seed" not in sharp


def test_each_arm_is_compared_with_the_baseline_paired_by_seed():
    arms = arms_by_beta()
    assert arms[0.0]["vs_baseline"]["reading"] == "baseline"
    sharp = arms[-0.25]["vs_baseline"]  # +0.05 on every seed: pairing removes seed noise
    diffs = OFFSETS[-0.25]
    se = statistics.stdev(diffs) / math.sqrt(3)
    assert sharp["mean"] == pytest.approx(0.05)
    assert sharp["se"] == pytest.approx(se)
    # Student t, 2 degrees of freedom: the table's 4.303, good to its three decimals
    assert sharp["low"] == pytest.approx(0.05 - 4.303 * se, abs=5e-4 * se)
    assert sharp["reading"] == "higher"
    flat = arms[0.5]["vs_baseline"]  # +0.03, -0.04, +0.01: the interval covers 0
    assert flat["low"] < 0 < flat["high"] and flat["reading"] == "no detectable difference"


def test_one_seed_gives_no_interval():
    one = SweepSpec(space=SWEEP.space, metric=METRIC, baseline=SWEEP.baseline)
    single = [r for r in rows() if r["seed"] == 0]
    arms, _ = summarise(single, one)
    sharp = next(a for a in arms if a["objective.beta"] == -0.25)
    assert math.isnan(sharp[f"{METRIC}_se"])
    assert sharp["vs_baseline"]["reading"] == "one seed: no interval"


def test_results_table_prints_mean_se_and_the_comparison():
    arms, comparisons = summarise(rows(), SWEEP)
    result = SweepResult(rows=rows(), arms=arms, comparisons=comparisons, best=arms[0], report=None)
    table = format_results(result, SWEEP)
    header, *lines = table.splitlines()
    assert "seeds" in header and "baseline" in header and "eval.heldout.pretrain.entropy" in header
    sharp = next(line for line in lines if line.startswith("-0.25"))
    assert "±" in sharp and "higher" in sharp
    assert any("no detectable difference" in line for line in lines)


def test_seeds_join_the_search_space():
    from rsrl.sweep.run import search_space

    assert "seed" in search_space(SWEEP, seed=5)
    assert search_space(SWEEP, seed=5)["seed"] == {"grid_search": [5, 6, 7]}
    assert "seed" not in search_space(SweepSpec(space=SWEEP.space, metric=METRIC))


def test_arms_may_be_mappings_merged_onto_a_section():
    # specs/sweep-paper.yaml: each arm is a partial `objective`, not a point of a product grid.
    sweep = SweepSpec(
        space={"objective": SearchDimSpec(grid=[{"beta": 0.0}, {"topk": {"lam_tail": -0.1}}])},
        metric=METRIC,
        seeds=2,
        baseline={"objective": {"beta": 0.0}},
    )
    trials = [
        {"objective": arm, "seed": seed, METRIC: 0.5 + 0.1 * i + 0.01 * seed}
        for i, arm in enumerate(sweep.space["objective"].grid)
        for seed in (0, 1)
    ]
    arms, _ = summarise(trials, sweep)
    tail = next(a for a in arms if a["objective"] == {"topk": {"lam_tail": -0.1}})
    assert tail["seeds"] == 2 and tail["vs_baseline"]["mean"] == pytest.approx(0.1)
