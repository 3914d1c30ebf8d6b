"""metrics.json: the suite summary from per-problem rows, and the flat view sweeps read."""

import pytest

from rsrl.eval.config import SuiteSpec
from rsrl.eval.metrics import pass_at_k
from rsrl.eval.results import flat_metrics, read_eval_metrics
from rsrl.eval.suite import summarise_suite
from rsrl.pipeline.cache import write_json_atomic

SUITE = SuiteSpec(name="arith", n_samples=4, k=[1, 4])


def problem(c: int, cons: float) -> dict:
    return {"n": 4, "correct": c, "avg": c / 4, "cons": cons, "mean_score": c / 4}


def test_suite_summary_averages_over_problems():
    summary = summarise_suite(
        SUITE, [problem(0, 0.0), problem(1, 0.0), problem(4, 1.0)], "suites/arith.parquet"
    )
    assert summary["problems"] == 3 and summary["n_samples"] == 4 and summary["k"] == [1, 4]
    assert summary["avg@4"] == pytest.approx(5 / 12)
    assert summary["cons@4"] == pytest.approx(1 / 3)
    assert summary["pass@1"] == pytest.approx(5 / 12)
    assert summary["pass@4"] == pytest.approx(2 / 3)
    want = [(pass_at_k(4, 0, k) + pass_at_k(4, 1, k) + pass_at_k(4, 4, k)) / 3 for k in range(1, 5)]
    assert summary["curve"] == pytest.approx(want)
    assert summary["curve"][0] == summary["pass@1"] and summary["curve"][-1] == summary["pass@4"]


def test_flat_metrics_names_every_number(tmp_path):
    metrics = {
        "model": "rl",
        "suites": {"arith": summarise_suite(SUITE, [problem(2, 1.0)], "suites/a.parquet")},
        "heldout": {
            "pretrain": {"entropy": 2.5, "tokens": 100, "k": 100},
            "rl": {"entropy": 1.5, "tokens": 100, "k": 100},
        },
    }
    write_json_atomic(tmp_path / "metrics.json", metrics)
    flat = flat_metrics(read_eval_metrics(tmp_path))
    assert flat["eval.arith.pass@4"] == 1.0
    assert flat["eval.arith.avg@4"] == 0.5 and flat["eval.arith.cons@4"] == 1.0
    assert flat["eval.arith.n_samples"] == 4.0
    assert flat["eval.heldout.pretrain.entropy"] == 2.5
    assert flat["eval.heldout.rl.entropy"] == 1.5
    assert not any(
        key.endswith((".curve", ".k", ".problems_file"))
        for key in flat
        if not key.startswith("eval.heldout")
    )
    assert all(isinstance(v, float) for v in flat.values())
    assert read_eval_metrics(tmp_path / "missing") is None
