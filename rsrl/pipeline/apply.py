"""Run a plan as a Ray DAG: one remote task per stage that is not cached, wired by its inputs.

Each task gets its inputs' ObjectRefs as arguments, so Ray itself orders the stages (and
runs independent ones, like the two data preparations, side by side).

The stage tasks ask for no CPU themselves (`num_cpus=0`): they are drivers that start the
actors doing the work (Ray Train workers, vLLM rollout actors), and those reserve the
resources. A finished stage writes its manifest last, atomically, so an interrupted run
leaves either a finished stage or a resumable one, never a half-finished one marked done.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray

from rsrl.pipeline.cache import Status, read_manifest, stage_status, write_manifest
from rsrl.pipeline.lock import check_workdir, stage_lock, workdir_lock
from rsrl.pipeline.plan import Plan, Stage
from rsrl.pipeline.progress import StageView
from rsrl.pipeline.registry import StageContext, StageFn, resolve_stage_fn
from rsrl.pipeline.worker_logs import stage_log
from rsrl.spec.load import spec_to_yaml
from rsrl.tracking.session import Tracking, pipeline_tracking
from rsrl.tracking.stage import track_stage

log = logging.getLogger("rsrl")
ABANDON_SECONDS = 10.0  # how long a failed apply waits for the stages it cancels


@dataclass(frozen=True)
class StageOutcome:
    stage: str
    status: Status  # CACHED when skipped, WILL_RUN / RESUMABLE / BROKEN when it ran now
    out_dir: Path
    result: dict
    seconds: float


class StageFailed(RuntimeError):
    """A stage raised; the stages finished before it are kept in the cache."""

    def __init__(self, stage: str, cause: BaseException, log: Path | None = None):
        super().__init__(stage, cause, log)  # all in args: the error can be copied and pickled
        self.stage, self.cause, self.log = stage, cause, log

    def __str__(self) -> str:
        return f"stage '{self.stage}' failed: {self.cause}"


class ClusterTooSmall(RuntimeError):
    """A stage asks for a worker larger than any node of the cluster: it would wait forever."""


def check_fits(stages: list[Stage], nodes: list[dict]) -> None:
    """Raise ClusterTooSmall when a bundle of `stages` fits on none of the alive `nodes`
    (`ray.nodes()`); checked against the nodes there are now, not an autoscaler's."""
    alive = [n.get("Resources", {}) for n in nodes if n.get("Alive", True)]
    for stage in stages:
        for bundle in stage.resources.bundles:
            need = {r: v for r, v in bundle.items() if v}
            if not any(all(node.get(r, 0) >= v for r, v in need.items()) for node in alive):
                largest = ", ".join(
                    f"{max((n.get(r, 0) for n in alive), default=0):g} {r}" for r in need
                )
                raise ClusterTooSmall(
                    f"stage '{stage.name}' asks for workers of "
                    f"{', '.join(f'{v:g} {r}' for r, v in need.items())}, but the largest node "
                    f"of this Ray cluster has {largest}; lower what the spec asks for "
                    f"(stages.{stage.name}.cpus_per_worker, resources.cpus_per_worker, "
                    f"rl.rollout.cpus_per_actor, ...) or add larger nodes"
                )


def apply_plan(
    plan: Plan,
    *,
    wait_for_lock: bool = False,
    shared_workdir: bool = False,
    stage_fns: Mapping[str, StageFn] | None = None,
    tags: Mapping[str, str] | None = None,
    view: StageView | None = None,
) -> list[StageOutcome]:
    """Run every stage of `plan` that is not cached; return one outcome per stage, in order.

    The workdir is locked for the whole apply, unless `shared_workdir` (sweep trials share
    one workdir on purpose: they rely on the per-stage locks alone). `tags` go to the
    experiment trackers' runs (a sweep trial's swept values). `view` is told when each
    stage starts and ends (default: nothing is shown)."""
    check_workdir(plan.workdir, plan.spec.workdir)
    view = view or StageView(plan.stage_dirs())
    if shared_workdir:
        return _apply(plan, stage_fns, tags or {}, view)
    with workdir_lock(plan.workdir, wait=wait_for_lock):
        (plan.workdir / "spec.yaml").write_text(spec_to_yaml(plan.spec))  # the last apply's
        return _apply(plan, stage_fns, tags or {}, view)


