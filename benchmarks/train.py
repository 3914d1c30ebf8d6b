"""Training throughput: the training stage's own path (its Ray worker + DeepSpeed) against
a plain PyTorch loop.

Same tiny model, same packed rows, same micro-batches and gradient accumulation, same
reward-shaped loss; one worker on CPU. Start-up (Ray Train workers, DeepSpeed init) is
reported apart from the steady state, which is the median tokens/s of the logged steps
after the first. Target: steady-state ratio >= 0.8. `--cpus 1,2` runs both paths at each
thread count (the Ray worker reserves that many CPUs and runs that many torch threads).

    python benchmarks/train.py [--steps 30] [--seq-len 256] [--batch-tokens 8192] [--cpus 1,2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import ray
import torch

from rsrl.data.loader import PackedLoader
from rsrl.data.packed import PackedDataset
from rsrl.models.tokenizer import load_tokenizer
from rsrl.pipeline.plan import compile_plan
from rsrl.pipeline.registry import StageContext, resolve_stage_fn
from rsrl.runtime import Timings
from rsrl.spec import load_spec
from rsrl.train.fit import fit
from rsrl.train.loop import TrainJob, load_lm, train_worker
from rsrl.train.metrics import read_metrics
from rsrl.train.shaped_lm import ShapedLossLM
from rsrl.train.stage import make_train_job

REPO = Path(__file__).resolve().parents[1]
LOG_EVERY = 4  # steps a logged record's tokens/s covers
WARMUP_RECORDS = 2  # records (and plain-loop steps) left out of the steady state
MIN_STEPS = LOG_EVERY * (WARMUP_RECORDS + 1)


def prepare(workdir: Path, args) -> tuple:
    overrides = [
        f"workdir={workdir}",
        "stages.midtrain=null",
        "rl=null",
        "eval=null",
        f"stages.pretrain.tokens={args.steps * args.batch_tokens * 2}",
        f"stages.pretrain.seq_len={args.seq_len}",
        f"stages.pretrain.batch_tokens={args.batch_tokens}",
        f"stages.pretrain.log_every={LOG_EVERY}",
        f"stages.pretrain.checkpoint_every={10**6}",
        f"resources.deepspeed.zero_stage={args.zero}",
    ]
    spec = load_spec(REPO / "specs" / "quickstart.yaml", overrides)
    plan = compile_plan(spec)
    for name in ("tokenizer", "data-pretrain"):
        stage = plan.stage(name)
        out = stage.out_dir(plan.workdir)
        out.mkdir(parents=True, exist_ok=True)
        resolve_stage_fn(stage.kind)(
            StageContext(
                spec, stage, out, {i: plan.stage(i).out_dir(plan.workdir) for i in stage.inputs}
            )
        )
    stage = plan.stage("pretrain")
    ctx = StageContext(
        spec,
        stage,
        stage.out_dir(plan.workdir),
        {i: plan.stage(i).out_dir(plan.workdir) for i in stage.inputs},
    )
    return spec, make_train_job(ctx, total_steps=args.steps)


def ray_train_tokens_per_s(resources, job: TrainJob) -> tuple[float, dict]:
    """Steady tokens/s of the stage's own path (`fit`), and where its time outside the steps
    went (the worker's timings.json)."""
    start = time.time()
    fit(job, resources, "bench", train_worker)
    end = time.time()
    records, t = read_metrics(job.stage_dir), Timings(job.stage_dir).read()
    steady = statistics.median(r["tokens_per_s"] for r in records[WARMUP_RECORDS:])
    parts = {
        "worker start": t["worker_started"] - t["fit_started"],
        "model + DeepSpeed engine": t["setup_seconds"],
        "  of which deepspeed.initialize": t["deepspeed_init_seconds"],
        "steps": t["steps_finished"] - t["worker_started"] - t["setup_seconds"],
        "checkpoint + HF export": t["checkpoint_export_seconds"],
        "worker shutdown": end - t["worker_finished"],
    }
    return steady, {**parts, "fit() in all": end - start}


def plain_tokens_per_s(job: TrainJob) -> float:
    torch.manual_seed(job.seed)
    model = ShapedLossLM(load_lm(job, load_tokenizer(job.tokenizer_dir)), job.objective)
    opt = torch.optim.AdamW(model.parameters(), lr=job.train.lr.peak, weight_decay=0.1)
    loader = PackedLoader(PackedDataset(job.data_dir), job.layout.micro_batch_size)
    rates = []
    for _ in range(job.total_steps):
        start = time.perf_counter()
        for _ in range(job.layout.grad_accum):
            batch = loader.next_batch()
            out = model(batch["input_ids"], batch["labels"])
            (out.loss / job.layout.grad_accum).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        rates.append(job.layout.rows_per_step * job.train.seq_len / (time.perf_counter() - start))
    return statistics.median(rates[WARMUP_RECORDS:])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--batch-tokens", type=int, default=8192)
    parser.add_argument("--cpus", default="2", help="threads of both paths; a list: 1,2")
    parser.add_argument("--zero", type=int, default=2, help="DeepSpeed ZeRO stage")
    args = parser.parse_args()
    if args.steps < MIN_STEPS:
        parser.error(
            f"--steps {args.steps}: at least {MIN_STEPS}, since the first {WARMUP_RECORDS} "
            f"logged records ({LOG_EVERY} steps each) are warm-up and left out"
        )
    threads = [int(c) for c in args.cpus.split(",")]
    ray.init(
        address="local", num_cpus=max(2, *threads), include_dashboard=False, log_to_driver=False
    )
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        spec, job = prepare(Path(tmp), args)
        for n in threads:
            torch.set_num_threads(n)
            plain = plain_tokens_per_s(replace(job, stage_dir=Path(tmp) / f"plain-{n}"))
            resources = replace(spec.resources, cpus_per_worker=n)
            steady, startup = ray_train_tokens_per_s(
                resources, replace(job, stage_dir=Path(tmp) / f"ray-{n}")
            )
            rows.append((n, plain, steady, startup))
    print(
        f"tiny-dense, seq_len {args.seq_len}, {job.layout.rows_per_step * job.train.seq_len} "
        f"tokens/step ({job.layout.micro_batch_size} x {job.layout.grad_accum} micro-batches), "
        f"{args.steps} steps, 1 worker, ZeRO-{args.zero}, {os.cpu_count()} cores"
    )
    print(f"{'threads':>7}{'plain loop tok/s':>18}{'stage tok/s':>14}{'ratio':>7}")
    for n, plain, steady, _ in rows:
        print(f"{n:>7}{plain:>18,.0f}{steady:>14,.0f}{steady / plain:>7.2f}")
    print("seconds of each fit() (one worker: a Ray actor; more: Ray Train):")
    for name in rows[0][3]:
        print(f"  {name:<34}" + "".join(f"{r[3][name]:>8.1f}" for r in rows))
    print("load average " + " ".join(open("/proc/loadavg").read().split()[:3]))


if __name__ == "__main__":
    main()
