"""Third-party output goes to files: every line a Ray worker prints lands in the logs/ of
the stage it belongs to, and a failed stage's log ends with its error."""

import io
import time
from pathlib import Path

import pytest

from rsrl.cli import _print_failure
from rsrl.layout import APPLY_LOG
from rsrl.pipeline.apply import StageFailed, apply_plan
from rsrl.pipeline.plan import compile_plan
from rsrl.pipeline.progress import PlainView
from rsrl.pipeline.worker_logs import (
    HANDLER,
    RAYS_PRINTER,
    WorkerLogs,
    file_worker_lines,
    stage_log,
)
from rsrl.spec import load_spec
from tests.pipeline import stage_fns

QUICKSTART = Path(__file__).resolve().parents[2] / "specs" / "quickstart.yaml"


def batch(pid, lines, task="", actor=""):
    return {"pid": pid, "lines": lines, "task_name": task, "actor_name": actor, "is_err": False}


def test_lines_are_routed_by_task_then_by_the_stage_running(tmp_path):
    dirs = {"pretrain": tmp_path / "pretrain-1", "rl": tmp_path / "rl-2"}
    running: list[str] = []
    logs = WorkerLogs(tmp_path / APPLY_LOG, dirs, lambda: running)
    logs.write(batch("raylet", ["raylet notice"]))
    status = ["======== Autoscaler status ========", "Node status"]
    logs.write(batch("autoscaler", [*status, "INFO :event_summary:Adding 1 node(s)"]))
    logs.write(batch(7, ["an idle worker before any stage"]))
    running += ["pretrain", "rl"]
    logs.write(batch(11, ["pretrain's own line"], task="rsrl:pretrain"))
    logs.write(batch(12, ["INFO vllm engine config"], actor="RolloutWorker"))
    logs.write(batch(13, ["Map(tokenize) done"], task="Map(tokenize)->Write"))
    running.remove("rl")  # eval borrows the rollout actor: its lines stay with rl's
    logs.write(batch(12, ["INFO generating for eval"], actor="RolloutWorker"))
    assert (tmp_path / APPLY_LOG).read_text() == "raylet notice\nAdding 1 node(s)\n"
    assert (tmp_path / "logs" / "worker-7.log").read_text() == "an idle worker before any stage\n"
    assert stage_log(dirs["pretrain"]).read_text() == "pretrain's own line\n"
    logs_dir = dirs["rl"] / "logs"  # the last stage to start takes lines of unknown stage
    rollout = (logs_dir / "RolloutWorker-12.log").read_text()
    assert rollout == "INFO vllm engine config\nINFO generating for eval\n"
    assert (logs_dir / "Map(tokenize)-_Write-13.log").read_text() == "Map(tokenize) done\n"


def wait_for_text(path: Path, text: str, deadline_s: float = 60.0) -> str:
    """The file's text once it holds `text`: Ray streams worker lines a moment later."""
    deadline = time.time() + deadline_s
    while time.time() < deadline:
        if path.is_file() and text in path.read_text():
            return path.read_text()
        time.sleep(0.2)
    return path.read_text() if path.is_file() else ""


def test_an_apply_leaves_each_stage_output_in_its_logs_and_prints_none(
    ray_session, tmp_path, capfd
):
    from ray._private.ray_logging import global_worker_stdstream_dispatcher as dispatcher

    (rays_printer,) = [h for name, h in dispatcher.handlers if name == RAYS_PRINTER]
    plan = compile_plan(load_spec(QUICKSTART, [f"workdir={tmp_path}"]))
    dirs = plan.stage_dirs()
    shown = io.StringIO()
    view = PlainView(dirs, shown)
    fns = {**stage_fns.ALL, "pretrain": stage_fns.chatty_train, "midtrain": stage_fns.failing}
    file_worker_lines(WorkerLogs(tmp_path / APPLY_LOG, dirs, view.running), verbose=False)
    try:
        with pytest.raises(StageFailed) as failed:
            apply_plan(plan, stage_fns=fns, view=view)
    finally:  # the other tests' workers print as Ray does
        dispatcher.remove_handler(HANDLER)
        dispatcher.add_handler(RAYS_PRINTER, rays_printer)
    assert wait_for_text(stage_log(dirs["pretrain"]), "on stderr")
    own = stage_log(dirs["pretrain"]).read_text()
    assert "pretrain: library notice on stdout" in own and "library warning on stderr" in own
    engine = next((dirs["pretrain"] / "logs").glob("Engine-*.log"))
    assert "pretrain: engine line" in wait_for_text(engine, "engine line")
    printed = capfd.readouterr()
    assert "library" not in printed.out + printed.err and "engine line" not in printed.out

    # The failed stage's log ends with its error, traceback included; the view says so.
    assert failed.value.log == stage_log(dirs["midtrain"])
    assert "boom: deliberately broken stage" in failed.value.log.read_text()
    lines = shown.getvalue().splitlines()
    assert "pretrain: started" in lines and any(li.startswith("pretrain: done in") for li in lines)
    assert any(li.startswith("midtrain: failed after") for li in lines)


def test_a_failure_shows_the_last_20_lines_of_its_log_and_its_path(tmp_path, capsys):
    log = tmp_path / "logs" / "stage.log"
    log.parent.mkdir()
    log.write_text("".join(f"line {i}\n" for i in range(1, 31)))
    _print_failure(StageFailed("rl", RuntimeError("engine died"), log))
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "rsrl: stage 'rl' failed: engine died"
    assert err[1] == f"rsrl: the last 20 lines of {log}:"
    assert err[2:22] == [f"  | line {i}" for i in range(11, 31)]
    assert err[22].startswith("rsrl: the stages finished before it are kept")
