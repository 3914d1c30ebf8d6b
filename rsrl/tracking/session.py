"""The trackers of one pipeline run, on the driver: built from `logging:`, checked and opened
before any stage runs, closed when the run ends."""

from __future__ import annotations

import contextlib
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from rsrl.spec.schema import Spec
from rsrl.tracking.base import Tracker, TrackerError

log = logging.getLogger("rsrl")
# Handed to the stage tracker actors: on a cluster they would not see the driver's
# environment, where the user said where to log (and with which credentials).
TRACKER_ENV_PREFIXES = ("WANDB_", "MLFLOW_")


@dataclass(frozen=True)
class Tracking:
    """What every stage of the run needs to start its tracker runs (picklable)."""

    trackers: tuple[Tracker, ...]
    group: str  # the pipeline run's name: spec name, start time, a random suffix
    tags: Mapping[str, str]
    env: Mapping[str, str]


def configured_trackers(spec: Spec, workdir: Path) -> list[Tracker]:
    """The trackers `spec.logging` asks for, settings resolved here on the driver; none of
    them checked yet."""
    lg, trackers = spec.logging, list[Tracker]()
    if lg.wandb is not None and lg.wandb.mode != "disabled":
        from rsrl.tracking.wandb import WandbTracker

        trackers.append(
            WandbTracker(
                project=lg.wandb.project or spec.name,
                entity=lg.wandb.entity,
                group=lg.wandb.group,
                mode=lg.wandb.mode,
                dir=os.environ.get("WANDB_DIR") or str(workdir),
            )
        )
    if lg.mlflow is not None:
        from rsrl.tracking.mlflow import MlflowTracker, resolve_tracking_uri

        trackers.append(
            MlflowTracker(
                tracking_uri=resolve_tracking_uri(lg.mlflow.tracking_uri),
                experiment=lg.mlflow.experiment or spec.name,
            )
        )
    return trackers


def checked_trackers(spec: Spec, workdir: Path) -> list[Tracker]:
    """The configured trackers that answer (for a sweep, before its first trial)."""
    return [t for t in configured_trackers(spec, workdir) if _answers(spec, t, t.check)]


@contextlib.contextmanager
def pipeline_tracking(
    spec: Spec, workdir: Path, tags: Mapping[str, str]
) -> Iterator[Tracking | None]:
    """Check and open each tracker of `spec.logging` (None when it has none), then close them
    as the run ends: finished, or failed when it raised."""
    trackers = configured_trackers(spec, workdir)
    if not trackers:
        yield None
        return
    group = f"{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    opened = tuple(t for t in trackers if _answers(spec, t, partial(_start, t, group, tags)))
    env = {k: v for k, v in os.environ.items() if k.startswith(TRACKER_ENV_PREFIXES)}
    ok = False
    try:
        yield Tracking(trackers=opened, group=group, tags=dict(tags), env=env)
        ok = True
    finally:
        for tracker in opened:
            _answers(spec, tracker, partial(tracker.close, ok), at_start=False)


def _start(tracker: Tracker, group: str, tags: Mapping[str, str]) -> None:
    tracker.check()
    tracker.open(group, tags)


def _answers(spec: Spec, tracker: Tracker, call: Callable[[], None], at_start: bool = True) -> bool:
    """Run `call`; a tracker that fails at start raises TrackerError (on_error: fail) or
    is warned about and left out (warn); later it is only warned about."""
    try:
        call()
        return True
    except Exception as err:  # each tracker library has its own errors
        cause = (str(err).strip().splitlines() or [type(err).__name__])[0].rstrip(".")
        where = f"logging.{tracker.name}"
        if at_start and spec.logging.on_error == "fail":
            raise TrackerError(
                f"{where}: the tracker is unreachable or refuses its settings: {cause}; fix "
                f"{where} or set logging.on_error: warn to run without it"
            ) from None
        log.warning("%s: %s; going on without it", where, cause)
        return False
