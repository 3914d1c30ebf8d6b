"""What lets rsrl run fast on a small CPU box, kept out of the core loops.

The training and RL loops read the same on a laptop and on a cluster; what differs is how
their workers are started and how many threads they get, decided here:

- A stage with one CPU worker runs it in a single Ray actor that is its own one-process
  gloo group (`SoloTrainWorker`), not in a Ray Train worker group, whose controller costs
  start-up time for nothing there. Several workers, or GPUs, use Ray Train (train/fit.py).
- RL's lone CPU trainer and its lone rollout actor take turns on the same cores (the
  trainer idles while the actor samples, and the other way round), so each runs on both
  reservations' CPUs (`trainer_threads`, `rollout_threads`). Asynchronous rollouts overlap
  the two, so there each keeps its own CPUs: sharing would oversubscribe the cores.
- DeepSpeed is imported without the mlflow import its autotuner makes (`import_deepspeed`).
- Each stage records where its time outside its steps went (`Timings`), which the
  benchmarks read; the numbers are in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import json
import math
import os
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

from rsrl.files import DiskFull
from rsrl.layout import TIMINGS
from rsrl.rl.config import RLSpec
from rsrl.train.config import ResourcesSpec

Report = Callable[[dict], None]  # ray.train.report, or None outside Ray Train


class Job(Protocol):
    """What running a worker needs of a stage's job (TrainJob, RLJob): where it writes."""

    @property
    def stage_dir(self) -> Path: ...


@dataclass(frozen=True)
class WorkerCall:
    """One stage's call of `worker(job, rank, report)` on each of its workers."""

    job: Job
    worker: Callable[[Any, int, Report | None], None]
    started: float  # when the stage asked for its workers
    threads: int  # torch intra-op threads per worker


class Timings:
    """A stage's timings.json: where its time outside its steps went (rank 0 writes it)."""

    def __init__(self, stage_dir: Path) -> None:
        self.path = Path(stage_dir) / TIMINGS

    def record(self, **timings: float | int) -> None:
        """Merge `timings` into the file (a rerun's values replace the last run's)."""
        from rsrl.files import write_json_atomic

        write_json_atomic(self.path, {**self.read(), **timings})

    def read(self) -> dict:
        return json.loads(self.path.read_text()) if self.path.exists() else {}


def run_worker(call: WorkerCall, rank: int, world_size: int, report: Report | None) -> None:
    """The body of every training worker, under Ray Train or alone."""
    import torch

    # Ray sets OMP_NUM_THREADS from the reservation, but only where the environment has no
    # value of its own, and torch may have read it before: set the threads explicitly.
    torch.set_num_threads(min(call.threads, os.cpu_count() or 1))
    timings = Timings(call.job.stage_dir)
    if rank == 0:
        timings.record(
            fit_started=call.started,
            worker_started=time.time(),
            threads=torch.get_num_threads(),
            world_size=world_size,
        )
    call.worker(call.job, rank, report)
    if rank == 0:
        timings.record(worker_finished=time.time())


def uses_ray_train(resources: ResourcesSpec) -> bool:
    """Several workers, or GPUs; else one CPU worker, run in a single actor."""
    return resources.num_workers > 1 or resources.gpus_per_worker > 0


class SoloTrainWorker:
    """The one worker of a single-worker CPU stage: a Ray actor that is its own process
    group (gloo, world size 1), so DeepSpeed finds the group it expects."""

    def run(self, call: WorkerCall) -> None:
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
            run_worker(call, 0, 1, report=None)
        finally:
            dist.destroy_process_group()


def run_alone(call: WorkerCall, resources: ResourcesSpec) -> None:
    """The lone CPU worker in a SoloTrainWorker actor: one attempt, then up to
    `max_failures` more on a fresh actor (each resumes from the last checkpoint), as Ray
    Train's FailureConfig does; the last error is raised."""
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


def trainer_threads(resources: ResourcesSpec, rl: RLSpec) -> int | None:
    """RL's lone CPU trainer: its CPUs and its actors' (None: one thread per reserved CPU,
    as for several workers or GPUs, whose actors may be on other machines, and for
    asynchronous rollouts, whose actors sample while it updates)."""
    if uses_ray_train(resources) or rl.max_staleness > 0:
        return None
    rollout = rl.rollout
    return max(1, math.floor(resources.cpus_per_worker + rollout.actors * rollout.cpus_per_actor))


def rollout_threads(resources: ResourcesSpec, rl: RLSpec) -> int | None:
    """RL's lone CPU rollout actor: its CPUs and the trainer's. Several actors sample at
    once, so each keeps its own reservation (None); so does an actor sampling ahead while
    the trainer updates (asynchronous rollouts), and eval, which borrows the same actor
    (rl/rollout/pool.py) and scores held-out text beside it."""
    rollout = rl.rollout
    alone = rollout.actors == 1 and rollout.gpus_per_actor == 0 and rl.max_staleness == 0
    if uses_ray_train(resources) or not alone:
        return None
    return max(1, math.floor(resources.cpus_per_worker + rollout.cpus_per_actor))


def import_deepspeed() -> ModuleType:
    """DeepSpeed, imported without mlflow: its autotuner imports mlflow whenever it is
    installed (rsrl's tracker needs it), most of DeepSpeed's import time in every training
    process, for autotuning runs rsrl never makes. The autotuner guards that import, and
    mlflow imports normally afterwards."""
    if "deepspeed" not in sys.modules and "mlflow" not in sys.modules:
        sys.modules["mlflow"] = None  # type: ignore[assignment]  # import mlflow: ImportError
        try:
            import deepspeed  # noqa: F401
        finally:
            del sys.modules["mlflow"]
    import deepspeed

    return deepspeed
