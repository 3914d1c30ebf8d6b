"""A stage's tracker runs, fed through the MetricsWriter and the stage's end, checked against
steps.jsonl: MLflow in a file store, W&B offline, both in a temp dir."""

import pytest

from rsrl.spec import load_spec
from rsrl.tracking.base import numbers
from rsrl.tracking.mlflow import mlflow_name
from rsrl.tracking.session import pipeline_tracking
from rsrl.tracking.stage import track_stage
from rsrl.train.metrics import MetricsWriter, read_metrics
from tests.tracking.stores import mlflow_history, mlflow_runs, wandb_run

CONFIG = {"stage": {"lr": {"peak": 0.001}, "data": [{"path": "a.jsonl", "weight": 1.0}]}}
STEPS = [{"step": step, "nll": 3.0 / step, "pass@4": 0.1 * step} for step in (1, 2, 3)]
RESULT = {"hf_dir": "hf", "steps": 3, "eval.arith.pass@4": 0.75}  # plus the last step's


@pytest.fixture
def trackers(tmp_path, monkeypatch, request):
    """A spec logging to both trackers in `tmp_path` (or to MLflow alone, parametrised with
    "mlflow"): (spec, MLflow URI, W&B dir)."""
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 asks for it
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb-dir"))
    uri = (tmp_path / "mlruns").as_uri()
    spec = load_spec(
        "specs/quickstart.yaml",
        [
            f"workdir={tmp_path / 'run'}",
            f"logging.mlflow.tracking_uri={uri}",
            "logging.mlflow.experiment=tracking-test",
            "logging.wandb.mode="
            + ("disabled" if getattr(request, "param", "") == "mlflow" else "offline"),
        ],
    )
    return spec, uri, tmp_path / "wandb-dir"


def test_steps_and_result_reach_both_trackers(ray_session, trackers, tmp_path):
    spec, uri, wandb_dir = trackers
    stage_dir = tmp_path / "run" / "pretrain-abc123"
    stage_dir.mkdir(parents=True)
    with pipeline_tracking(spec, tmp_path / "run", {"objective.beta": "-0.25"}) as tracking:
        with track_stage(tracking, "pretrain", "abc123", CONFIG, stage_dir) as tracked:
            writer = MetricsWriter(stage_dir, 0, "pretrain", 3, ("nll",))
            for record in STEPS:
                writer.write(record)
            writer.close()
            tracked.result = {**RESULT, **read_metrics(stage_dir)[-1]}  # as a training stage
    lines = read_metrics(stage_dir)
    assert [line["step"] for line in lines] == [1, 2, 3]

    runs = {r.info.run_name: r for r in mlflow_runs(uri)}
    stage, parent = runs["pretrain-abc123"], runs[tracking.group]
    assert stage.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert stage.data.tags["objective.beta"] == parent.data.tags["objective.beta"] == "-0.25"
    assert stage.data.params["stage_key"] == "abc123"
    assert stage.data.params["stage.lr.peak"] == "0.001"
    assert stage.data.params["stage.data.0.path"] == "a.jsonl"
    assert stage.info.status == parent.info.status == "FINISHED"
    for name in numbers(lines[0]):
        history = mlflow_history(uri, stage.info.run_id, mlflow_name(name))
        for line in lines:
            assert history[line["step"]] == pytest.approx(line[name]), (name, line["step"])
    assert stage.data.metrics["eval.arith.pass_at_4"] == 0.75  # the result, at the end

    run = wandb_run(wandb_dir, "pretrain-abc123")
    assert run["run"].run_group == tracking.group and run["run"].job_type == "pretrain"
    assert list(run["run"].tags) == ["objective.beta=-0.25"]
    assert run["config"]["stage_key"] == "abc123" and run["config"]["stage"] == CONFIG["stage"]
    for line in lines:
        row = run["history"][line["step"]]
        assert {k: row[k] for k in numbers(line)} == pytest.approx(numbers(line))
    assert run["summary"]["eval.arith.pass@4"] == 0.75 and run["summary"]["steps"] == 3


@pytest.mark.parametrize("trackers", ["mlflow"], indirect=True)
def test_a_failed_stage_is_a_failed_run(ray_session, trackers, tmp_path):
    spec, uri, _ = trackers
    stage_dir = tmp_path / "run" / "rl-def456"
    stage_dir.mkdir(parents=True)
    with pytest.raises(RuntimeError, match="boom"):
        with pipeline_tracking(spec, tmp_path / "run", {}) as tracking:
            with track_stage(tracking, "rl", "def456", {}, stage_dir):
                raise RuntimeError("boom")
    statuses = {r.info.run_name: r.info.status for r in mlflow_runs(uri)}
    assert statuses == {"rl-def456": "FAILED", tracking.group: "FAILED"}
