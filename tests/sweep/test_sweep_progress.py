"""What `rsrl sweep` shows: trials done of the total, the running trial's arm, seed and
stage, and an ETA from the trials finished so far (Tune's own Trial objects)."""

import re

from ray.tune.experiment import Trial

from rsrl.sweep import progress as sweep_progress
from rsrl.sweep.progress import SweepProgress
from rsrl.sweep.run import describe_trial


def trials(*configs: dict) -> list[Trial]:
    return [Trial("run_trial", config=config, stub=True) for config in configs]


def test_trials_are_counted_named_and_timed(capsys, monkeypatch):
    grid = trials(*({"objective.beta": b, "seed": s} for b in (-0.25, 0.5) for s in (0, 1)))
    shown = SweepProgress(total=4, describe=describe_trial, stage_of=lambda config: "pretrain")
    first, second = grid[0], grid[1]
    first.set_status(Trial.RUNNING)
    shown.on_trial_start(0, grid, first)
    shown.started[first.trial_id] -= 600  # it started ten minutes ago
    shown.on_trial_complete(1, grid, first)  # Tune marks it TERMINATED after its callbacks
    first.set_status(Trial.TERMINATED)
    second.set_status(Trial.RUNNING)
    shown.on_trial_start(2, grid, second)
    monkeypatch.setattr(sweep_progress, "STATUS_EVERY_S", 0.0)
    shown.on_step_end(3, grid)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "trial 1/4 started: objective.beta=-0.25, seed=0"
    assert re.fullmatch(
        r"trial done in 10m00s: objective\.beta=-0\.25, seed=0; 1/4 done, ETA 30m00s", lines[1]
    ), lines[1]
    assert lines[2] == "trial 2/4 started: objective.beta=-0.25, seed=1"
    # one running (a mean trial left of it), two waiting: three trials of ten minutes
    assert lines[3].startswith("running: objective.beta=-0.25, seed=1, stage pretrain; 1/4 done")


def test_no_eta_before_a_trial_has_finished(capsys):
    grid = trials({"objective.beta": 0.0})
    grid[0].set_status(Trial.RUNNING)
    shown = SweepProgress(total=1, describe=describe_trial, stage_of=lambda config: None)
    shown.on_trial_error(0, grid, grid[0])  # started before this process: no time of its own
    assert capsys.readouterr().out == "trial failed: objective.beta=0; 0/1 done, 1 failed\n"
