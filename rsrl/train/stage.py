"""The pretrain and midtrain stages: resolve a `TrainJob`, run it on a Ray Train TorchTrainer.

This function runs in the stage's Ray task (a driver of its own); the work happens in the
trainer's workers. Re-running it after a crash resumes from the stage's last checkpoint.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from rsrl.pipeline.registry import StageContext
from rsrl.spec.validate import effective_objective
from rsrl.train.batches import BatchLayout
from rsrl.train.loop import TrainJob, train_worker
from rsrl.train.metrics import read_metrics


def make_train_job(ctx: StageContext, **overrides) -> TrainJob:
    spec, name = ctx.spec, ctx.stage.kind
    s = getattr(spec.stages, name)
    r = spec.resources
    layout = BatchLayout.for_budget(s.batch_tokens, s.seq_len, s.micro_batch_size, r.num_workers)
    init = ctx.inputs.get("pretrain") if name == "midtrain" else None
    fields = dict(
        stage=name, stage_dir=ctx.out_dir, data_dir=ctx.inputs[f"data-{name}"],
        tokenizer_dir=ctx.inputs["tokenizer"], init_dir=init / "hf" if init else None,
        model=spec.model, objective=effective_objective(spec, s), lr=s.lr,
        deepspeed=r.deepspeed, seq_len=s.seq_len, rope_theta=s.rope_theta, layout=layout,
        total_steps=_steps_in(ctx.inputs[f"data-{name}"], layout),
        reset_position_ids=s.reset_position_ids, seed=spec.seed, log_every=s.log_every,
        checkpoint_every=s.checkpoint_every, keep_checkpoints=s.keep_checkpoints)
    return TrainJob(**{**fields, **overrides})


def _steps_in(data_dir: Path, layout: BatchLayout) -> int:
    """Whole optimizer steps the prepared rows fill (the data stage sized them to `tokens`)."""
    from rsrl.data.packed import PackedDataset

    steps = len(PackedDataset(data_dir)) // layout.rows_per_step
    if steps < 1:
        raise ValueError(f"{data_dir} holds fewer rows than one optimizer step needs "
                         f"({layout.rows_per_step}); raise tokens or lower batch_tokens")
    return steps


def run_training_stage(ctx: StageContext) -> dict:
    job = make_train_job(ctx)
    s = getattr(ctx.spec.stages, ctx.stage.kind)
    resources = ctx.spec.resources
    if s.cpus_per_worker:  # Ray gives each worker as many torch threads as CPUs
        resources = dataclasses.replace(resources, cpus_per_worker=s.cpus_per_worker)
    fit(job, resources, run_name=f"{ctx.stage.name}-{ctx.stage.key}")
    final = read_metrics(job.stage_dir)[-1]
    return {"hf_dir": "hf", "steps": job.total_steps, **final}


def fit(job, resources, run_name: str, worker=train_worker) -> None:
    """Run `worker(job, rank, report)` on `resources.num_workers` Ray Train workers (a failed
    group restarts up to `max_failures` times, resuming from its checkpoint); raise if it
    fails for good."""
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    use_gpu = resources.gpus_per_worker > 0
    trainer = TorchTrainer(
        _worker_entry,
        train_loop_config={"job": job, "worker": worker},
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        scaling_config=ScalingConfig(
            num_workers=resources.num_workers, use_gpu=use_gpu,
            resources_per_worker={"CPU": resources.cpus_per_worker,
                                  **({"GPU": resources.gpus_per_worker} if use_gpu else {})}),
        run_config=RunConfig(name=run_name, storage_path=str(Path(job.stage_dir) / "ray"),
                             failure_config=FailureConfig(max_failures=resources.max_failures)),
    )
    trainer.fit()


def _worker_entry(config: dict) -> None:
    import ray.train

    rank = ray.train.get_context().get_world_rank()
    config["worker"](config["job"], rank, report=ray.train.report)
