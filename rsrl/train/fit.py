"""Running a worker function on a stage's Ray workers, for training and for RL alike.

`fit(job, resources, run_name, worker)` calls `worker(job, rank, report)` on every worker:
a Ray Train TorchTrainer for several workers or GPUs, one Ray actor for a single CPU worker.
It restarts a failed worker group from its checkpoint (`resources.max_failures`) and turns
a full disk into rsrl's DiskFull instead of a retry loop.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

from rsrl.files import DiskFull, is_disk_full
from rsrl.train.config import ResourcesSpec
from rsrl.train.metrics import record_timings

if TYPE_CHECKING:
    from rsrl.train.worker import Report


class Job(Protocol):
    """What fit needs of a stage's job (TrainJob, RLJob): where the stage writes."""

    @property
    def stage_dir(self) -> Path: ...


J = TypeVar("J", bound=Job)


@dataclass(frozen=True)
class _Call:
    """One fit's call of `worker(job, rank, report)` on each worker, as the workers get it."""

    job: Job
    worker: Callable[[Any, int, Report | None], None]
    fit_started: float
    threads: int  # torch intra-op threads per worker


def fit(
    job: J,
    resources: ResourcesSpec,
    run_name: str,
    worker: Callable[[J, int, Report | None], None],
    threads: int | None = None,
) -> None:
    """Run `worker(job, rank, report)` on `resources.num_workers` workers (a failed worker
    group restarts up to `max_failures` times, resuming from its checkpoint); raise if it
    fails for good.

    Several workers, or GPUs: a Ray Train TorchTrainer. One CPU worker: a single Ray actor
    with a one-process gloo group, the same worker function and restarts, without Ray
    Train's controller and worker group (they cost ~15-25 s of start-up per stage on 2
    cores). Either way each worker runs torch on `threads` intra-op threads (default: as
    many as CPUs it reserved; never more than its machine has), and rank 0 records in the
    stage's timings.json when the fit started, when the worker function was entered and
    when it returned."""
    call = _Call(
        job,
        cast("Callable[[Any, int, Report | None], None]", worker),
        fit_started=time.time(),
        threads=threads or max(1, math.floor(resources.cpus_per_worker)),
    )
    if uses_ray_train(resources):
        _fit_ray_train(call, resources, run_name)
    else:
        _fit_alone(call, resources)


def uses_ray_train(resources: ResourcesSpec) -> bool:
    """Several workers, or GPUs; else one CPU worker, run in a single actor."""
    return resources.num_workers > 1 or resources.gpus_per_worker > 0


def _fit_ray_train(call: _Call, resources: ResourcesSpec, run_name: str) -> None:
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    worker_group_errors: tuple[type[BaseException], ...]
    try:
        from ray.train import WorkerGroupError

        worker_group_errors = (WorkerGroupError,)
    except ImportError:  # Ray Train v1: its errors pass as they are
        worker_group_errors = ()

    use_gpu = resources.gpus_per_worker > 0
    storage = str(Path(call.job.stage_dir) / "ray")
    trainer = TorchTrainer(
        _worker_entry,
        train_loop_config={"call": call},  # Ray Train passes the workers a dict
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        scaling_config=ScalingConfig(
            num_workers=resources.num_workers,
            use_gpu=use_gpu,
            resources_per_worker={
                "CPU": resources.cpus_per_worker,
                **({"GPU": resources.gpus_per_worker} if use_gpu else {}),
            },
        ),
        run_config=RunConfig(
            name=run_name,
            storage_path=storage,
            failure_config=FailureConfig(max_failures=resources.max_failures),
        ),
    )
    try:
        trainer.fit()
    except worker_group_errors as err:  # Ray Train retried it (max_failures): it has no
        # notion of faults that are not transient; the message is rsrl's, not a traceback
        full = [e for e in err.worker_failures.values() if is_disk_full(e)]
        if full:
            raise _disk_full_in(full[0]) from None
        raise


def _disk_full_in(err: BaseException) -> DiskFull:
    """The DiskFull that `err` (a worker's error, wrapped by Ray) carries."""
    seen = err
    for _ in range(8):
        for found in (seen, getattr(seen, "cause", None)):
            if isinstance(found, DiskFull):
                return found
        nxt = seen.__cause__ or seen.__context__ or getattr(seen, "cause", None)
        if nxt is None:
            break
        seen = nxt
    return DiskFull(f"a file of {str(err).splitlines()[0][:200]}")


def _worker_entry(config: dict) -> None:
    import ray.train

    context = ray.train.get_context()
    call = config["call"]
    _run_worker(call, context.get_world_rank(), context.get_world_size(), ray.train.report)


def _run_worker(call: _Call, rank: int, world_size: int, report: Report | None) -> None:
    import torch

    # Ray sets OMP_NUM_THREADS from the reservation, but only where the environment has no
    # value of its own, and torch may have read it before: set the threads explicitly.
    torch.set_num_threads(min(call.threads, os.cpu_count() or 1))
    stage_dir = call.job.stage_dir
    if rank == 0:
        record_timings(
            stage_dir,
            fit_started=call.fit_started,
            worker_started=time.time(),
            threads=torch.get_num_threads(),
            world_size=world_size,
        )
    call.worker(call.job, rank, report)
    if rank == 0:
        record_timings(stage_dir, worker_finished=time.time())


class SoloTrainWorker:
    """The one worker of a single-worker CPU stage: a Ray actor that is its own process
    group (gloo, world size 1), so DeepSpeed finds the group it expects."""

    def run(self, call: _Call) -> None:
        import socket

        import torch.distributed as dist

        with socket.socket() as s:  # a free port for the group's (local, unused) store
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        os.environ.update(
            RANK="0",
            LOCAL_RANK="0",
            WORLD_SIZE="1",
            LOCAL_WORLD_SIZE="1",
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=str(port),
        )
        dist.init_process_group("gloo", rank=0, world_size=1)
        try:
            _run_worker(call, 0, 1, report=None)
        finally:
            dist.destroy_process_group()


def _fit_alone(call: _Call, resources: ResourcesSpec) -> None:
    """One attempt, then up to `max_failures` more on a fresh actor (each resumes from the
    last checkpoint), as Ray Train's FailureConfig does; the last error is raised."""
    import ray

    actor_cls = ray.remote(SoloTrainWorker)
    for attempt in range(resources.max_failures + 1):
        # ray's stubs type this as the class, its methods without .remote
        actor: Any = actor_cls.options(num_cpus=resources.cpus_per_worker, max_restarts=0).remote()
        try:
            ray.get(actor.run.remote(call))
            return
        except ray.exceptions.RayTaskError as err:
            if isinstance(err.cause, DiskFull):  # a retry would only fill it again
                raise err.cause from None
            if attempt == resources.max_failures:
                raise
        except ray.exceptions.RayActorError:
            if attempt == resources.max_failures:
                raise
        finally:
            ray.kill(actor)
