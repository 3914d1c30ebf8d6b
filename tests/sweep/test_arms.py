"""Arms a reviewer can trust: every drawn point runs with every seed, no copies count as
seeds, the baseline is matched by value (or refused up front), every shown metric is
compared under Holm, and each arm carries its Pass@k curve before and after RL."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from ray.tune.search.variant_generator import generate_variants
from statsmodels.stats.multitest import multipletests

from rsrl.eval.uncertainty import bootstrap_interval
from rsrl.spec import SpecError, load_spec
from rsrl.sweep.config import SearchDimSpec, SweepSpec
from rsrl.sweep.run import (
    SweepResult,
    format_results,
    require_sweep,
    results_json,
    sample_points,
    search_space,
    summarise,
    trial_values,
)

METRIC = "eval.count.avg@8"
ENTROPY = "eval.heldout.pretrain.entropy"
SPEC = """\
name: t
model: {preset: tiny-dense}
tokenizer: {kind: bpe, vocab_size: 512}
stages:
  pretrain:
    data: [{path: synth://pretrain}]
    tokens: 10000
    seq_len: 64
    batch_tokens: 256
sweep:
  metric: pretrain.entropy
"""


def write_spec(tmp_path: Path, sweep: str) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC + "".join(f"  {line}\n" for line in sweep.splitlines()))
    return path


def trials(sweep: SweepSpec, seed: int = 0) -> list[dict]:
    """The trials Tune runs for `search_space`, as {spec path: value} (seed included)."""
    return [trial_values(config) for _, config in generate_variants(search_space(sweep, seed))]


# -- 1. random dimensions: drawn once per num_samples, each draw run with every seed


def test_every_drawn_point_runs_with_every_seed():
    sweep = SweepSpec(
        space={
            "objective.beta": SearchDimSpec(grid=[0.0, 0.5]),
            "rl.lr": SearchDimSpec(loguniform=[1e-5, 1e-3]),
            "rl.clip.low": SearchDimSpec(uniform=[0.1, 0.3]),
        },
        metric=METRIC,
        seeds=3,
        num_samples=4,
    )
    runs = trials(sweep, seed=11)
    arms: dict[tuple, list[int]] = {}
    for t in runs:
        arms.setdefault((t["objective.beta"], t["rl.lr"], t["rl.clip.low"]), []).append(t["seed"])
    assert len(arms) == 2 * 4  # grid x draws
    assert all(sorted(seeds) == [11, 12, 13] for seeds in arms.values())
    assert all(1e-5 <= lr <= 1e-3 and 0.1 <= low <= 0.3 for _, lr, low in arms)
    # Reproducible from the spec's seed, and a different seed draws differently.
    assert sample_points(sweep, 11) == sample_points(sweep, 11)
    assert sample_points(sweep, 11) != sample_points(sweep, 12)


def test_a_repeated_choice_is_one_arm_not_extra_seeds():
    sweep = SweepSpec(
        space={"objective.beta": SearchDimSpec(choice=[0.0, 0.5])},
        metric=METRIC,
        seeds=2,
        num_samples=10,
    )
    runs = trials(sweep)
    by_beta: dict[float, list[int]] = {}
    for t in runs:
        by_beta.setdefault(t["objective.beta"], []).append(t["seed"])
    assert sorted(by_beta) == [0.0, 0.5]
    assert all(sorted(seeds) == [0, 1] for seeds in by_beta.values())


# -- 2. num_samples with only grid dimensions would copy trials


def test_num_samples_without_a_random_dimension_is_refused(tmp_path):
    spec = write_spec(tmp_path, "space: {objective.beta: {grid: [0.0, 0.5]}}\nnum_samples: 3")
    with pytest.raises(SpecError, match=r"sweep\.num_samples.*sweep\.seeds"):
        load_spec(spec)
    result = subprocess.run(
        [sys.executable, "-m", "rsrl.cli", "validate", str(spec)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "sweep.num_samples" in result.stderr
    assert "Traceback" not in result.stderr
    fine = "space: {objective.beta: {grid: [0.0]}, rl.lr: {choice: [1.0e-4]}}\nnum_samples: 3"
    assert load_spec(write_spec(tmp_path, fine)).sweep.num_samples == 3


# -- 3. the baseline, matched by value; one that matches no arm is refused


def beta_rows(betas, seeds=(0, 1, 2), path="objective.beta", wrap=lambda b: b) -> list[dict]:
    return [
        {path: wrap(beta), "seed": s, METRIC: 0.4 + 0.1 * s + beta * (1 + 0.1 * s)}
        for beta in betas
        for s in seeds
    ]


@pytest.mark.parametrize(
    "path, wrap, baseline",
    [
        ("objective.beta", lambda b: b, {"objective.beta": 0}),  # an int against 0.0
        ("objective.beta", lambda b: b, {"objective": {"beta": 0}}),  # written nested
        ("objective", lambda b: {"beta": b}, {"objective": {"beta": 0}}),  # grid of mappings
    ],
)
def test_the_baseline_is_matched_by_value(path, wrap, baseline):
    sweep = SweepSpec(
        space={path: SearchDimSpec(grid=[wrap(0.0), wrap(-0.25)])},
        metric=METRIC,
        seeds=3,
        baseline=baseline,
    )
    arms, comparisons = summarise(beta_rows([0.0, -0.25], path=path, wrap=wrap), sweep)
    assert [c["arm"] for c in comparisons] == [{path: wrap(-0.25)}]
    assert comparisons[0]["seeds"] == 3 and comparisons[0]["decision"] == "lower"
    readings = sorted(a["vs_baseline"]["reading"] for a in arms)
    assert readings == ["baseline", "lower"]


@pytest.mark.parametrize(
    "sweep, message",
    [
        (  # the baseline names one of two swept paths: it is no arm
            "space: {objective.beta: {grid: [0.0, 0.5]}, rl.lr: {grid: [1.0e-4, 1.0e-3]}}\n"
            "baseline: {objective.beta: 0}",
            "sweep.baseline: gives no value for rl.lr",
        ),
        (
            "space: {objective.beta: {grid: [-0.25, 0.5]}}\nbaseline: {objective.beta: 0}",
            "sweep.baseline.objective.beta: must be one of the grid values",
        ),
        (
            "space: {objective: {grid: [{beta: 0.5}]}}\nbaseline: {objective: {beta: 0}}",
            "sweep.baseline.objective: must be one of the grid values",
        ),
        (
            "space: {objective.beta: {uniform: [0, 1]}}\nbaseline: {objective.beta: 0.5}",
            "sweep.baseline.objective.beta: no arm repeats a value drawn from a range",
        ),
        (
            "space: {objective.beta: {grid: [0.0]}}\nbaseline: {rl.lr: 0.1}",
            "sweep.baseline.rl.lr: must name a path of sweep.space",
        ),
    ],
)
def test_a_baseline_that_matches_no_arm_is_a_spec_error(tmp_path, sweep, message):
    with pytest.raises(SpecError) as err:
        load_spec(write_spec(tmp_path, sweep))
    assert any(message in problem for problem in err.value.problems), err.value.problems


def test_a_baseline_choice_never_drawn_is_refused_before_the_sweep(tmp_path):
    values = list(range(50))

    def spec_with_baseline(value: int):
        sweep = f"space: {{rl.lr: {{choice: {values}}}}}\nbaseline: {{rl.lr: {value}}}"
        return load_spec(write_spec(tmp_path, sweep))

    drawn = {p["rl.lr"] for p in sample_points(spec_with_baseline(0).sweep, seed=0)}
    assert len(drawn) == 1  # num_samples 1: one draw of fifty choices
    missing = next(v for v in values if v not in drawn)
    with pytest.raises(SpecError, match=r"sweep\.baseline: no arm has it"):
        require_sweep(spec_with_baseline(missing))
    present = spec_with_baseline(drawn.pop())
    assert require_sweep(present) is present.sweep


# -- 6, 7. every shown metric compared with the baseline, decided under Holm


SWEEP = SweepSpec(
    space={"objective.beta": SearchDimSpec(grid=[0.0, -0.25, 0.5])},
    metric=METRIC,
    seeds=3,
    baseline={"objective.beta": 0.0},
    show=[ENTROPY, METRIC],
)


def rows() -> list[dict]:
    offsets = {0.0: [0, 0, 0], -0.25: [0.05, 0.06, 0.04], 0.5: [0.03, -0.04, 0.01]}
    return [
        {
            "objective.beta": beta,
            "seed": s,
            METRIC: [0.40, 0.50, 0.45][s] + offsets[beta][s],
            ENTROPY: 1.0 + beta + 0.01 * s * (beta != 0.0),
            "eval.count.pass@1": 0.3 + beta / 10 + 0.01 * s,
            "eval.count.pass@4": 0.6 + beta / 10 + 0.02 * s,
            "eval.pre_rl.count.pass@4": 0.5 + 0.03 * s,
            "eval.rl_gain.count.pass@4": 0.1,
            "stage_dirs": {},
        }
        for beta in offsets
        for s in range(3)
    ]


def test_every_shown_metric_is_compared_under_holm():
    arms, comparisons = summarise(rows(), SWEEP)
    assert [(c["arm"]["objective.beta"], c["metric"]) for c in comparisons] == [
        (-0.25, METRIC),
        (-0.25, ENTROPY),
        (0.5, METRIC),
        (0.5, ENTROPY),
    ]
    raw = [c["p"] for c in comparisons]
    assert [c["p_holm"] for c in comparisons] == pytest.approx(
        list(multipletests(raw, method="holm")[1])
    )
    entropy = next(
        c for c in comparisons if c["arm"]["objective.beta"] == 0.5 and c["metric"] == ENTROPY
    )
    assert entropy["diff"] == pytest.approx(0.51) and entropy["decision"] == "higher"
    keys = {"arm", "metric", "diff", "se", "ci_low", "ci_high", "p", "p_holm", "decision"}
    assert all(keys | {"mde", "seeds", "seeds_needed"} <= set(c) for c in comparisons)


def test_the_printed_table_names_holm_and_every_comparison():
    arms, comparisons = summarise(rows(), SWEEP)
    result = SweepResult(rows=rows(), arms=arms, comparisons=comparisons, best=None, report=None)
    table = format_results(result, SWEEP)
    assert "Holm" in table and "80% power" in table and "inf" not in table
    header = next(line for line in table.splitlines() if line.startswith("arm "))
    for column in ("metric", "diff [95% CI]", "p_holm", "decision", "mde", "seeds_needed"):
        assert column in header
    assert sum(line.startswith("objective.beta=") for line in table.splitlines()) == 4


# -- Pass@k before and after RL, per arm, with a bootstrap interval over seeds


def test_arms_carry_pass_at_k_before_and_after_rl():
    arms, _ = summarise(rows(), SWEEP)
    sharp = next(a for a in arms if a["objective.beta"] == -0.25)
    curve = sharp["pass_at_k"]["count"]
    assert set(curve) == {"pre_rl", "post_rl"} and set(curve["post_rl"]) == {"1", "4"}
    post = [0.6 - 0.025 + 0.02 * s for s in range(3)]
    low, high = bootstrap_interval(post)
    assert curve["post_rl"]["4"] == pytest.approx({"mean": sum(post) / 3, "low": low, "high": high})
    assert curve["pre_rl"]["4"]["mean"] == pytest.approx(0.53)
    assert "rl_gain" not in sharp["pass_at_k"]
    one, _ = summarise([r for r in rows() if r["seed"] == 0], SWEEP)
    point = one[0]["pass_at_k"]["count"]["post_rl"]["1"]
    assert point["low"] != point["low"] and point["high"] != point["high"]  # nan: one seed


def test_results_json_is_strict_and_complete():
    one_seed = [r for r in rows() if r["seed"] == 0]
    arms, comparisons = summarise(one_seed, SWEEP)
    payload = results_json(one_seed, arms, comparisons, SWEEP)
    text = json.dumps(payload, allow_nan=False)  # nan written as null, never NaN / Infinity
    assert set(payload) == {
        "trials",
        "arms",
        "comparisons",
        "baseline",
        "correction",
        "alpha",
        "power",
        "power_alpha",
    }
    assert payload["correction"] == "holm" and payload["baseline"] == {"objective.beta": 0.0}
    assert payload["comparisons"][0]["se"] is None and payload["comparisons"][0]["p_holm"] is None
    assert payload["comparisons"][0]["decision"] == "one seed: no interval"
    assert "Infinity" not in text
