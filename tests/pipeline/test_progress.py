"""What `rsrl apply` shows while stages run: read from each stage's steps.jsonl."""

import io
import json
import time
from pathlib import Path

from rich.console import Console

from rsrl.pipeline import progress
from rsrl.pipeline.progress import LiveView, PlainView, duration, gain_note, step_progress


def log_steps(stage_dir: Path, *records: dict) -> None:
    stage_dir.mkdir(parents=True, exist_ok=True)
    with open(stage_dir / "steps.jsonl", "a") as f:
        for record in records:
            f.write(json.dumps(record) + "\n")


def test_a_step_reads_as_bar_rate_eta_and_key_number():
    first = {"step": 10, "total_steps": 100, "time": 1000.0}
    last = {"step": 30, "total_steps": 100, "time": 1040.0, "tokens_per_s": 12345.0}
    last |= {"shaped_loss": 3.21, "entropy": 2.95, "nll": 3.3}
    shown = step_progress(last, first)
    assert (shown.step, shown.total) == (30, 100)
    assert shown.eta_s == 140.0  # 2 s a step since the first step seen, 70 steps to go
    assert shown.rate == "12.3k tok/s" and shown.key == "loss 3.21 entropy 2.95"
    assert shown.describe() == "step 30/100 (30%), 12.3k tok/s, ETA 2m20s, loss 3.21 entropy 2.95"
    rl = step_progress({"step": 1, "total_steps": 20, "reward_mean": 0.125}, {"step": 1})
    assert rl.eta_s is None and rl.key == "reward 0.125"  # one step: no pace yet


def test_durations_read_in_seconds_minutes_and_hours():
    assert [duration(s) for s in (4.4, 75, 3 * 3600 + 120)] == ["4s", "1m15s", "3h02m"]


def test_eval_ends_with_its_first_rl_gain():
    result = {"eval.count.pass@4": 0.5, "eval.rl_gain.count.avg@16": 0.109}
    result["eval.rl_gain.count.avg@16_se"] = 0.016
    assert gain_note(result) == "RL gain count.avg@16 +0.109 ± 0.016"
    assert gain_note({"eval.count.pass@4": 0.5}) == ""


def test_plain_lines_start_end_and_progress_at_most_every_30s(tmp_path, monkeypatch):
    out = io.StringIO()
    view = PlainView({"pretrain": tmp_path / "pretrain"}, out)
    view.start("pretrain")
    log_steps(tmp_path / "pretrain", {"step": 5, "total_steps": 10, "time": time.time()})
    view.refresh()  # just started: no progress line before PLAIN_EVERY_S
    assert out.getvalue() == "pretrain: started\n"
    monkeypatch.setattr(progress, "PLAIN_EVERY_S", 0.0)
    view.refresh()
    view.refresh()  # no step logged since the last line: nothing new to say
    log_steps(tmp_path / "pretrain", {"step": 6, "total_steps": 10, "time": time.time()})
    monkeypatch.setattr(progress, "PLAIN_EVERY_S", 30.0)
    view.refresh()  # the line just printed starts the next wait
    assert view.end("pretrain", 75.0, {"steps": 10}) == ""
    assert out.getvalue().splitlines() == [
        "pretrain: started",
        "pretrain: step 5/10 (50%)",
        "pretrain: done in 1m15s",
    ]
    assert view.running() == []


def test_steps_logged_before_this_apply_started_are_not_its_progress(tmp_path):
    log_steps(tmp_path / "rl", {"step": 3, "total_steps": 10, "time": time.time() - 60})
    view = PlainView({"rl": tmp_path / "rl"}, io.StringIO())
    view.start("rl")  # resumes at step 3: the old line is no pace of this run
    assert view.progress("rl") is None


def test_live_view_keeps_a_line_per_running_stage_and_one_per_ended_stage(tmp_path):
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=140, color_system=None)
    dirs = {name: tmp_path / name for name in ("pretrain", "data-midtrain", "rl")}
    view = LiveView(dirs, console)
    view.start("pretrain")
    view.start("data-midtrain")
    log_steps(dirs["pretrain"], {"step": 2, "total_steps": 8, "time": time.time()})
    log_steps(
        dirs["pretrain"], {"step": 4, "total_steps": 8, "time": time.time(), "shaped_loss": 3.5}
    )
    view.refresh()
    assert view.bars.tasks[0].completed == 4 and view.bars.tasks[0].total == 8
    view.end("data-midtrain", 3.0, {})
    view.end("pretrain", 0.0, None)  # failed
    view.end("rl", 0.0, None)  # failed before the driver saw it start
    view.close()
    drawn = screen.getvalue()
    assert "done data-midtrain" in " ".join(drawn.split()) and "failed pretrain" in drawn
    assert "failed rl" in " ".join(drawn.split())
    assert "loss 3.5" in drawn and not view.bars.tasks
