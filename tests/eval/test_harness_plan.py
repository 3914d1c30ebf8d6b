"""eval.harness is part of the eval stage's key only: adding or editing it re-runs eval and
report, nothing upstream (the RL curve samples eval.suites, never the harness)."""

from pathlib import Path

from rsrl.pipeline.plan import compile_plan
from rsrl.spec import load_spec

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = REPO / "specs" / "quickstart.yaml"
HARNESS = "eval.harness={tasks: [rsrl_tiny_mc], include_path: examples/harness}"


def keys(*overrides: str) -> dict[str, str]:
    return {s.name: s.key for s in compile_plan(load_spec(QUICKSTART, overrides)).stages}


def changed(before: dict[str, str], after: dict[str, str]) -> set[str]:
    return {name for name in before if before[name] != after[name]}


def test_adding_or_editing_the_harness_reruns_only_eval_and_report(monkeypatch):
    monkeypatch.chdir(REPO)
    base, with_harness = keys(), keys(HARNESS)
    assert changed(base, with_harness) == {"eval", "report"}
    assert changed(with_harness, keys(HARNESS, "eval.harness.num_fewshot=5")) == {"eval", "report"}
