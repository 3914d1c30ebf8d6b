"""Third-party output into files: what Ray's workers print goes to their stage's `logs/`.

Ray streams every line a worker process prints (vLLM, Ray Data, DeepSpeed, transformers,
Python warnings, rsrl's own worker lines) to the driver, tagged with the process id and the
task or actor printing it. Instead of printing them, the driver writes each process's lines
to `<stage dir>/logs/<task or actor>-<pid>.log`; the lines of a stage's own task go to
`<stage dir>/logs/stage.log`. A line is the stage's whose task printed it; any other (an
actor, a Ray Data task) belongs to the stage that started last of those running, which is
exact when one stage runs at a time and a best guess beside others. Lines with no stage
running go to `logs/` beside the apply's log (a sweep: all of them), and Ray's own
(raylet, autoscaler) to the apply's log itself.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from rsrl.layout import LOGS

STAGE_LOG = "stage.log"  # the lines of the stage's own task
STAGE_TASK = "rsrl:"  # the prefix of a stage task's name (pipeline/apply.py)
HANDLER = "rsrl_worker_logs"
RAYS_PRINTER = "ray_print_logs"  # Ray's own handler, which prints every line
AUTOSCALER_EVENT = ":event_summary:"  # marks the autoscaler's lines that Ray prints


def stage_log(stage_dir: Path) -> Path:
    return stage_dir / LOGS / STAGE_LOG


class WorkerLogs:
    """Writes the batches of lines Ray streams to the driver into per-process files.

    `running()` names the stages running now, in the order they started; `stage_dirs` maps
    each stage name to its directory. Called from Ray's log thread, hence the lock."""

    def __init__(
        self,
        apply_log: Path,
        stage_dirs: dict[str, Path],
        running: Callable[[], list[str]],
    ):
        self.apply_log, self.stage_dirs, self.running = apply_log, stage_dirs, running
        self.files: dict[Path, IO[str]] = {}
        self.homes: dict[str, Path] = {}  # pid -> the directory its logs/ is in
        self.lock = threading.Lock()

    def write(self, batch: dict[str, Any]) -> None:
        lines = batch.get("lines") or []
        if batch.get("pid") == "autoscaler":  # its events, not its cluster status every 5 s
            lines = [
                line.split(AUTOSCALER_EVENT, 1)[1] for line in lines if AUTOSCALER_EVENT in line
            ]
        if not lines:
            return
        path = self.path_for(batch)
        with self.lock:
            f = self.files.get(path)
            if f is None:
                path.parent.mkdir(parents=True, exist_ok=True)
                f = self.files[path] = open(path, "a", buffering=1)
            f.writelines(line + "\n" for line in lines)

    def path_for(self, batch: dict[str, Any]) -> Path:
        pid = str(batch.get("pid", ""))
        task, actor = batch.get("task_name") or "", batch.get("actor_name") or ""
        if pid in ("raylet", "autoscaler"):
            return self.apply_log
        if task.startswith(STAGE_TASK) and task[len(STAGE_TASK) :] in self.stage_dirs:
            return stage_log(self.stage_dirs[task[len(STAGE_TASK) :]])
        if pid not in self.homes:  # a process stays with the stage it first printed in
            running = self.running()
            self.homes[pid] = self.stage_dirs[running[-1]] if running else self.apply_log.parent
        name = re.sub(r"[^A-Za-z0-9_.()-]+", "_", actor or task or "worker")[:80]
        return self.homes[pid] / LOGS / f"{name}-{pid}.log"


def file_worker_lines(logs: WorkerLogs, verbose: bool) -> None:
    """From now on, for the rest of the driver's Ray session, write the lines Ray streams
    from its workers into `logs`; `verbose` prints them too, as Ray does by default. Never
    undone: the last lines come after the stages have ended (actors stopping), and printed
    they would land among the results."""
    from ray._private.ray_logging import global_worker_stdstream_dispatcher as dispatcher

    dispatcher.remove_handler(HANDLER)  # an earlier apply's, in the same process
    if not verbose:
        dispatcher.remove_handler(RAYS_PRINTER)
    dispatcher.add_handler(HANDLER, logs.write)


@contextlib.contextmanager
def output_to(path: Path) -> Iterator[None]:
    """The process's stdout and stderr, file descriptors included (Ray's C++ core writes to
    them directly), appended to `path` while the block runs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with open(path, "a") as f:
        os.dup2(f.fileno(), 1)
        os.dup2(f.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
