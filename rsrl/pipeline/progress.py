"""What `rsrl apply` shows while stages run, drawn from the metrics file each one appends to.

Stages run in Ray workers; rather than piping bars through worker logs, the driver reads
`<stage dir>/steps.jsonl` (each line carries `step` and `total_steps`) about once a
second. On a terminal, a live view keeps one line per running stage (rich); a stage that
ends leaves one line with its time above it. Off a terminal, plain lines: a start and an
end line per stage, and at most one progress line per stage every PLAIN_EVERY_S seconds.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn

from rsrl.eval.results import RL_GAIN
from rsrl.layout import STEP_METRICS

PLAIN_EVERY_S = 30.0
# The numbers a stage's line shows: the first of each group its metrics have.
RATES = (("tokens_per_s", "tok/s"), ("rollout_tokens_per_s", "rollout tok/s"))
KEY_NUMBERS = (("shaped_loss", "loss"), ("reward_mean", "reward"), ("entropy", "entropy"))


def last_record(stage_dir: Path) -> dict | None:
    path = stage_dir / STEP_METRICS
    try:
        with open(path, "rb") as f:
            f.seek(max(0, path.stat().st_size - 65536))
            lines = f.read().decode(errors="replace").strip().splitlines()
        return json.loads(lines[-1]) if lines else None
    except (OSError, ValueError):  # not started yet, or a line being written
        return None


@dataclass(frozen=True)
class StepProgress:
    """Where a running stage is: its last logged step, and what the line shows of it."""

    step: int
    total: int
    rate: str  # "12.3k tok/s", or ""
    eta_s: float | None  # None until two logged steps give a pace
    key: str  # "loss 3.210 entropy 2.95", or ""

    def describe(self) -> str:
        parts = [f"step {self.step}/{self.total} ({self.step / max(self.total, 1):.0%})"]
        parts += [self.rate] if self.rate else []
        parts += [f"ETA {duration(self.eta_s)}"] if self.eta_s is not None else []
        return ", ".join(parts + ([self.key] if self.key else []))


def step_progress(record: dict, anchor: dict) -> StepProgress:
    """`record` (the last logged step) against `anchor` (the first seen in this apply): the
    pace between them gives the ETA, so a resumed stage's earlier steps do not count."""
    step, total = int(record["step"]), int(record["total_steps"])
    eta = None
    if step > anchor["step"] and "time" in record and "time" in anchor:
        per_step = (record["time"] - anchor["time"]) / (step - anchor["step"])
        eta = max(0.0, per_step * (total - step))
    rate = next((f"{si(record[k])} {unit}" for k, unit in RATES if _number(record.get(k))), "")
    key = " ".join(f"{label} {record[k]:.3g}" for k, label in KEY_NUMBERS if _number(record.get(k)))
    return StepProgress(step, total, rate, eta, key)


def duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    return f"{minutes}m{seconds:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


def si(value: float) -> str:
    for factor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.1f}{suffix}"
    return f"{value:.3g}"


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class StageView:
    """The stages of one apply as they start, progress and end. Subclasses draw them; this
    one draws nothing (a sweep's trials, tests). `running()` also tells the worker logs
    (`worker_logs.py`) which stage a line belongs to."""

    def __init__(self, stage_dirs: dict[str, Path]):
        self.stage_dirs = stage_dirs
        self.started: dict[str, float] = {}  # running stages, in the order they started
        self.anchors: dict[str, dict] = {}

    def running(self) -> list[str]:
        return list(self.started)

    def start(self, name: str) -> None:
        self.started[name] = time.time()

    def progress(self, name: str) -> StepProgress | None:
        record = last_record(self.stage_dirs[name])
        if not record or "total_steps" not in record or "step" not in record:
            return None
        if record.get("time", math.inf) < self.started.get(name, 0.0):
            return None  # a line from an earlier apply this one resumes
        anchor = self.anchors.setdefault(name, record)
        return step_progress(record, anchor)

    def refresh(self) -> None:
        pass

    def end(self, name: str, seconds: float, result: dict | None = None) -> str:
        """Stage `name` ended after `seconds`, with `result` (None: it failed); returns its
        key number for the end line: the last logged step's, else its RL gain (eval)."""
        progress = self.progress(name) if name in self.started else None
        self.started.pop(name, None)
        if progress is not None and progress.key:
            return progress.key
        return gain_note(result or {})

    def close(self) -> None:
        pass


