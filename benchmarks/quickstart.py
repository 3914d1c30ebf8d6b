"""The README's main command, timed: `rsrl apply specs/quickstart.yaml` from an empty workdir,
then again (every stage cached), with where the time went.

    .venv/bin/python benchmarks/quickstart.py [k=v ...]     (after `make install`)

Per stage: wall seconds (from the apply's log), and for the model stages the part spent in
steps (training: tokens over logged tokens/s; RL: rollout + update + sync + the RL curve's
eval) against the rest (worker start-up, DeepSpeed / engine init, checkpoints, export).
Then RL seconds per step split into rollout, update and sync, and the pre-training
throughput against a plain PyTorch loop on the same model, rows and threads, measured right
after in this process (benchmarks/train.py's loop).
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]

from rsrl.train.metrics import read_metrics  # noqa: E402

STAGE_LINE = re.compile(r"rsrl: stage (\S+) finished in ([0-9.]+)s")


def apply(workdir: Path, overrides: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    out = subprocess.run([str(REPO / ".venv" / "bin" / "rsrl"), "apply",
                          str(REPO / "specs" / "quickstart.yaml"), f"workdir={workdir}",
                          *overrides], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(out.stdout[-3000:] + out.stderr[-3000:])
    return time.perf_counter() - start, out.stdout + out.stderr


def in_steps(stage: str, records: list[dict], spec) -> float:
    """Seconds a model stage spent in its steps, from its metrics.jsonl."""
    if stage == "rl":
        return sum(r.get(k, 0.0) for r in records
                   for k in ("rollout_seconds", "update_seconds", "sync_seconds", "eval_seconds"))
    tokens = records[-1]["step"] * getattr(spec.stages, stage).batch_tokens
    return tokens / statistics.median(r["tokens_per_s"] for r in records)


def main() -> None:
    from rsrl.spec import load_spec

    overrides = sys.argv[1:]
    spec = load_spec(REPO / "specs" / "quickstart.yaml", overrides)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp) / "run"
        cold, log = apply(workdir, overrides)
        cached, _ = apply(workdir, overrides)
        walls = {m.group(1): float(m.group(2)) for m in STAGE_LINE.finditer(log)}
        print(f"quickstart from an empty workdir: {cold:6.1f} s   cached re-apply: {cached:5.1f} s")
        print(f"{'stage':<15}{'wall s':>8}{'in steps':>10}{'start-up, I/O':>15}")
        dirs = {p.name.rsplit("-", 1)[0]: p for p in workdir.iterdir() if p.is_dir()}
        for stage, wall in walls.items():
            records = read_metrics(dirs[stage]) if stage in ("pretrain", "midtrain", "rl") else []
            steps = in_steps(stage, records, spec) if records else float("nan")
            rest = wall - steps if records else float("nan")
            print(f"{stage:<15}{wall:>8.1f}{steps:>10.1f}{rest:>15.1f}")
        rl = read_metrics(dirs["rl"])
        per_step = {k: statistics.mean(r[k] for r in rl)
                    for k in ("rollout_seconds", "update_seconds", "sync_seconds")}
        print("RL per step: " + ", ".join(f"{k.split('_')[0]} {v:.2f} s" for k, v in per_step.items())
              + f"; RL curve {sum(r.get('eval_seconds', 0) for r in rl):.1f} s in all")
        pretrain = read_metrics(dirs["pretrain"])
        staged = statistics.median(r["tokens_per_s"] for r in pretrain[1:])
        print(f"pre-training: {staged:,.0f} tokens/s in the stage; "
              f"plain loop: {plain_loop(workdir, overrides):,.0f} tokens/s")
    print(f"machine: {os.cpu_count()} cores, load average "
          f"{' '.join(open('/proc/loadavg').read().split()[:3])}")


def plain_loop(workdir: Path, overrides: list[str]) -> float:
    """Tokens/s of a plain PyTorch loop over the pre-training stage's model and rows, with
    as many threads as the stage's workers get."""
    import torch
    from train import plain_tokens_per_s

    from rsrl.pipeline.plan import compile_plan
    from rsrl.pipeline.registry import StageContext
    from rsrl.spec import load_spec
    from rsrl.train.stage import make_train_job

    spec = load_spec(REPO / "specs" / "quickstart.yaml", [f"workdir={workdir}", *overrides])
    plan = compile_plan(spec)
    stage = plan.stage("pretrain")
    torch.set_num_threads(int(spec.stages.pretrain.cpus_per_worker
                              or spec.resources.cpus_per_worker))
    ctx = StageContext(spec, stage, workdir / "plain-loop",
                       {i: plan.stage(i).out_dir(plan.workdir) for i in stage.inputs})
    return plain_tokens_per_s(make_train_job(ctx, total_steps=12))


if __name__ == "__main__":
    main()
