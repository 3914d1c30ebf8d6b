"""Running a worker function on a stage's Ray workers, for training and for RL alike.

`fit(job, resources, run_name, worker)` calls `worker(job, rank, report)` on every worker:
a Ray Train TorchTrainer for several workers or GPUs, one Ray actor for a single CPU worker.
It restarts a failed worker group from its checkpoint (`resources.max_failures`) and turns
a full disk into rsrl's DiskFull instead of a retry loop.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

from rsrl.files import DiskFull, is_disk_full
from rsrl.runtime import Job, Report, WorkerCall, run_alone, run_worker, uses_ray_train
from rsrl.train.config import ResourcesSpec

J = TypeVar("J", bound=Job)


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
    with the same worker function and restarts (rsrl.runtime.run_alone). Either way each
    worker runs torch on `threads` intra-op threads (default: as many as CPUs it reserved),
    and rank 0 records when the fit started, when the worker function was entered and when
    it returned (rsrl.runtime.Timings)."""
    call = WorkerCall(
        job,
        cast("Callable[[Any, int, Report | None], None]", worker),
        started=time.time(),
        threads=threads or max(1, math.floor(resources.cpus_per_worker)),
    )
    if uses_ray_train(resources):
        _fit_ray_train(call, resources, run_name)
    else:
        run_alone(call, resources)


def _fit_ray_train(call: WorkerCall, resources: ResourcesSpec, run_name: str) -> None:
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
    run_worker(call, context.get_world_rank(), context.get_world_size(), ray.train.report)