def _apply(
    plan: Plan, stage_fns: Mapping[str, StageFn] | None, tags: Mapping[str, str], view: StageView
) -> list[StageOutcome]:
    plan.workdir.mkdir(parents=True, exist_ok=True)
    statuses = {s.name: stage_status(s, plan.workdir) for s in plan.stages}
    running = [s for s in plan.stages if statuses[s.name] is not Status.CACHED]
    check_fits(running, ray.nodes())
    if not running:  # cached stages log nothing new: no tracker is even contacted
        return _collect(plan, statuses, {}, view)
    with (
        pipeline_tracking(plan.spec, plan.workdir, tags) as tracking,  # before any stage
        _rollout_pool(running) as pool,
    ):
        refs: dict[str, ray.ObjectRef] = {}
        for stage in running:
            upstream = [refs[name] for name in stage.inputs if name in refs]
            # "DEFAULT": never inside a caller's placement group (a Tune trial captures its
            # child tasks): a stage schedules its own workers wherever the cluster has room.
            refs[stage.name] = _run_stage.options(
                name=f"rsrl:{stage.name}", scheduling_strategy="DEFAULT"
            ).remote(plan, stage.name, dict(stage_fns or {}), tracking, pool, *upstream)
        return _collect(plan, statuses, refs, view)


@contextlib.contextmanager
def _rollout_pool(running: list[Stage]) -> Iterator[Any]:
    """One rollout actor pool when RL runs now: the rl stage starts its actors there before
    its trainer, and eval borrows them after it (no second engine start); the pool and its
    actors end with the apply."""
    if "rl" not in {s.kind for s in running}:
        yield None
        return
    from rsrl.rl.rollout.pool import start_pool, stop_pool

    pool = start_pool()
    try:
        yield pool
    finally:
        stop_pool(pool)


def _collect(
    plan: Plan, statuses: dict[str, Status], refs: dict[str, ray.ObjectRef], view: StageView
) -> list[StageOutcome]:
    by_ref = {ref: name for name, ref in refs.items()}
    finished: dict[str, tuple[dict, float]] = {}
    try:
        while by_ref:
            for name in _ready_to_start(plan, refs, finished, view.running()):
                view.start(name)
            done, _ = ray.wait(list(by_ref), num_returns=1, timeout=1.0)
            view.refresh()
            if not done:
                continue
            name = by_ref.pop(done[0])
            try:
                finished[name] = ray.get(done[0])
            except ray.exceptions.RayTaskError as err:
                failed, error = _first_failure(plan, name, err, by_ref)
                _abandon(plan, failed, by_ref)
                view.end(failed, time.time() - view.started.get(failed, time.time()))
                cause = getattr(error, "cause", None) or error
                raise StageFailed(failed, cause, _log_failure(plan, failed, error)) from None
            view.end(name, finished[name][1], finished[name][0])
    finally:
        view.close()
    outcomes = []
    for stage in plan.stages:
        out_dir = stage.out_dir(plan.workdir)
        if stage.name in finished:
            result, seconds = finished[stage.name]
        else:
            result, seconds = read_manifest(out_dir)["result"], 0.0
        outcomes.append(StageOutcome(stage.name, statuses[stage.name], out_dir, result, seconds))
    return outcomes


def _ready_to_start(
    plan: Plan, refs: dict[str, ray.ObjectRef], finished: dict, running: list[str]
) -> list[str]:
    """The stages of `refs` not started yet whose inputs that run now have all finished:
    Ray starts them now (a stage's task waits for its inputs' refs)."""
    return [
        name
        for name in refs
        if name not in finished
        and name not in running
        and all(i in finished or i not in refs for i in plan.stage(name).inputs)
    ]


def _log_failure(plan: Plan, failed: str, error: BaseException) -> Path:
    """Append the failed stage's error, its remote traceback included, to its own log; that
    log's path, whose tail the command line shows."""
    path = stage_log(plan.stage(failed).out_dir(plan.workdir))
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(f"{error}\n")
    return path


