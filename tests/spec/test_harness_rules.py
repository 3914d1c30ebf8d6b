"""eval.harness: lm-eval task names are checked at validate, quickly, loading lm-eval only
for a spec that has the section."""

import subprocess
import sys
import time
from pathlib import Path

import pytest

from rsrl.spec import SpecError, load_spec

REPO = Path(__file__).resolve().parents[2]
BASE = Path(__file__).parent / "base.yaml"
LOCAL = "eval.harness={tasks: [rsrl_tiny_mc], include_path: examples/harness}"


@pytest.fixture(autouse=True)
def in_repo(monkeypatch):
    monkeypatch.chdir(REPO)  # examples/harness and its data path are relative to the repo


def test_a_local_task_loads_with_the_defaults_of_the_issue():
    harness = load_spec(BASE, [LOCAL]).eval.harness
    assert harness.tasks == ["rsrl_tiny_mc"] and harness.num_fewshot == 0
    assert harness.limit is None and harness.batch_size == 8
    assert harness.checkpoints == ["pretrain", "midtrain", "rl"]


def test_an_unknown_task_is_a_spec_error_naming_the_field_and_is_quick():
    start = time.perf_counter()
    with pytest.raises(SpecError) as err:
        load_spec(
            BASE,
            [LOCAL.replace("[rsrl_tiny_mc]", "[rsrl_tiny_mc, no_such_task_xyz]")],
        )
    seconds = time.perf_counter() - start
    (problem,) = err.value.problems
    assert problem.startswith("eval.harness.tasks:") and "'no_such_task_xyz'" in problem
    assert "rsrl_tiny_mc" not in problem.replace("examples/harness", "")
    assert seconds < 15, f"checking the task names took {seconds:.1f} s"


@pytest.mark.parametrize(
    "override, message",
    [
        ("eval.harness={tasks: []}", "eval.harness.tasks: must list lm-eval task names"),
        (
            "eval.harness={tasks: [rsrl_tiny_mc], include_path: no/such/dir}",
            "eval.harness.include_path: 'no/such/dir' does not exist",
        ),
        (LOCAL[:-1] + ", checkpoints: [midtrain]}", "eval.harness.checkpoints: must name a"),
        (LOCAL[:-1] + ", checkpoints: [final]}", "eval.harness.checkpoints[0]: unknown value"),
        (LOCAL[:-1] + ", limit: 0}", "eval.harness.limit: must be >= 1"),
    ],
)
def test_bad_harness_values_are_rejected(override, message):
    with pytest.raises(SpecError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_spec(BASE, [override])


def test_a_spec_without_harness_never_imports_lm_eval():
    code = (
        "import sys; from rsrl.spec import load_spec; "
        f"load_spec({str(BASE)!r}); assert 'lm_eval' not in sys.modules, 'lm_eval imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
