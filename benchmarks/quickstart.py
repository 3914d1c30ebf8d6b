"""The README's main command, timed: `rsrl apply specs/quickstart.yaml` from an empty workdir,
then again (every stage cached), with where the time went.

    .venv/bin/python benchmarks/quickstart.py [k=v ...]     (after `make install`)
    .venv/bin/python benchmarks/quickstart.py --from-run WORKDIR LOG [k=v ...]

--from-run reports on a cold apply already made (with the same k=v) into WORKDIR, whose
output (stdout and stderr) is in the file LOG, instead of making one and re-applying it: the
test suite's smoke run reads the run its end-to-end tests make, since a cold apply takes
minutes. WORKDIR is only read. --plain-steps: the plain loop's steps (default 12).

Per stage: wall seconds (from the apply's log), and for the model stages (from their
steps.jsonl and timings.json) the worker's start, its set-up before the first step
(model, DeepSpeed engine, vLLM actors, the RL curve's first point), the steps (training:
tokens over logged tokens/s; RL: rollout + update + sync + RL-curve eval), the final
checkpoint and HF export, and the rest (the stage's driver, shutdown).
Then RL seconds per step split into rollout, update and sync, what they buy (the eval's RL
gain and the RL curve), and the pre-training
throughput against a plain PyTorch loop on the same model, rows and threads, measured right
after in this process (benchmarks/train.py's loop).
"""

from __future__ import annotations

import argparse
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

from rsrl.eval.results import RL_CURVE, read_eval_metrics  # noqa: E402
from rsrl.report.runs import Run  # noqa: E402
from rsrl.report.tables import rl_gain_table  # noqa: E402
from rsrl.runtime import Timings  # noqa: E402
from rsrl.train.metrics import read_metrics  # noqa: E402

MODEL_STAGES = ("pretrain", "midtrain", "rl")
# The plain console's end line of a stage, e.g. "pretrain: done in 1m02s" (whole seconds).
STAGE_LINE = re.compile(r"^(\S+): done in (?:(\d+)m)?(\d+)s", re.MULTILINE)


