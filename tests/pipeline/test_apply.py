"""The engine on real Ray with small real stage functions: caching, resume, failures, the lock."""

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from rsrl.layout import MANIFEST
from rsrl.pipeline import apply as apply_module
from rsrl.pipeline.apply import StageFailed, apply_plan
from rsrl.pipeline.cache import Status, read_manifest, stage_status
from rsrl.pipeline.lock import WorkdirBusy, workdir_lock
from rsrl.pipeline.plan import compile_plan
from rsrl.pipeline.registry import StageNotImplemented, resolve_stage_fn
from rsrl.spec import load_spec
from tests.pipeline import stage_fns

QUICKSTART = Path(__file__).resolve().parents[2] / "specs" / "quickstart.yaml"


def plan_in(workdir: Path, *overrides: str):
    return compile_plan(load_spec(QUICKSTART, [f"workdir={workdir}", *overrides]))


def runs(workdir: Path) -> list[str]:
    log = workdir / "runs.log"
    return log.read_text().split() if log.exists() else []


def test_apply_runs_everything_then_nothing(ray_session, tmp_path):
    plan = plan_in(tmp_path)
    outcomes = apply_plan(plan, stage_fns=stage_fns.ALL)
    assert [o.stage for o in outcomes] == [s.name for s in plan.stages]
    assert sorted(runs(tmp_path)) == sorted(s.name for s in plan.stages)
    for stage in plan.stages:
        manifest = read_manifest(stage.out_dir(tmp_path))
        assert manifest["key"] == stage.key and manifest["inputs"] == list(stage.inputs)
    # Real data flowed along the edges: midtrain saw pretrain's steps plus its own data rows.
    mid = json.loads((plan.stage("midtrain").out_dir(tmp_path) / "output.json").read_text())
    pre, midtrain = plan.spec.stages.pretrain, plan.spec.stages.midtrain
    assert mid["steps"] == pre.tokens // pre.seq_len + midtrain.tokens // midtrain.seq_len

    again = apply_plan(plan_in(tmp_path), stage_fns=stage_fns.ALL)
    assert all(o.status is Status.CACHED for o in again)
    assert len(runs(tmp_path)) == len(plan.stages)  # nothing ran a second time


def test_changing_rl_reruns_only_rl_eval_report(ray_session, tmp_path):
    apply_plan(plan_in(tmp_path), stage_fns=stage_fns.ALL)
    before = len(runs(tmp_path))
    apply_plan(plan_in(tmp_path, "rl.group_size=4"), stage_fns=stage_fns.ALL)
    assert runs(tmp_path)[before:] and sorted(runs(tmp_path)[before:]) == ["eval", "report", "rl"]


def test_failed_stage_keeps_finished_stages(ray_session, tmp_path):
    fns = {**stage_fns.ALL, "midtrain": stage_fns.failing}
    plan = plan_in(tmp_path)
    with pytest.raises(StageFailed, match="midtrain.*boom"):
        apply_plan(plan, stage_fns=fns)
    assert stage_status(plan.stage("pretrain"), tmp_path) is Status.CACHED
    assert stage_status(plan.stage("midtrain"), tmp_path) is Status.RESUMABLE
    assert not (plan.stage("midtrain").out_dir(tmp_path) / MANIFEST).exists()

    done = len(runs(tmp_path))
    apply_plan(plan, stage_fns=stage_fns.ALL)  # the fix: re-apply resumes after pretrain
    assert sorted(runs(tmp_path)[done:]) == ["eval", "midtrain", "report", "rl"]


def test_a_failed_stage_cancels_the_one_beside_it_and_ends_its_downstream(ray_session, tmp_path):
    fns = {**stage_fns.ALL, "data": stage_fns.pretrain_data_fails_midtrain_data_hangs}
    plan = plan_in(tmp_path)
    with pytest.raises(StageFailed, match="data-pretrain.*boom"):
        apply_plan(plan, stage_fns=fns)
    # data-midtrain was cancelled mid-sleep; every stage after the data ended without running.
    assert (plan.stage("data-midtrain").out_dir(tmp_path) / "cancelled.txt").exists()
    assert stage_status(plan.stage("tokenizer"), tmp_path) is Status.CACHED
    assert sorted(runs(tmp_path)) == ["tokenizer"]


