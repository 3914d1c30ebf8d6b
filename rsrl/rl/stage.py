"""The rl stage: GRPO from the last training stage's export, on Ray Train + DeepSpeed."""

from __future__ import annotations

from rsrl.layout import HF_EXPORT
from rsrl.pipeline.registry import StageContext
from rsrl.rl.curve import CurveSuite
from rsrl.rl.loop import RLJob, rl_worker
from rsrl.runtime import rollout_threads, trainer_threads
from rsrl.spec.schema import Spec, eval_section, rl_section
from rsrl.train.fit import fit
from rsrl.train.metrics import read_metrics


def make_rl_job(ctx: StageContext) -> RLJob:
    from rsrl.data.prompts import read_prompts

    spec = ctx.spec
    rl = rl_section(spec)
    model_stage = next(name for name in ctx.stage.inputs if name != "tokenizer")
    return RLJob(
        stage_dir=ctx.out_dir,
        init_dir=ctx.inputs[model_stage] / HF_EXPORT,
        tokenizer_dir=ctx.inputs["tokenizer"],
        rl=rl,
        prompts=read_prompts(rl.prompts),
        plugins=list(spec.plugins),
        deepspeed=spec.resources.deepspeed,
        impl=spec.objective.impl,
        seed=spec.seed,
        world_size=spec.resources.num_workers,
        curve_suites=curve_suites(spec),
        rollout_pool=ctx.rollout_pool,
        rollout_threads=rollout_threads(spec.resources, rl),
    )


def curve_suites(spec: Spec) -> tuple[CurveSuite, ...]:
    """The eval suites' first `rl.eval_problems` problems, for the RL curve (none when off)."""
    from rsrl.data.prompts import read_prompts

    rl = rl_section(spec)
    if rl.eval_every == 0:
        return ()
    return tuple(
        CurveSuite(suite, read_prompts(suite.data)[: rl.eval_problems])
        for suite in eval_section(spec).suites
    )


def run_rl_stage(ctx: StageContext) -> dict:
    job = make_rl_job(ctx)
    if job.rollout_pool is not None:  # the engines load while the trainer starts
        from rsrl.rl.rollout.pool import ActorConfig

        actors = ActorConfig.for_rollout(job.rl.rollout, job.init_dir, job.engine_dtype)
        job.rollout_pool.prepare.remote(actors)
    fit(
        job,
        ctx.spec.resources,
        f"{ctx.stage.name}-{ctx.stage.key}",
        rl_worker,
        threads=trainer_threads(ctx.spec.resources, job.rl),
    )
    final = read_metrics(job.stage_dir)[-1]
    return {"hf_dir": HF_EXPORT, "steps": job.rl.steps, **final}
