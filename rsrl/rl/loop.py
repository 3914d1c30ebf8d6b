"""The GRPO loop of one Ray Train worker, read top to bottom as the algorithm.

Single controller: rank 0 owns the rollout actors and the prompts; each step it samples and
scores groups, then every worker receives the batch, computes the update on its share in
DeepSpeed, and rank 0 pushes the new weights to the rollout actors.

    for step in steps:
        batch   = rollouts.collect(step)          # rank 0: vLLM actors + verifier
        batch   = broadcast(batch)                # to every trainer worker
        update(policy, batch)                     # PPO-clip, clip-higher, token-mean
        rollouts.sync(weight_stream(policy))      # new weights to the actors, bucket by bucket
        every rl.eval_every steps: the eval suites' subset on the new weights (rl/curve.py)
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from rsrl.rl.batch import PaddedBatch, Sample, dummy_batch, pad_samples
from rsrl.rl.curve import CurveSuite, RLCurve
from rsrl.rl.grpo import clipped_policy_loss, kl_to_reference
from rsrl.rl.rollout.weight_sync import Bucket, TensorMeta, WeightStream, plan_buckets
from rsrl.spec.schema import DeepSpeedSpec, RLSpec
from rsrl.train.batches import BatchLayout
from rsrl.train.metrics import optimizer_step, sum_across_workers
from rsrl.train.worker import Report, StageRun

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
    rollout_threads: int | None = None  # cpu_share.py

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
    from transformers import AutoModelForCausalLM

    from rsrl.models.tokenizer import load_tokenizer
    from rsrl.rl.policy import PolicyLM
    from rsrl.rl.rollouts import RolloutController

    run = StageRun(
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
    lm = AutoModelForCausalLM.from_pretrained(job.init_dir, dtype=torch.float32)
    reference = _frozen_copy(lm) if job.rl.kl_coef > 0 else None
    # The loop calls the DeepSpeed engine `policy`: in rl/, "engine" is a rollout engine.
    policy, state = run.start_engine(
        PolicyLM(lm, job.impl), job.rl.weight_decay, job.deepspeed, job.layout
    )
    if reference is not None:  # copied before initialize (ZeRO-3 partitions the policy's)
        reference = place_like(reference, policy.module, policy.device)
    for group in policy.optimizer.param_groups:
        group["lr"] = job.rl.lr
    # Rank 0's rollout actors: borrowed from the pool where the stage started them before
    # this worker (their engines load meanwhile), else started here.
    rollouts = (
        RolloutController(
            job.rl,
            job.prompts,
            job.init_dir,
            job.tokenizer_dir,
            job.plugins,
            job.seed,
            job.rollout_pool,
            job.rollout_threads,
        )
        if rank == 0
        else None
    )
    step = state["step"]
    if step > 0:  # resumed: the actors start from the initial weights, give them ours
        _sync(policy, rollouts, job.rl.rollout.sync_bucket_mb)
    curve = (
        RLCurve(
            job.stage_dir,
            list(job.curve_suites),
            job.rl.eval_every,
            job.rl.steps,
            job.plugins,
            job.seed,
            step,
        )
        if rollouts and job.curve_suites
        else None
    )
    if curve and curve.due(step):  # the starting point of the curve
        assert rollouts is not None  # a curve is made only beside rollouts
        curve.measure(rollouts.group, rollouts.tokenizer, step)

    while step < job.rl.steps:
        batch = rollouts.collect(step) if rollouts else None
        samples, record = _broadcast((batch.samples, batch.stats) if batch else None)
        if samples:
            start = time.perf_counter()
            record.update(_update(policy, samples, job, rank, tokenizer.pad_token_id, reference))
            record["update_seconds"] = time.perf_counter() - start
            record["sync_seconds"] = _sync(policy, rollouts, job.rl.rollout.sync_bucket_mb)
        step += 1
        if curve and curve.due(step):
            assert rollouts is not None  # a curve is made only beside rollouts
            record.update(curve.measure(rollouts.group, rollouts.tokenizer, step))
        record.update(step=step, lr=job.rl.lr)
        run.log(record)
        run.maybe_checkpoint(step)
    run.finish(step, tokenizer)
    if rollouts:
        rollouts.shutdown()


def _broadcast(obj):
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _sync(policy, rollouts, bucket_mb: int) -> float:
    """Every worker walks the policy's weights bucket by bucket (under ZeRO-3 each bucket is
    gathered, a collective, and freed before the next); rank 0 streams them to the actors."""
    stream = weight_stream(policy.module.lm, bucket_mb * 2**20)
    if rollouts:
        return rollouts.sync(stream)
    for _ in stream.buckets:
        pass
    return 0.0


def weight_stream(lm: nn.Module, bucket_bytes: int) -> WeightStream:
    """The HF model's parameters as a WeightStream, shapes read without gathering
    (`ds_shape` under ZeRO-3). A tied LM head is sent under its own name too: vLLM on CPU
    keeps the head as a separate (packed) copy, which would otherwise stay stale."""
    params = dict(lm.named_parameters(remove_duplicate=False))
    metas = [
        TensorMeta(name, tuple(getattr(p, "ds_shape", p.shape)), p.dtype)
        for name, p in params.items()
    ]
    plan = plan_buckets(metas, bucket_bytes)
    return WeightStream(plan, _gathered_buckets(params, plan))


def _gathered_buckets(
    params: dict[str, nn.Parameter], plan: list[list[TensorMeta]]
) -> Iterator[Bucket]:
    import deepspeed

    for metas in plan:
        bucket = [params[meta.name] for meta in metas]
        partitioned = list({id(p): p for p in bucket if hasattr(p, "ds_id")}.values())
        with deepspeed.zero.GatheredParameters(
            partitioned, modifier_rank=None, enabled=bool(partitioned)
        ):
            yield {meta.name: p.data for meta, p in zip(metas, bucket)}


def _update(
    policy, samples: list[Sample], job: RLJob, rank: int, pad_id: int, reference
) -> dict[str, float]:
    """`mini_batches` optimizer updates over the step's samples; old log-probs are the
    policy's before the first update (so with one mini-batch the ratio is exactly 1)."""
    rl, layout = job.rl, job.layout
    split = mini_batch_indices(len(samples), job.world_size, rl.mini_batches)
    minis = [per_rank[rank] for per_rank in split]
    old = _old_logprobs(policy, samples, minis, layout, pad_id, rl) if rl.mini_batches > 1 else None
    totals: dict[str, float] = {}
    for m, mini in enumerate(minis):
        # The loss is normalised by the whole mini-batch, across every worker's share.
        counts = _response_counts([samples[i] for i in np.concatenate(split[m])])
        for c, chunk in enumerate(np.array_split(mini, layout.grad_accum)):
            batch = _micro_batch(samples, chunk, pad_id, policy.device)
            out = policy(
                batch.input_ids, batch.attention_mask, batch.labels, rl.rollout.temperature
            )
            old_logp = old[m][c] if old else out.logp.detach()
            pl = clipped_policy_loss(
                out.logp,
                old_logp,
                batch.advantages,
                out.mask,
                eps_low=rl.clip.eps_low,
                eps_high=rl.clip.eps_high,
                loss_agg=rl.loss_agg,
                **counts,
            )
            loss = pl.loss
            if reference is not None:
                ref_logp = _reference_logprobs(reference, batch, rl.rollout.temperature)
                kl = kl_to_reference(out.logp, ref_logp, out.mask, counts["total_tokens"])
                loss = loss + rl.kl_coef * kl
                _accumulate(totals, "kl", kl, len(chunk))
            # DeepSpeed averages over micro-batches and workers; the loss is already the
            # step's sum-normalised share, so undo that averaging.
            policy.backward(loss * layout.grad_accum * job.world_size)
            norm = optimizer_step(policy)
            if rl.rollout.temperature == 1.0:  # rollout engines return temperature-1 logprobs
                # Against the policy that sampled (before this step's first update).
                mismatch = ((old_logp - batch.rollout_logp).abs() * out.mask).sum()
                _accumulate(
                    totals, "logprob_mismatch", mismatch / out.mask.sum().clamp(min=1), len(chunk)
                )
            for name in ("clip_fraction", "approx_kl"):
                _accumulate(totals, name, getattr(pl, name), len(chunk))
            _accumulate(totals, "entropy", out.entropy, len(chunk))
    return {**_mean_over_samples(totals, len(samples)), "grad_norm": norm}  # the last update's