class PlainView(StageView):
    """Lines for a log file or a pipe: start, end, and a progress line at most every
    PLAIN_EVERY_S seconds, when a step was logged since the last."""

    def __init__(self, stage_dirs: dict[str, Path], out: TextIO | None = None):
        super().__init__(stage_dirs)
        self.out = out or sys.stdout
        self.last_line: dict[str, float] = {}
        self.last_step: dict[str, int] = {}  # a line only when the stage has moved on

    def print(self, line: str) -> None:
        print(line, file=self.out, flush=True)

    def start(self, name: str) -> None:
        super().start(name)
        self.last_line[name] = time.time()
        self.print(f"{name}: started")

    def refresh(self) -> None:
        now = time.time()
        for name in self.running():
            if now - self.last_line[name] < PLAIN_EVERY_S:
                continue
            progress = self.progress(name)
            if progress is not None and progress.step != self.last_step.get(name):
                self.last_line[name], self.last_step[name] = now, progress.step
                self.print(f"{name}: {progress.describe()}")

    def end(self, name: str, seconds: float, result: dict | None = None) -> str:
        note = super().end(name, seconds, result)
        done = "done in" if result is not None else "failed after"
        self.print(f"{name}: {done} {duration(seconds)}{_after(note)}")
        return note


class LiveView(StageView):
    """One live line per running stage: status, bar of steps, rate, ETA, key number."""

    def __init__(self, stage_dirs: dict[str, Path], console: Console | None = None):
        super().__init__(stage_dirs)
        self.bars = Progress(
            TextColumn("{task.fields[status]:>7}"),
            TextColumn("[bold]{task.description:<14}"),
            BarColumn(bar_width=30),
            TextColumn("{task.fields[steps]:>9}"),
            TextColumn("{task.fields[rate]}"),
            TextColumn("{task.fields[eta]}"),
            TextColumn("{task.fields[key]}"),
            console=console or Console(),
            refresh_per_second=2,
        )
        self.tasks: dict[str, TaskID] = {}
        self.bars.start()

    def start(self, name: str) -> None:
        super().start(name)
        self.tasks[name] = self.bars.add_task(
            name, total=None, status="running", steps="", rate="", eta="", key=""
        )

    def refresh(self) -> None:
        for name in self.running():
            progress = self.progress(name)
            if progress is None:
                continue
            self.bars.update(
                self.tasks[name],
                total=progress.total,
                completed=progress.step,
                steps=f"{progress.step}/{progress.total}",
                rate=progress.rate,
                eta="" if progress.eta_s is None else f"ETA {duration(progress.eta_s)}",
                key=progress.key,
            )

    def end(self, name: str, seconds: float, result: dict | None = None) -> str:
        note = super().end(name, seconds, result)
        if name in self.tasks:  # a stage that fails may end before the driver saw it start
            self.bars.remove_task(self.tasks.pop(name))
        mark = f"[green]{'done':>7}[/]" if result is not None else f"[red]{'failed':>7}[/]"
        line = f"{mark} [bold]{name:<14}[/] {duration(seconds)}{_after(note)}"
        self.bars.console.print(line, highlight=False)
        return note

    def close(self) -> None:
        self.bars.stop()


def gain_note(result: dict) -> str:
    """The first RL gain of an eval stage's result (flat names, `rsrl.eval.results`)."""
    prefix = f"eval.{RL_GAIN}."
    name = next((k for k in result if k.startswith(prefix) and not k.endswith("_se")), None)
    if name is None:
        return ""
    se = result.get(f"{name}_se", math.nan)
    return f"RL gain {name[len(prefix) :]} {result[name]:+.3f} ± {se:.3f}"


def _after(note: str) -> str:
    return f", {note}" if note else ""


def stage_view(stage_dirs: dict[str, Path], live: bool) -> StageView:
    return LiveView(stage_dirs) if live else PlainView(stage_dirs)
