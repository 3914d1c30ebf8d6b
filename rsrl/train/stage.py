"""The pretrain and midtrain stages: resolve a `TrainJob`, run it on Ray workers
(train/fit.py: a Ray Train TorchTrainer, or a single actor when the stage has one CPU worker).

This function runs in the stage's Ray task (a driver of its own); the work happens in the
workers. Re-running it after a crash resumes from the stage's last checkpoint.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from rsrl.layout import HF_EXPORT
from rsrl.pipeline.registry import StageContext
from rsrl.train.batches import BatchLayout
from rsrl.train.fit import fit
from rsrl.train.loop import TrainJob, train_worker
from rsrl.train.metrics import read_metrics


def make_train_job(ctx: StageContext, total_steps: int | None = None) -> TrainJob:
    """The stage's job; `total_steps`: fewer steps than the data fills (tests, benchmarks)."""
    spec, name = ctx.spec, ctx.stage.kind
    s = getattr(spec.stages, name)
    r = spec.resources
    layout = BatchLayout.for_budget(s.batch_tokens, s.seq_len, s.micro_batch_size, r.num_workers)
    init = ctx.inputs.get("pretrain") if name == "midtrain" else None
    data_dir = ctx.inputs[f"data-{name}"]
    return TrainJob(
        stage=name,
        train=s,
        model=spec.model,
        objective=s.objective_over(spec.objective),
        deepspeed=r.deepspeed,
        seed=spec.seed,
        stage_dir=ctx.out_dir,
        data_dir=data_dir,
        tokenizer_dir=ctx.inputs["tokenizer"],
        init_dir=init / HF_EXPORT if init else None,
        layout=layout,
        total_steps=total_steps or _steps_in(data_dir, layout),
    )


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
    fit(job, resources, f"{ctx.stage.name}-{ctx.stage.key}", train_worker)
    final = read_metrics(job.stage_dir)[-1]
    return {"hf_dir": HF_EXPORT, "steps": job.total_steps, **final}
