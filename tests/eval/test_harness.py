"""eval.harness: lm-evaluation-harness on tiny HF exports, offline, over the local task that
ships in examples/harness. rsrl's numbers must be exactly lm-eval's own, run directly."""

import json
import shutil
from pathlib import Path

import pytest

from rsrl.data.errors import DataError
from rsrl.eval.config import HarnessSpec
from rsrl.eval.harness import lm_eval_metrics, run_harness
from rsrl.eval.results import flat_metrics, read_eval_metrics
from rsrl.pipeline.registry import StageContext, resolve_stage_fn
from rsrl.report.runs import Run
from rsrl.report.write import write_report
from rsrl.spec import load_spec
from tests.eval.conftest import eval_stage_context, save_tiny_model

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = REPO / "specs" / "quickstart.yaml"
TASK_DIR = REPO / "examples" / "harness"
TASK = "rsrl_tiny_mc"


@pytest.fixture(autouse=True)
def in_repo(monkeypatch):
    monkeypatch.chdir(REPO)  # the example task reads its data relative to the repository


def test_harness_equals_lm_eval_run_directly(tmp_path, tokenizer_stage):
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    exports = {
        name: save_tiny_model(tmp_path / name, tokenizer_stage, seed=seed)
        for seed, name in enumerate(("pretrain", "rl"))
    }
    sharpen(exports["rl"])
    harness = HarnessSpec(tasks=[TASK], include_path=str(TASK_DIR))
    results, errors = run_harness(harness, exports)
    assert errors == {} and list(results) == ["pretrain", "rl"]

    # The second checkpoint, so that nothing of the first may leak into its numbers.
    direct = simple_evaluate(
        model="hf",
        model_args=f"pretrained={exports['rl']},dtype=float32",
        device="cpu",
        tasks=[TASK],
        num_fewshot=0,
        batch_size=8,
        task_manager=TaskManager(include_path=str(TASK_DIR), include_defaults=False),
    )
    raw = direct["results"][TASK]
    scores = results["rl"][TASK]
    assert scores == lm_eval_metrics(direct)[TASK]
    assert (scores["acc"], scores["acc_stderr"]) == (raw["acc,none"], raw["acc_stderr,none"])
    assert (scores["acc_norm"], scores["acc_norm_stderr"]) == (
        raw["acc_norm,none"],
        raw["acc_norm_stderr,none"],
    )
    assert scores["samples"] == 20 and scores["num_fewshot"] == 0
    assert results["pretrain"][TASK] != scores  # two different models, told apart


def sharpen(export: Path) -> None:
    """Scale a tiny export's weights up: a fresh one is so near uniform that the shortest
    choice wins every question, whatever the seed."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(export)
    with torch.no_grad():
        for param in model.parameters():
            param.mul_(8.0)
    model.save_pretrained(export)


@pytest.fixture
def harness_context(tmp_path, tokenizer_stage) -> StageContext:
    """The eval stage of a quickstart run with only eval.harness, over the example task and
    a copy of it whose data file does not exist."""
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    shutil.copy(TASK_DIR / "tiny_mc.yaml", tasks)
    broken = (TASK_DIR / "tiny_mc.yaml").read_text().replace(f"task: {TASK}", "task: unreadable")
    (tasks / "unreadable.yaml").write_text(broken.replace("examples/harness/", "no/such/"))
    harness = {"tasks": [TASK, "unreadable"], "include_path": str(tasks), "limit": 8}
    spec = load_spec(
        QUICKSTART,
        [
            f"workdir={tmp_path / 'run'}",
            "stages.midtrain=null",
            "rl.eval_every=0",
            "eval.suites=[]",
            "eval.heldout_text=null",
            f"eval.harness={json.dumps(harness)}",
        ],
    )
    return eval_stage_context(spec, tokenizer_stage)


def test_eval_stage_keeps_every_result_and_names_the_task_it_could_not_read(
    ray_session, harness_context, tmp_path
):
    with pytest.raises(DataError) as err:
        resolve_stage_fn("eval")(harness_context)
    message = str(err.value)
    for checkpoint in ("pretrain", "rl"):
        assert f"task 'unreadable' failed on checkpoint '{checkpoint}'" in message
    assert "no/such/tiny_mc.jsonl" in message and TASK not in message

    metrics = read_eval_metrics(harness_context.out_dir)
    assert set(metrics["harness"]) == {"pretrain", "rl"}
    assert set(metrics["harness_errors"]["rl"]) == {"unreadable"}
    flat = flat_metrics(metrics)
    for checkpoint in ("pretrain", "rl"):
        assert set(metrics["harness"][checkpoint]) == {TASK}
        assert metrics["harness"][checkpoint][TASK]["samples"] == 8  # eval.harness.limit
        assert (
            flat[f"eval.harness.{checkpoint}.{TASK}.acc"]
            == (metrics["harness"][checkpoint][TASK]["acc"])
        )
        assert f"eval.harness.{checkpoint}.{TASK}.acc_norm_stderr" in flat

    page = write_report([Run("run", tmp_path, eval=metrics)], tmp_path / "report").read_text()
    assert "lm-evaluation-harness, by checkpoint" in page
    acc = metrics["harness"]["rl"][TASK]["acc"]
    assert f"{acc:.3f} ± {metrics['harness']['rl'][TASK]['acc_stderr']:.3f}" in page
    for checkpoint in ("pretrain", "rl"):
        assert (tmp_path / "report" / f"harness-{checkpoint}.png").stat().st_size > 1000