def test_the_failed_stage_is_named_when_the_driver_sees_its_downstream_end_too(
    ray_session, tmp_path, monkeypatch
):
    """pretrain ends with data-pretrain's error as soon as data-pretrain fails; a driver that
    looks only after both ended gets either from ray.wait (here the later one, as Ray may)."""
    wait, looked = ray_session.wait, []

    def late_wait(refs, num_returns=1, timeout=None, **kw):
        if num_returns > 1 or looked:
            return wait(refs, num_returns=num_returns, timeout=timeout, **kw)
        # The only stages that can end before a cancel: tokenizer, data-pretrain, pretrain.
        ready, _ = wait(refs, num_returns=3, timeout=120, **kw)
        looked.append(len(ready))
        return ready[-1:], [ref for ref in refs if ref not in ready[-1:]]

    monkeypatch.setattr(ray_session, "wait", late_wait)
    fns = {**stage_fns.ALL, "data": stage_fns.pretrain_data_fails_midtrain_data_hangs}
    plan = plan_in(tmp_path)
    with pytest.raises(StageFailed, match="data-pretrain.*boom") as err:
        apply_plan(plan, stage_fns=fns)
    assert looked == [3] and err.value.stage == "data-pretrain"
    assert (plan.stage("data-midtrain").out_dir(tmp_path) / "cancelled.txt").exists()
    assert sorted(runs(tmp_path)) == ["tokenizer"]


def test_a_stage_is_cancellable_whatever_sigint_handler_its_worker_was_left_with(
    ray_session, tmp_path
):
    """Ray's cancel raises KeyboardInterrupt only under Python's own SIGINT handler, and a task
    that ran earlier in the same worker may have left SIG_DFL: the stage task restores it."""
    started = tmp_path / "started"

    @ray_session.remote(max_retries=0)
    def left_with_sig_dfl() -> str:
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # as an earlier task may have left it
        apply_module.make_cancellable()  # what every stage task does first
        try:
            started.write_text("running")
            for _ in range(600):
                time.sleep(0.1)
        except KeyboardInterrupt:
            return "interrupted"
        return "ran to the end"

    ref = left_with_sig_dfl.remote()
    deadline = time.time() + 60
    while not started.exists() and time.time() < deadline:
        time.sleep(0.05)
    ray_session.cancel(ref)
    assert ray_session.get(ref, timeout=30) == "interrupted"


def test_a_cancelled_stage_that_ignores_the_cancel_ends_before_apply_returns(
    ray_session, tmp_path, monkeypatch
):
    monkeypatch.setattr(apply_module, "ABANDON_SECONDS", 1.0)
    fns = {**stage_fns.ALL, "data": stage_fns.pretrain_data_fails_midtrain_data_ignores_cancel}
    plan = plan_in(tmp_path)
    with pytest.raises(StageFailed, match="data-pretrain.*boom"):
        apply_plan(plan, stage_fns=fns)
    out_dir = plan.stage("data-midtrain").out_dir(tmp_path)
    assert (out_dir / "ignored-cancel.txt").exists()  # Ray's KeyboardInterrupt came, in vain
    beats = (out_dir / "beats.txt").read_text()
    time.sleep(0.5)  # five beats, had it still been running
    assert (out_dir / "beats.txt").read_text() == beats
    assert sorted(runs(tmp_path)) == ["tokenizer"]


def test_unbuilt_stage_fails_clearly(ray_session, tmp_path):
    with pytest.raises(StageNotImplemented, match="not implemented yet"):
        resolve_stage_fn("no-such-stage")
    fns = {**stage_fns.ALL, "rl": stage_fns.unbuilt}
    with pytest.raises(StageFailed) as err:
        apply_plan(plan_in(tmp_path), stage_fns=fns)
    assert isinstance(err.value.cause, StageNotImplemented)
    assert "not implemented yet" in str(err.value)


