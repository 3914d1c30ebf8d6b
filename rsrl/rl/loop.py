"""The loop around GRPO's step (rl/grpo.py), as every trainer worker runs it.

This function runs on each Ray Train worker (one actor on a lone CPU worker). Rank 0 also
drives the rollout actors: it samples and scores the step's groups, every worker receives
them and updates its share of the policy in DeepSpeed, and rank 0 streams the new weights
to the actors while every worker gathers its shards (a collective under ZeRO-3).

    for step in steps:
        batch = sampler.collect(step)            # rank 0: rollout actors + verifier (grpo 1-4)
        batch = broadcast(batch)                 # to every trainer worker
        update_policy(policy, batch)             # every worker (grpo 5-6)
        sync(weight_stream(policy))              # new weights to the actors, bucket by bucket
        every rl.eval_every steps: the eval suites' subset on the new weights (rl/curve.py)
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from rsrl.rl.config import RLSpec
from rsrl.rl.curve import CurveSuite, RLCurve
from rsrl.rl.grpo import GroupSampler, SampledRound, ScoredRound, update_policy
from rsrl.rl.rollout.weight_sync import Bucket, TensorMeta, WeightStream, plan_buckets
from rsrl.runtime import Report
from rsrl.train.batches import BatchLayout
from rsrl.train.config import DeepSpeedSpec
from rsrl.train.worker import StageWorker

HEADLINE = ("reward_mean", "kept_groups", "entropy", "response_length", "sync_seconds")


@dataclass(frozen=True)
class RLJob:
    stage_dir: Path
    init_dir: Path  # HF export of the last training stage
    tokenizer_dir: Path
    rl: RLSpec
    prompts: list[dict]
    plugins: list[str]
    deepspeed: DeepSpeedSpec
    impl: str
    seed: int
    world_size: int
    curve_suites: tuple[CurveSuite, ...] = ()  # one per eval suite when rl.eval_every > 0
    rollout_pool: Any = None  # the apply's RolloutPool, when eval reuses RL's actors
    rollout_threads: int | None = None  # rsrl.runtime.rollout_threads

    @property
    def engine_dtype(self) -> str:
        return self.rl.rollout.engine_dtype(self.deepspeed.torch_dtype())

    @property
    def layout(self) -> BatchLayout:
        """Micro-batches per worker per optimizer update, for the nominal batch size."""
        per_update = self.rl.prompts_per_step * self.rl.group_size // self.rl.mini_batches
        per_worker = max(1, -(-per_update // self.world_size))
        micro = min(self.rl.micro_batch_size, per_worker)
        return BatchLayout(
            micro_batch_size=micro, grad_accum=-(-per_worker // micro), world_size=self.world_size
        )


def rl_worker(job: RLJob, rank: int, report: Report | None = None) -> None:
    from rsrl.models.tokenizer import load_tokenizer

    worker = StageWorker(
        job.stage_dir,
        rank,
        report,
        label="rl",
        total_steps=job.rl.steps,
        checkpoint_every=job.rl.checkpoint_every,
        keep_checkpoints=job.rl.keep_checkpoints,
        headline=HEADLINE,
        seed=job.seed,
    )
    tokenizer = load_tokenizer(job.tokenizer_dir)
    # The loop calls the DeepSpeed engine `policy`: in rl/, "engine" is a rollout engine.
    policy, reference, state = _start_policy(job, worker)
    sampler = _group_sampler(job, tokenizer) if rank == 0 else None
    rollouts = sampler.rollouts if sampler else None
    step = state["step"]
    if step > 0:  # resumed: the actors start from the initial weights, give them ours
        _sync(policy, rollouts, job.rl.rollout.sync_bucket_mb)
    # Rank 0: the next steps' first rounds, sampled ahead (rl.max_staleness), oldest first;
    # a resume gets them back from the checkpoint, as sampled by the weights of their time.
    ahead: deque[SampledRound | ScoredRound] = deque()
    if sampler:
        sampler.version = step
        ahead.extend(ScoredRound.from_state(r) for r in state.get("ahead", []))
    curve = _curve(job, step) if rollouts and job.curve_suites else None
    if curve and curve.due(step):  # the starting point of the curve
        curve.measure(rollouts, tokenizer, step)

    while step < job.rl.steps:
        batch = None
        if sampler:
            batch = sampler.collect(step, ahead.popleft() if ahead else None)
            _sample_ahead(sampler, ahead, step, job.rl)  # sampled while the trainer updates
        samples, record = _broadcast((batch.samples, batch.stats) if batch else None)
        if samples:
            start = time.perf_counter()
            record.update(
                update_policy(
                    policy, samples, job.rl, job.layout, rank, tokenizer.pad_token_id, reference
                )
            )
            record["update_seconds"] = time.perf_counter() - start
            record["sync_seconds"] = _sync(policy, rollouts, job.rl.rollout.sync_bucket_mb)
        step += 1
        if sampler:
            sampler.version = step  # the engines now hold this step's weights
        if curve and curve.due(step):
            record.update(curve.measure(rollouts, tokenizer, step))
        record.update(step=step, lr=job.rl.lr)
        worker.log(record)
        if worker.checkpoints_at(step):
            worker.checkpoint(step, _ahead_state(sampler, ahead))
    worker.finish(step, tokenizer)
    if rollouts:
        rollouts.shutdown()


def _start_policy(job: RLJob, worker: StageWorker) -> tuple[Any, nn.Module | None, dict]:
    """The policy's DeepSpeed engine (resumed where a checkpoint is), the frozen reference
    model when rl.kl_coef > 0, and the resumed client state."""
    from rsrl.models.build import load_pretrained
    from rsrl.rl.policy import PolicyLM

    lm = load_pretrained(job.init_dir)
    reference = _frozen_copy(lm) if job.rl.kl_coef > 0 else None
    policy, state = worker.start_engine(
        PolicyLM(lm, job.impl, replay=job.rl.replays_routing()),
        job.rl.weight_decay,
        job.deepspeed,
        job.layout,
    )
    if reference is not None:  # copied before initialize (ZeRO-3 partitions the policy's)
        reference = place_like(reference, policy.module, policy.device)
    for group in policy.optimizer.param_groups:
        group["lr"] = job.rl.lr
    return policy, reference, state


def _curve(job: RLJob, step: int) -> RLCurve:
    """The RL curve over the eval suites' subsets, every rl.eval_every steps (rank 0)."""
    return RLCurve(
        job.stage_dir,
        list(job.curve_suites),
        job.rl.eval_every,
        job.rl.steps,
        job.plugins,
        job.seed,
        step,
    )


