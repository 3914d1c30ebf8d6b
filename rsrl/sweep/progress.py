"""What `rsrl sweep` shows while it runs: trials done of the total, the running trial's arm,
seed and stage, and an ETA from the trials finished so far.

A Tune callback on the driver. Each trial is a whole apply in a Tune worker; the stage it is
in is read from the workdir the trials share: the first stage of its plan without a
manifest (pipeline/cache.py). Plain lines: one when a trial starts and ends, and a status
line every STATUS_EVERY_S seconds.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from ray.tune import Callback

from rsrl.pipeline.progress import duration

STATUS_EVERY_S = 60.0
DONE, ERROR, RUNNING = "TERMINATED", "ERROR", "RUNNING"  # Tune's trial statuses


class SweepProgress(Callback):
    """`total`: the trials of the whole sweep; `describe(config)`: a trial's arm and seed;
    `stage_of(config)`: the stage its apply is in."""

    def __init__(
        self,
        total: int,
        describe: Callable[[dict], str],
        stage_of: Callable[[dict], str | None],
    ):
        self.total, self.describe, self.stage_of = total, describe, stage_of
        self.started: dict[str, float] = {}  # trial id -> when it started, in this process
        self.seconds: list[float] = []  # the trials that finished here, for the ETA
        self.last_status = time.time()

    def print(self, line: str) -> None:  # no stream kept: Tune pickles its callbacks
        print(line, file=sys.stdout, flush=True)

    def on_trial_start(self, iteration: int, trials: Sequence[Any], trial: Any, **info) -> None:
        self.started[trial.trial_id] = time.time()
        number = sum(t.status in (DONE, ERROR, RUNNING) for t in trials if t is not trial) + 1
        self.print(f"trial {number}/{self.total} started: {self.describe(trial.config)}")

    def on_trial_complete(self, iteration: int, trials: Sequence[Any], trial: Any, **info) -> None:
        self._ended(trials, trial, "done")

    def on_trial_error(self, iteration: int, trials: Sequence[Any], trial: Any, **info) -> None:
        self._ended(trials, trial, "failed")

    def _ended(self, trials: Sequence[Any], trial: Any, how: str) -> None:
        started = self.started.pop(trial.trial_id, None)
        took = ""
        if started is not None:
            self.seconds.append(time.time() - started)
            took = f" in {duration(self.seconds[-1])}"
        status = self.status(trials, {trial.trial_id: DONE if how == "done" else ERROR})
        self.print(f"trial {how}{took}: {self.describe(trial.config)}; {status}")

    def on_step_end(self, iteration: int, trials: Sequence[Any], **info) -> None:
        if time.time() - self.last_status < STATUS_EVERY_S:
            return
        self.last_status = time.time()
        running = [t for t in trials if t.status == RUNNING]
        for trial in running:
            stage = self.stage_of(trial.config)
            where = f", stage {stage}" if stage else ""
            self.print(f"running: {self.describe(trial.config)}{where}; {self.status(trials)}")

    def status(self, trials: Sequence[Any], ending: dict[str, str] | None = None) -> str:
        """'6/15 done, 1 failed, ETA 42m' (the ETA once a trial has finished here).
        `ending`: the status of trials that end now, which Tune marks only after its call."""
        statuses = [(ending or {}).get(t.trial_id, t.status) for t in trials]
        done, failed = statuses.count(DONE), statuses.count(ERROR)
        line = f"{done}/{self.total} done" + (f", {failed} failed" if failed else "")
        eta = self.eta(trials, done + failed)
        return line + (f", ETA {duration(eta)}" if eta is not None else "")

    def eta(self, trials: Sequence[Any], ended: int) -> float | None:
        """The mean trial time over the trials to come, as many at once as run now; the
        running ones count by what is left of a mean trial."""
        if not self.seconds or ended >= self.total:
            return None
        mean = sum(self.seconds) / len(self.seconds)
        now = time.time()
        running = [self.started[t.trial_id] for t in trials if t.trial_id in self.started]
        waiting = max(0, self.total - ended - len(running))
        left = sum(max(0.0, mean - (now - start)) for start in running) + waiting * mean
        return left / max(1, len(running))