def apply(workdir: Path, overrides: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    out = subprocess.run(
        [
            str(REPO / ".venv" / "bin" / "rsrl"),
            "apply",
            str(REPO / "specs" / "quickstart.yaml"),
            f"workdir={workdir}",
            *overrides,
        ],
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise SystemExit(out.stdout[-3000:] + out.stderr[-3000:])
    return time.perf_counter() - start, out.stdout + out.stderr


def step_seconds(stage: str, records: list[dict], tokens_per_step: int) -> list[float]:
    """Seconds of the steps each metrics record covers."""
    if stage == "rl":
        return [
            sum(
                r.get(k, 0.0)
                for k in ("rollout_seconds", "update_seconds", "sync_seconds", "eval_seconds")
            )
            for r in records
        ]
    steps = [r["step"] - p["step"] for p, r in zip([{"step": 0}, *records], records)]
    return [n * tokens_per_step / r["tokens_per_s"] for n, r in zip(steps, records)]


def split(stage: str, stage_dir: Path, wall: float, spec) -> list[float]:
    """[worker start, set-up, steps, checkpoint + export, rest] seconds of a model stage."""
    records, t = read_metrics(stage_dir), Timings(stage_dir).read()
    tokens = getattr(spec.stages, stage).batch_tokens if stage != "rl" else 0
    steps = step_seconds(stage, records, tokens)
    start = t["worker_started"] - t["fit_started"]
    setup = records[0]["time"] - steps[0] - t["worker_started"]
    io = t["checkpoint_export_seconds"]
    return [start, setup, sum(steps), io, wall - start - setup - sum(steps) - io]


def print_rl_gain(eval_dir: Path) -> None:
    """What the time buys: each suite's avg@n before and after RL (the report's RL-gain
    rows), and the RL curve."""
    metrics = read_eval_metrics(eval_dir) or {}
    for row in rl_gain_table([Run("quickstart", eval_dir, eval=metrics)]):
        if row["metric"].startswith("avg@"):
            curve = metrics.get(RL_CURVE, {}).get(row["suite"], [])
            print(
                f"RL gain on {row['suite']}: {row['metric']} {row['before RL']:.3f} -> "
                f"{row['after RL']:.3f} ({row['gain']}, z {row['z']:.1f}); RL curve: "
                + ", ".join(f"{point[row['metric']]:.3f}" for point in curve)
            )


def main() -> None:
    from rsrl.spec import load_spec

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", metavar="k=v")
    parser.add_argument("--from-run", nargs=2, type=Path, metavar=("WORKDIR", "LOG"))
    parser.add_argument("--plain-steps", type=int, default=12)
    args = parser.parse_args()
    if args.plain_steps < 3:
        parser.error("--plain-steps: at least 3 (the first 2 are warm-up, left out)")
    overrides = args.overrides
    spec = load_spec(REPO / "specs" / "quickstart.yaml", overrides)
    load_before = load_average()
    with tempfile.TemporaryDirectory() as tmp:
        if args.from_run:
            workdir, log_file = (p.resolve() for p in args.from_run)
            log = log_file.read_text()
            print(f"quickstart from an empty workdir: read from {log_file}")
        else:
            workdir = Path(tmp) / "run"
            cold, log = apply(workdir, overrides)
            cached, _ = apply(workdir, overrides)
            print(
                f"quickstart from an empty workdir: {cold:6.1f} s   "
                f"cached re-apply: {cached:5.1f} s"
            )
        walls = {
            m.group(1): 60 * float(m.group(2) or 0) + float(m.group(3))
            for m in STAGE_LINE.finditer(log)
        }
        print(f"the cold apply printed {len(log.splitlines())} lines (stdout and stderr)")
        cols = ("worker", "set-up", "steps", "ckpt+HF", "rest")
        print(f"{'stage':<15}{'wall s':>8}" + "".join(f"{c:>9}" for c in cols))
        dirs = {p.name.rsplit("-", 1)[0]: p for p in workdir.iterdir() if p.is_dir()}
        for stage, wall in walls.items():
            parts = split(stage, dirs[stage], wall, spec) if stage in MODEL_STAGES else []
            print(f"{stage:<15}{wall:>8.1f}" + "".join(f"{x:>9.1f}" for x in parts))
        rl = read_metrics(dirs["rl"])
        per_step = {
            k: statistics.mean(r[k] for r in rl)
            for k in ("rollout_seconds", "update_seconds", "sync_seconds")
        }
        print(
            "RL per step: "
            + ", ".join(f"{k.split('_')[0]} {v:.2f} s" for k, v in per_step.items())
            + f"; RL curve {sum(r.get('eval_seconds', 0) for r in rl):.1f} s in all"
        )
        print_rl_gain(dirs["eval"])
        pretrain = read_metrics(dirs["pretrain"])
        staged = statistics.median(r["tokens_per_s"] for r in pretrain[1:])
        plain = plain_loop(workdir, overrides, Path(tmp) / "plain-loop", args.plain_steps)
        threads = {s: Timings(dirs[s]).read()["threads"] for s in MODEL_STAGES}
        print(
            f"pre-training: {staged:,.0f} tokens/s in the stage, plain PyTorch loop "
            f"{plain:,.0f} (ratio {staged / plain:.2f}); torch threads: "
            + ", ".join(f"{s} {n}" for s, n in threads.items())
        )
    print(
        f"machine: {os.cpu_count()} cores; load average (1, 5, 15 min) before "
        f"{load_before}, after {load_average()}"
    )


def load_average() -> str:
    return " ".join(open("/proc/loadavg").read().split()[:3])


def plain_loop(workdir: Path, overrides: list[str], out_dir: Path, steps: int) -> float:
    """Tokens/s of a plain PyTorch loop over the pre-training stage's model and rows, with
    as many threads as the stage's workers get; `steps` steps, writing into `out_dir`."""
    import torch
    from train import plain_tokens_per_s

    from rsrl.pipeline.plan import compile_plan
    from rsrl.pipeline.registry import StageContext
    from rsrl.spec import load_spec
    from rsrl.train.stage import make_train_job

    spec = load_spec(REPO / "specs" / "quickstart.yaml", [f"workdir={workdir}", *overrides])
    plan = compile_plan(spec)
    stage = plan.stage("pretrain")
    torch.set_num_threads(
        int(spec.stages.pretrain.cpus_per_worker or spec.resources.cpus_per_worker)
    )
    ctx = StageContext(
        spec, stage, out_dir, {i: plan.stage(i).out_dir(plan.workdir) for i in stage.inputs}
    )
    return plain_tokens_per_s(make_train_job(ctx, total_steps=steps))


if __name__ == "__main__":
    main()