def test_second_apply_on_a_locked_workdir_fails_or_waits(ray_session, tmp_path):
    plan = plan_in(tmp_path)
    with workdir_lock(tmp_path):
        with pytest.raises(WorkdirBusy, match="another rsrl run holds"):
            apply_plan(plan, stage_fns=stage_fns.ALL)
    assert runs(tmp_path) == []

    acquired, release = threading.Event(), threading.Event()

    def hold_lock():
        with workdir_lock(tmp_path):
            acquired.set()
            release.wait(timeout=30)

    holder = threading.Thread(target=hold_lock)
    holder.start()
    assert acquired.wait(timeout=10)
    threading.Timer(1.0, release.set).start()
    outcomes = apply_plan(plan, wait_for_lock=True, stage_fns=stage_fns.ALL)
    holder.join()
    assert len(outcomes) == len(plan.stages) and len(runs(tmp_path)) == len(plan.stages)


def test_cli_plan_shows_dag_and_status(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "rsrl.cli", "plan", str(QUICKSTART), f"workdir={tmp_path}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "stage" in lines[1] and "key" in lines[1] and "status" in lines[1]
    assert [line.split()[0] for line in lines[2:]] == [
        "tokenizer",
        "data-pretrain",
        "pretrain",
        "data-midtrain",
        "midtrain",
        "rl",
        "eval",
        "report",
    ]
    assert all("will run" in line for line in lines[2:])
    assert not any(tmp_path.iterdir())  # plan runs nothing, writes nothing


def test_shared_workdir_runs_each_stage_once_across_concurrent_applies(ray_session, tmp_path):
    """Two applies that differ only in rl.* at once (as sweep trials do): the stages they
    share run once, behind their stage locks; each apply runs its own rl, eval, report."""
    plans = [plan_in(tmp_path, f"rl.group_size={g}") for g in (4, 6)]
    results = []
    threads = [
        threading.Thread(
            target=lambda p=p: results.append(
                apply_plan(p, shared_workdir=True, stage_fns=stage_fns.ALL)
            )
        )
        for p in plans
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 2
    ran = runs(tmp_path)
    for shared in ("tokenizer", "data-pretrain", "pretrain", "data-midtrain", "midtrain"):
        assert ran.count(shared) == 1, ran
    for own in ("rl", "eval", "report"):
        assert ran.count(own) == 2, ran


def break_manifest(out_dir: Path, how: str) -> None:
    path = out_dir / MANIFEST
    if how == "truncated":
        path.write_text(path.read_text()[:40])
    elif how == "another stage's":
        path.write_text(json.dumps({**json.loads(path.read_text()), "key": "0123456789ab"}))
    else:  # an output it lists is gone
        (out_dir / "output.json").rename(out_dir.parent / "moved-away.json")


@pytest.mark.parametrize("how", ["truncated", "another stage's", "output gone"])
def test_a_broken_manifest_is_shown_and_rerun_keeping_the_stage_dir(ray_session, tmp_path, how):
    plan = plan_in(tmp_path)
    apply_plan(plan, stage_fns=stage_fns.ALL)
    out_dir = plan.stage("pretrain").out_dir(tmp_path)
    (out_dir / "checkpoints").mkdir()
    (out_dir / "checkpoints" / "latest.json").write_text('{"step": 3, "tag": "step-000003"}')
    break_manifest(out_dir, how)
    assert stage_status(plan.stage("pretrain"), tmp_path) is Status.BROKEN

    shown = subprocess.run(
        [sys.executable, "-m", "rsrl.cli", "plan", str(QUICKSTART), f"workdir={tmp_path}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    row = next(line for line in shown.stdout.splitlines() if line.split()[:1] == ["pretrain"])
    assert "broken" in row and "cached" not in row
    note = next(line for line in shown.stdout.splitlines() if line.startswith("pretrain is"))
    assert note.startswith("pretrain is broken: ") and MANIFEST in note
    assert note.endswith("`rsrl apply` runs it again, keeping what its directory holds")

    done = len(runs(tmp_path))
    outcomes = apply_plan(plan_in(tmp_path), stage_fns=stage_fns.ALL)
    assert runs(tmp_path)[done:] == ["pretrain"]  # downstream keys did not change: still cached
    assert {o.stage: o.status for o in outcomes}["pretrain"] is Status.BROKEN
    assert (out_dir / "checkpoints" / "latest.json").exists()  # what it left is kept
    assert stage_status(plan.stage("pretrain"), tmp_path) is Status.CACHED
    assert read_manifest(out_dir)["outputs"] == ["checkpoints", "output.json"]
