"""The training loop of one worker, top to bottom: model, engine, resume, steps, checkpoints.

It runs inside a Ray Train worker (the process group already exists: gloo on CPU, nccl on
GPU) and reads every setting from a `TrainJob`. The data position (`PackedLoader`) is saved
in every checkpoint, so a resume continues with the next unread rows.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from rsrl.models.config import ModelSpec
from rsrl.models.moe import expert_stats, update_bias
from rsrl.objective.config import ObjectiveSpec
from rsrl.runtime import Report
from rsrl.train.batches import BatchLayout
from rsrl.train.config import DeepSpeedSpec, TrainStageSpec
from rsrl.train.metrics import peak_flops, sum_across_workers
from rsrl.train.optimizer import optimizer_step
from rsrl.train.schedule import wsd_lr
from rsrl.train.worker import StageWorker

HEADLINE = ("shaped_loss", "nll", "entropy", "tail_mass", "tokens_per_s")


@dataclass(frozen=True)
class TrainJob:
    """A training stage's spec sections, and what the driver resolved for its workers."""

    stage: str  # pretrain | midtrain
    train: TrainStageSpec  # stages.<stage>
    model: ModelSpec
    objective: ObjectiveSpec  # objective:, with the stage's own keys laid over it
    deepspeed: DeepSpeedSpec
    seed: int
    # Resolved on the driver:
    stage_dir: Path
    data_dir: Path  # the data stage's packed rows
    tokenizer_dir: Path
    init_dir: Path | None  # HF export of the previous stage; None: initialise from the seed
    layout: BatchLayout
    total_steps: int  # whole optimizer steps the packed rows fill


def train_worker(job: TrainJob, rank: int, report: Report | None = None) -> None:
    """Train `job.total_steps` optimizer steps (resuming if a checkpoint exists), then export."""
    from rsrl.data.loader import PackedLoader
    from rsrl.data.packed import PackedDataset
    from rsrl.models.tokenizer import load_tokenizer
    from rsrl.train.shaped_lm import ShapedLossLM

    worker = StageWorker(
        job.stage_dir,
        rank,
        report,
        label=job.stage,
        total_steps=job.total_steps,
        checkpoint_every=job.train.checkpoint_every,
        keep_checkpoints=job.train.keep_checkpoints,
        headline=HEADLINE,
        seed=job.seed,
    )
    loader = PackedLoader(
        PackedDataset(job.data_dir),
        job.layout.micro_batch_size,
        rank,
        job.layout.world_size,
        job.train.reset_position_ids,
    )
    tokenizer = load_tokenizer(job.tokenizer_dir)
    module = ShapedLossLM(load_lm(job, tokenizer), job.objective)
    flops_per_token = 6 * sum(p.numel() for p in module.parameters())  # before ZeRO-3 shards
    engine, state = worker.start_engine(
        module,
        job.deepspeed.weight_decay,
        job.deepspeed,
        job.layout,
    )
    step = state["step"]
    if "data" in state:
        loader.load_state_dict(state["data"])
    timer = _Throughput(job.layout.rows_per_step * job.train.seq_len, flops_per_token)

    while step < job.total_steps:
        lr = wsd_lr(step, job.total_steps, job.train.lr)
        for group in engine.optimizer.param_groups:
            group["lr"] = lr
        stats = _one_step(engine, loader, job)
        step += 1
        if step % job.train.log_every == 0 or step == job.total_steps or step == 1:
            worker.log(
                {
                    "step": step,
                    "lr": lr,
                    **_mean_across_workers(stats),
                    **timer.tick(step),
                }
            )
        # The data position goes into every checkpoint: a resume reads the next rows.
        worker.maybe_checkpoint(step, {"data": loader.state_dict()})
    worker.finish(step, tokenizer, {"data": loader.state_dict()})


def load_lm(job: TrainJob, tokenizer):
    """A fresh model from the seed, or the previous stage's export (mid-training)."""
    from rsrl.models.build import build_model, load_config, load_pretrained
    from rsrl.models.tokenizer import special_token_ids

    if job.init_dir is None:
        return build_model(
            job.model,
            rope_theta=job.train.rope_theta,
            max_seq_len=job.train.seq_len,
            seed=job.seed,
            **special_token_ids(tokenizer),
        )
    # Mid-training may raise the RoPE base and the context length: both live in the config,
    # and the rotary frequencies are rebuilt from it (they are not stored in the weights).
    config = load_config(job.init_dir)
    config.rope_parameters["rope_theta"] = float(job.train.rope_theta)
    config.max_position_embeddings = max(config.max_position_embeddings, job.train.seq_len)
    return load_pretrained(job.init_dir, config=config)


def _one_step(engine, loader, job: TrainJob) -> dict[str, float]:
    """Forward/backward over this worker's micro-batches of one step, then the optimizer step."""
    totals: dict[str, float] = {}
    counts = None  # MoE: tokens per expert and layer over the step's micro-batches
    for _ in range(job.layout.grad_accum):
        batch = {name: t.to(engine.device) for name, t in loader.next_batch().items()}
        out = engine(batch["input_ids"], batch["labels"], batch.get("position_ids"))
        engine.backward(out.loss)
        norm = optimizer_step(engine)
        for name, value in out.stats.items():
            totals[name] = totals.get(name, 0.0) + float(value) / job.layout.grad_accum
        if out.expert_counts is not None:
            counts = out.expert_counts if counts is None else counts + out.expert_counts
    totals["grad_norm"] = norm  # the boundary's (the last micro-batch), the same on every worker
    if counts is not None:
        totals.update(balance_experts(engine.module.lm, counts, job.model))
    return totals


def balance_experts(lm, counts: torch.Tensor, model: ModelSpec) -> dict[str, float]:
    """After an optimizer step: the step's expert loads summed over every worker, the expert
    bias moved by them (`router_balance: bias`; every worker moves it alike), and the loads'
    diagnostics."""
    if dist.is_initialized():
        dist.all_reduce(counts)
    if model.resolved_router_balance() == "bias":
        update_bias(lm, counts, model.resolved_router_bias_rate())
    return expert_stats(counts, lm)


def _mean_across_workers(stats: dict[str, float]) -> dict[str, float]:
    world = dist.get_world_size() if dist.is_initialized() else 1
    mean = {name: total / world for name, total in sum_across_workers(stats).items()}
    mean["perplexity"] = math.exp(mean["nll"])
    return mean


class _Throughput:
    """Tokens/s (and MFU on known GPUs) between logged steps."""

    def __init__(self, tokens_per_step: int, flops_per_token: float):
        self.tokens_per_step = tokens_per_step
        self.flops_per_token = flops_per_token
        self.last_time = time.perf_counter()
        self.last_step: int | None = None
        self.peak = peak_flops(torch.cuda.get_device_name()) if torch.cuda.is_available() else None

    def tick(self, step: int) -> dict[str, float]:
        now = time.perf_counter()
        steps = step - (self.last_step if self.last_step is not None else step - 1)
        tokens_per_s = steps * self.tokens_per_step / max(now - self.last_time, 1e-9)
        self.last_time, self.last_step = now, step
        out = {"tokens_per_s": tokens_per_s}
        if self.peak:
            world = dist.get_world_size() if dist.is_initialized() else 1
            out["mfu"] = tokens_per_s * self.flops_per_token / (self.peak * world)
        return out