def _first_failure(
    plan: Plan, name: str, err: ray.exceptions.RayTaskError, pending: dict[ray.ObjectRef, str]
) -> tuple[str, ray.exceptions.RayTaskError]:
    """The stage that raised the error stage `name` ended with, and that error.

    A stage whose input failed ends with the input's error without running. When the driver
    looks only after both have ended, both refs are ready and `ray.wait(num_returns=1)` hands
    out either (it picks from a hash set, not in the order asked): the downstream stage would
    be named as the one that failed. Its ancestors all ended before it could start, so those
    still `pending` are ready; in dependency order the first that raised raised on its own.
    The ancestors looked at leave `pending`: they have ended, there is nothing to cancel."""
    ancestors = set(plan.stage(name).inputs)
    for stage in reversed(plan.stages):  # a stage's users come after it: theirs first
        if stage.name in ancestors:
            ancestors.update(stage.inputs)
    refs = {stage: ref for ref, stage in pending.items()}
    for stage in plan.stages:
        if stage.name not in ancestors or stage.name not in refs:
            continue
        ref = refs[stage.name]
        del pending[ref]
        try:
            ray.get(ref)
        except ray.exceptions.RayTaskError as upstream:
            return stage.name, upstream
    return name, err


def _abandon(plan: Plan, failed: str, pending: dict[ray.ObjectRef, str]) -> None:
    """After stage `failed` raised: stop the `pending` stages and collect what they end with.

    A stage downstream of the failed one ends at once with its input's error, without running,
    so it is only waited for: cancelling a task that is finishing on its own races Ray's
    completion of it (Ray 2.60 aborts the driver, "Tried to complete task that was not
    pending"). A stage beside the failed one is cancelled, and the apply never returns while
    one it cancelled still runs (it would write into a workdir whose lock is released): one
    that has not stopped ABANDON_SECONDS after Ray's KeyboardInterrupt has its worker killed
    (`force`), again every ABANDON_SECONDS until it has ended. Errors are collected because
    Ray prints one nobody collects, traceback and all, as an 'Unhandled error' after rsrl's
    own message. A downstream stage slow to end is left to the end of the session (its ref
    then holds no error yet)."""
    doomed = {failed}
    for stage in plan.stages:  # in dependency order: an input is doomed before its users
        if doomed & set(stage.inputs):
            doomed.add(stage.name)
    cancelled = [ref for ref, name in pending.items() if name not in doomed]
    for ref in cancelled:
        ray.cancel(ref, recursive=True)
    refs = list(pending)
    done, _ = ray.wait(refs, num_returns=len(refs), timeout=ABANDON_SECONDS)
    ended = set(done)
    running = [ref for ref in cancelled if ref not in ended]
    while running:
        log.warning(
            "stage(s) %s still running %gs after being cancelled: killing their workers",
            ", ".join(pending[ref] for ref in running),
            ABANDON_SECONDS,
        )
        for ref in running:
            ray.cancel(ref, force=True, recursive=True)
        stopped, running = ray.wait(running, num_returns=len(running), timeout=ABANDON_SECONDS)
        done += stopped
    for ref in done:
        with contextlib.suppress(ray.exceptions.RayError):
            ray.get(ref)


def make_cancellable() -> None:
    """Python's own SIGINT handler in this worker, so that `ray.cancel` interrupts the stage.

    Ray cancels a running task with `_thread.interrupt_main()`, which raises KeyboardInterrupt
    only under that handler: under SIG_DFL or SIG_IGN it does nothing, and another handler is
    called instead. Ray reuses workers, and an earlier task may have left either (libraries
    do: vLLM's engine core and DeepSpeed's launcher set their own); the cancel then never
    came, as in three cancel tests of one CI run.
    """
    signal.signal(signal.SIGINT, signal.default_int_handler)


@ray.remote(num_cpus=0, max_retries=0)
def _run_stage(
    plan: Plan, name: str, stage_fns: dict, tracking: Tracking | None, pool: Any, *upstream
) -> tuple[dict, float]:
    """Runs in a Ray worker. `upstream` only orders it after its inputs; paths come from the
    plan. A stage that runs is one run in each tracker of `tracking`, with its result."""
    make_cancellable()
    stage: Stage = plan.stage(name)
    out_dir = stage.out_dir(plan.workdir)
    with stage_lock(out_dir):
        if stage_status(stage, plan.workdir) is Status.CACHED:  # another run finished it
            return read_manifest(out_dir)["result"], 0.0
        out_dir.mkdir(parents=True, exist_ok=True)
        inputs = {i: plan.stage(i).out_dir(plan.workdir) for i in stage.inputs}
        fn = resolve_stage_fn(stage.kind, stage_fns)
        start = time.time()
        with track_stage(tracking, stage.name, stage.key, stage.config, out_dir) as tracked:
            ctx = StageContext(plan.spec, stage, out_dir, inputs, rollout_pool=pool)
            result = tracked.result = fn(ctx) or {}
        write_manifest(stage, out_dir, result)
        return result, time.time() - start