def mini_batch_indices(n: int, world_size: int, mini_batches: int) -> list[list[np.ndarray]]:
    """[mini-batch][rank] -> sample indices: each rank's share, cut into mini-batches."""
    shares = np.array_split(np.arange(n), world_size)
    per_rank = [np.array_split(share, mini_batches) for share in shares]
    return [[per_rank[r][m] for r in range(world_size)] for m in range(mini_batches)]


def _response_counts(samples: list[Sample]) -> dict[str, float]:
    return {
        "total_tokens": float(sum(len(s.response_ids) for s in samples)),
        "total_sequences": float(len(samples)),
    }


def _micro_batch(samples: list[Sample], chunk: np.ndarray, pad_id: int, device) -> PaddedBatch:
    batch = pad_samples([samples[i] for i in chunk], pad_id) if len(chunk) else dummy_batch(pad_id)
    return batch.to(device)


def _old_logprobs(policy, samples, minis, layout, pad_id, rl) -> list[list[torch.Tensor]]:
    old = []
    with torch.no_grad():
        for mini in minis:
            batches = [
                _micro_batch(samples, chunk, pad_id, policy.device)
                for chunk in np.array_split(mini, layout.grad_accum)
            ]
            old.append(
                [
                    policy(b.input_ids, b.attention_mask, b.labels, rl.rollout.temperature).logp
                    for b in batches
                ]
            )
    return old


def _reference_logprobs(reference, batch: PaddedBatch, temperature: float) -> torch.Tensor:
    with torch.no_grad():
        return reference(batch.input_ids, batch.attention_mask, batch.labels, temperature).logp


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


def _accumulate(totals: dict[str, float], name: str, value, weight: int) -> None:
    """Sample-weighted sums, so empty (dummy) micro-batches weigh nothing."""
    if isinstance(value, torch.Tensor):  # approx_kl carries the policy's graph
        value = value.detach()
    totals[name] = totals.get(name, 0.0) + float(value) * weight


def _mean_over_samples(totals: dict[str, float], num_samples: int) -> dict[str, float]:
    return {name: total / max(num_samples, 1) for name, total in sum_across_workers(totals).items()}
