"""The pretrain and midtrain stages: resolve a `TrainJob`, run it on Ray workers (`fit`: a
Ray Train TorchTrainer, or a single actor when the stage has one CPU worker).

This function runs in the stage's Ray task (a driver of its own); the work happens in the
workers. Re-running it after a crash resumes from the stage's last checkpoint.
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any

from rsrl.files import DiskFull, is_disk_full
from rsrl.layout import HF_EXPORT
from rsrl.pipeline.registry import StageContext
from rsrl.spec.validate import effective_objective
from rsrl.train.batches import BatchLayout
from rsrl.train.loop import TrainJob, train_worker
from rsrl.train.metrics import read_metrics, record_timings


def make_train_job(ctx: StageContext, **overrides) -> TrainJob:
    spec, name = ctx.spec, ctx.stage.kind
    s = getattr(spec.stages, name)
    r = spec.resources
    layout = BatchLayout.for_budget(s.batch_tokens, s.seq_len, s.micro_batch_size, r.num_workers)
    init = ctx.inputs.get("pretrain") if name == "midtrain" else None
    fields = dict(
        stage=name,
        stage_dir=ctx.out_dir,
        data_dir=ctx.inputs[f"data-{name}"],
        tokenizer_dir=ctx.inputs["tokenizer"],
        init_dir=init / HF_EXPORT if init else None,
        model=spec.model,
        objective=effective_objective(spec, s),
        lr=s.lr,
        deepspeed=r.deepspeed,
        seq_len=s.seq_len,
        rope_theta=s.rope_theta,
        layout=layout,
        total_steps=_steps_in(ctx.inputs[f"data-{name}"], layout),
        reset_position_ids=s.reset_position_ids,
        seed=spec.seed,
        log_every=s.log_every,
        checkpoint_every=s.checkpoint_every,
        keep_checkpoints=s.keep_checkpoints,
    )
    return TrainJob(**{**fields, **overrides})


def _steps_in(data_dir: Path, layout: BatchLayout) -> int:
    """Whole optimizer steps the prepared rows fill (the data stage sized them to `tokens`)."""
    from rsrl.data.packed import PackedDataset

    steps = len(PackedDataset(data_dir)) // layout.rows_per_step
    if steps < 1:
        raise ValueError(
            f"{data_dir} holds fewer rows than one optimizer step needs "
            f"({layout.rows_per_step}); raise tokens or lower batch_tokens"
        )
    return steps


def run_training_stage(ctx: StageContext) -> dict:
    job = make_train_job(ctx)
    s = getattr(ctx.spec.stages, ctx.stage.kind)
    resources = ctx.spec.resources
    if s.cpus_per_worker:  # Ray gives each worker as many torch threads as CPUs
        resources = dataclasses.replace(resources, cpus_per_worker=s.cpus_per_worker)
    fit(job, resources, run_name=f"{ctx.stage.name}-{ctx.stage.key}")
    final = read_metrics(job.stage_dir)[-1]
    return {"hf_dir": HF_EXPORT, "steps": job.total_steps, **final}


def fit(job, resources, run_name: str, worker=train_worker) -> None:
    """Run `worker(job, rank, report)` on `resources.num_workers` workers (a failed worker
    group restarts up to `max_failures` times, resuming from its checkpoint); raise if it
    fails for good.

    Several workers, or GPUs: a Ray Train TorchTrainer. One CPU worker: a single Ray actor
    with a one-process gloo group, the same worker function and restarts, without Ray
    Train's controller and worker group (they cost ~15-25 s of start-up per stage on 2
    cores). Either way each worker runs torch on as many intra-op threads as CPUs it
    reserved, and rank 0 records in the stage's timings.json when the fit started, when the
    worker function was entered and when it returned."""
    config = {
        "job": job,
        "worker": worker,
        "fit_started": time.time(),
        "threads": max(1, math.floor(resources.cpus_per_worker)),
    }
    if resources.num_workers == 1 and resources.gpus_per_worker == 0:
        _fit_alone(config, resources)
    else:
        _fit_ray_train(config, resources, run_name)


def _fit_ray_train(config: dict, resources, run_name: str) -> None:
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    worker_group_errors: tuple[type[BaseException], ...]
    try:
        from ray.train import WorkerGroupError

        worker_group_errors = (WorkerGroupError,)
    except ImportError:  # Ray Train v1: its errors pass as they are
        worker_group_errors = ()

    use_gpu = resources.gpus_per_worker > 0
    storage = str(Path(config["job"].stage_dir) / "ray")
    trainer = TorchTrainer(
        _worker_entry,
        train_loop_config=config,
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
    _run_worker(config, context.get_world_rank(), context.get_world_size(), ray.train.report)


def _run_worker(config: dict, rank: int, world_size: int, report) -> None:
    import torch

    # Ray sets OMP_NUM_THREADS from the reservation, but only where the environment has no
    # value of its own, and torch may have read it before: set the threads explicitly.
    torch.set_num_threads(config["threads"])
    stage_dir = config["job"].stage_dir
    if rank == 0:
        record_timings(
            stage_dir,
            fit_started=config["fit_started"],
            worker_started=time.time(),
            threads=torch.get_num_threads(),
            world_size=world_size,
        )
    config["worker"](config["job"], rank, report=report)
    if rank == 0:
        record_timings(stage_dir, worker_finished=time.time())


class SoloTrainWorker:
    """The one worker of a single-worker CPU stage: a Ray actor that is its own process
    group (gloo, world size 1), so DeepSpeed finds the group it expects."""

    def run(self, config: dict) -> None:
        import os
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
            _run_worker(config, 0, 1, report=None)
        finally:
            dist.destroy_process_group()


def _fit_alone(config: dict, resources) -> None:
    """One attempt, then up to `max_failures` more on a fresh actor (each resumes from the
    last checkpoint), as Ray Train's FailureConfig does; the last error is raised."""
    import ray

    actor_cls = ray.remote(SoloTrainWorker)
    for attempt in range(resources.max_failures + 1):
        # ray's stubs type this as the class, its methods without .remote
        actor: Any = actor_cls.options(num_cpus=resources.cpus_per_worker, max_restarts=0).remote()
        try:
            ray.get(actor.run.remote(config))
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
