"""Trackers through `apply`, with the engine tests' small real stage functions: one MLflow
run per running stage under the pipeline's parent run, nothing new for cached stages, no
stage key touched by `logging:`, and an unreachable tracker stopped before any stage."""

import logging

import pytest

from rsrl.cli import EXIT_USAGE, main
from rsrl.pipeline.apply import apply_plan
from rsrl.pipeline.cache import Status, read_manifest, stage_status
from rsrl.pipeline.plan import compile_plan
from rsrl.spec import SpecError, load_spec
from rsrl.tracking.base import TrackerError, numbers
from rsrl.tracking.mlflow import mlflow_name
from rsrl.tracking.session import checked_trackers
from tests.pipeline import stage_fns
from tests.tracking.stores import mlflow_runs

SPEC = "specs/quickstart.yaml"
# One stage, the tokenizer: each running stage starts a tracker actor (seconds each).
SMALL = ["stages.pretrain=null", "stages.midtrain=null", "rl=null", "eval=null"]


def overrides(tmp_path, *more):
    return [f"workdir={tmp_path / 'run'}", *SMALL, *more]


def test_each_running_stage_is_one_run(ray_session, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    uri = (tmp_path / "mlruns").as_uri()
    plan = compile_plan(load_spec(SPEC, overrides(tmp_path, f"logging.mlflow.tracking_uri={uri}")))
    apply_plan(plan, stage_fns=stage_fns.ALL)

    runs = {r.info.run_name: r for r in mlflow_runs(uri)}
    (parent,) = [r for r in runs.values() if "mlflow.parentRunId" not in r.data.tags]
    assert len(runs) == len(plan.stages) + 1 == 2
    for stage in plan.stages:
        run = runs[f"{stage.name}-{stage.key}"]
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.data.params["stage_key"] == stage.key
        result = read_manifest(stage.out_dir(plan.workdir))["result"]
        assert run.data.metrics == {mlflow_name(k): v for k, v in numbers(result).items()}

    # Other tracker settings: every stage still cached, and cached stages log nothing.
    other = load_spec(SPEC, overrides(tmp_path, f"logging.mlflow.tracking_uri={uri}x"))
    assert all(stage_status(s, plan.workdir) is Status.CACHED for s in compile_plan(other).stages)
    apply_plan(plan, stage_fns=stage_fns.ALL)
    assert len(mlflow_runs(uri)) == len(runs)


def test_unreachable_tracker_stops_apply_before_any_stage(ray_session, tmp_path, capsys):
    down = "logging.mlflow.tracking_uri=http://127.0.0.1:9"
    assert main(["apply", SPEC, *overrides(tmp_path, down)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "logging.mlflow: the tracker is unreachable" in err and "on_error: warn" in err
    assert "Traceback" not in err
    plan = compile_plan(load_spec(SPEC, overrides(tmp_path, down)))
    assert not any(s.out_dir(plan.workdir).exists() for s in plan.stages)


def test_on_error_warn_runs_without_the_tracker(ray_session, tmp_path, caplog):
    spec = load_spec(
        SPEC,
        overrides(
            tmp_path, "logging.mlflow.tracking_uri=http://127.0.0.1:9", "logging.on_error=warn"
        ),
    )
    with caplog.at_level(logging.WARNING, logger="rsrl"):
        outcomes = apply_plan(compile_plan(spec), stage_fns=stage_fns.ALL)
    assert [o.status for o in outcomes] == [Status.WILL_RUN] * len(outcomes)
    assert "logging.mlflow" in caplog.text and "going on without it" in caplog.text


def test_wandb_online_without_an_api_key_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    spec = load_spec(SPEC, overrides(tmp_path, "logging.wandb.project=p"))
    with pytest.raises(TrackerError, match=r"logging\.wandb: .*No API key configured"):
        checked_trackers(spec, tmp_path)
    assert issubclass(TrackerError, SpecError)  # so the CLI exits 2
