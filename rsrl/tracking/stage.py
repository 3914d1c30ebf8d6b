"""A running stage's tracker runs, owned by one Ray actor.

The stage's task starts the actor (`track_stage`) under a name made from the stage's
directory, so the rank-0 worker's MetricsWriter finds it (`StepFeed.find`) from what it
already has: the training and RL loops carry no tracking code. One process owns each run,
so a worker restarted from a checkpoint keeps logging into the same one. Past the start
check a failing tracker is warned about and dropped: it never fails a stage.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rsrl.tracking.base import StageRun, Tracker, TrackerRun, numbers
from rsrl.tracking.session import Tracking

log = logging.getLogger("rsrl")
NAMESPACE = "rsrl-tracking"
WAIT_S = 120.0  # the longest a stage waits for its tracker runs to take its metrics


def actor_name(stage_dir: Path) -> str:
    return f"tracker:{Path(stage_dir).resolve()}"


class StageTrackers:
    """The Ray actor: the stage's run in each tracker, fed step records and its result."""

    def __init__(self, trackers: tuple[Tracker, ...], run: StageRun):
        self.runs: dict[str, TrackerRun] = {}
        for tracker in trackers:
            with self._guard(tracker.name):
                self.runs[tracker.name] = tracker.start(run)

    def log(self, record: Mapping[str, Any]) -> None:
        self._each(lambda run: run.log(numbers(record), int(record["step"])))

    def finish(self, result: Mapping[str, Any] | None) -> None:
        """`result`: the stage's; None when it failed."""
        self._each(lambda run: run.finish(numbers(result or {}), ok=result is not None))
        self.runs.clear()

    def _each(self, call: Callable[[TrackerRun], None]) -> None:
        for name, run in list(self.runs.items()):
            with self._guard(name):
                call(run)

    @contextlib.contextmanager
    def _guard(self, name: str) -> Iterator[None]:
        try:
            yield
        except Exception as err:  # each tracker library has its own errors
            self.runs.pop(name, None)
            log.warning("logging.%s: %s; this stage goes on without it", name, err)


@dataclass
class TrackedStage:
    result: dict | None = None  # set by the stage when it finishes


@contextlib.contextmanager
def track_stage(tracking: Tracking | None, name: str, key: str, config: dict, stage_dir: Path):
    """Start the stage's tracker actor, yield a TrackedStage for the stage's result, then
    finish its runs with that result (failed when the stage raised) and stop the actor."""
    tracked = TrackedStage()
    if tracking is None or not tracking.trackers:
        yield tracked
        return
    import ray

    run = StageRun(group=tracking.group, stage=name, key=key, config=config, tags=tracking.tags)
    # ray's stubs type this as the class, its methods without .remote
    actor: Any = (
        ray.remote(StageTrackers)
        .options(
            name=actor_name(stage_dir),
            namespace=NAMESPACE,
            num_cpus=0,
            runtime_env={"env_vars": dict(tracking.env)},
        )
        .remote(tracking.trackers, run)
    )
    try:
        yield tracked
    finally:
        try:
            ray.get(actor.finish.remote(tracked.result), timeout=WAIT_S)
        except Exception as err:  # the actor died or hangs: the stage's own work stands
            log.warning("logging: stage %s's tracker runs did not finish: %s", name, err)
        ray.kill(actor)


class StepFeed:
    """The rank-0 worker's end: each metrics record to the stage's tracker actor, in order."""

    def __init__(self, actor: Any):
        self.actor, self.last = actor, None

    @classmethod
    def find(cls, stage_dir: Path) -> StepFeed | None:
        """The feed of the stage in `stage_dir`; None when its run is not tracked."""
        import ray

        if not ray.is_initialized():
            return None
        try:
            return cls(ray.get_actor(actor_name(stage_dir), namespace=NAMESPACE))
        except ValueError:  # no such actor
            return None

    def send(self, record: Mapping[str, Any]) -> None:
        self.last = self.actor.log.remote(dict(record))

    def flush(self) -> None:
        """Wait until the tracker actor has taken every record sent (they run in order)."""
        import ray

        if self.last is not None:
            try:
                ray.get(self.last, timeout=WAIT_S)
            except Exception as err:  # see track_stage
                log.warning("logging: the tracker did not take the last metrics: %s", err)