def _group_sampler(job: RLJob, tokenizer) -> GroupSampler:
    """Rank 0's sampler over the rollout actors: borrowed from the pool where the stage
    started them before this worker (their engines load meanwhile), else started here."""
    from rsrl.rl.rollout.actors import RolloutGroup
    from rsrl.verifiers import load_verifier

    rollouts = RolloutGroup.for_spec(
        job.rl.rollout,
        job.init_dir,
        job.engine_dtype,
        pool=job.rollout_pool,
        threads=job.rollout_threads,
    )
    verify = load_verifier(job.rl.verifier.name, job.plugins)
    return GroupSampler(job.rl, job.prompts, rollouts, tokenizer, verify, job.seed)


def _sample_ahead(
    sampler: GroupSampler, ahead: deque[SampledRound | ScoredRound], step: int, rl: RLSpec
) -> None:
    """Submit the first rounds of the steps after `step`, up to `rl.max_staleness` ahead:
    the engines sample them with the weights they hold while the trainer updates."""
    upcoming = step + 1 + len(ahead)
    while len(ahead) < rl.max_staleness and upcoming < rl.steps:
        ahead.append(sampler.submit(upcoming))
        upcoming += 1


def _ahead_state(sampler: GroupSampler | None, ahead: deque) -> dict:
    """The rounds sampled ahead, scored, for rank 0's checkpoint (the engines have finished
    them: the weight sync just made waited for them)."""
    if sampler is None:
        return {}
    for i, sampled in enumerate(ahead):
        ahead[i] = sampler.score(sampled)
    return {"ahead": [r.to_state() for r in ahead]}


def _broadcast(obj):
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _sync(policy, rollouts, bucket_mb: int) -> float:
    """Every worker walks the policy's weights bucket by bucket (under ZeRO-3 each bucket is
    gathered, a collective, and freed before the next); rank 0 streams them to the actors."""
    stream = weight_stream(policy.module.lm, bucket_mb * 2**20)
    if rollouts:
        return rollouts.sync_weights(stream)
    for _ in stream.buckets:
        pass
    return 0.0


def weight_stream(lm: nn.Module, bucket_bytes: int) -> WeightStream:
    """The HF model's parameters and persistent buffers (an MoE's expert bias) as a
    WeightStream, shapes read without gathering (`ds_shape` under ZeRO-3). A tied LM head is
    sent under its own name too: vLLM on CPU keeps the head as a separate (packed) copy,
    which would otherwise stay stale."""
    params: dict[str, torch.Tensor] = dict(lm.named_parameters(remove_duplicate=False))
    params.update(_persistent_buffers(lm))
    metas = [
        TensorMeta(name, tuple(getattr(p, "ds_shape", p.shape)), p.dtype)
        for name, p in params.items()
    ]
    plan = plan_buckets(metas, bucket_bytes)
    return WeightStream(plan, _gathered_buckets(params, plan))


def _persistent_buffers(lm: nn.Module) -> dict[str, torch.Tensor]:
    """The buffers a state dict (and so the HF export) holds."""
    return {
        f"{prefix}.{name}" if prefix else name: buffer
        for prefix, module in lm.named_modules()
        for name, buffer in module.named_buffers(recurse=False)
        if buffer is not None and name not in module._non_persistent_buffers_set
    }


def _gathered_buckets(
    params: dict[str, torch.Tensor], plan: list[list[TensorMeta]]
) -> Iterator[Bucket]:
    import deepspeed

    for metas in plan:
        bucket = [params[meta.name] for meta in metas]
        partitioned = list({id(p): p for p in bucket if hasattr(p, "ds_id")}.values())
        with deepspeed.zero.GatheredParameters(
            partitioned, modifier_rank=None, enabled=bool(partitioned)
        ):
            yield {meta.name: p.data for meta, p in zip(metas, bucket)}


def _frozen_copy(lm):
    import copy

    from rsrl.rl.policy import PolicyLM

    ref = PolicyLM(copy.deepcopy(lm)).eval()
    ref.requires_grad_(False)
    return ref


def place_like(reference: nn.Module, policy: nn.Module, device: torch.device) -> nn.Module:
    """The reference on the policy's device and in the dtype DeepSpeed gave the policy
    (bf16 under precision bf16); read from the first parameter, as ZeRO-3 keeps its dtype."""
    return reference.to(device=device, dtype=next(policy.parameters()).dtype)
