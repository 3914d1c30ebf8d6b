"""RL's asynchronous rollouts and its off-policy correction, side by side on the quickstart's
mid-trained model.

    .venv/bin/python benchmarks/rl_async.py [k=v ...] [--workdir runs/rl-async] [--variants ...]

Applies specs/quickstart.yaml (with the overrides) once per variant, each changing only rl:
the tokenizer, data, pretrain and midtrain stages run once and are cached for the others.

    sync      rl.max_staleness=0, float32 engine (the paper's synchronous loop)
    async     rl.max_staleness=1, float32 engine (correction auto: tis)
    bf16      rl.max_staleness=0, bfloat16 engine, correction none
    bf16-tis  rl.max_staleness=0, bfloat16 engine, correction tis
    bf16-tis-async  rl.max_staleness=1, bfloat16 engine, correction tis (all three at once)

Per variant: RL steps per second (the logged steps' wall time, the RL curve off), the mean
`mismatch_kl` and `is_capped_fraction`, the steps at each `staleness_max`, and the eval
stage's paired RL gain of the first suite's avg@n with its standard error; steps/s also as a
ratio to sync. The variants run one after another, so load from other processes falls on them
unevenly: use an idle machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from collections import Counter
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rsrl.eval.results import avg_gain  # noqa: E402
from rsrl.pipeline.apply import apply_plan  # noqa: E402
from rsrl.pipeline.plan import compile_plan  # noqa: E402
from rsrl.pipeline.session import connect  # noqa: E402
from rsrl.spec import load_spec  # noqa: E402
from rsrl.train.metrics import read_metrics  # noqa: E402

VARIANTS = {
    "sync": ["rl.max_staleness=0"],
    "async": ["rl.max_staleness=1"],
    "bf16": ["rl.rollout.dtype=bfloat16", "rl.off_policy.correction=none"],
    "bf16-tis": ["rl.rollout.dtype=bfloat16", "rl.off_policy.correction=tis"],
    "bf16-tis-async": [
        "rl.rollout.dtype=bfloat16",
        "rl.off_policy.correction=tis",
        "rl.max_staleness=1",
    ],
}


def run_variant(name: str, overrides: list[str]) -> dict:
    """Apply the spec for variant `name`; its RL speed, mismatch, staleness and gain."""
    spec = load_spec(REPO / "specs" / "quickstart.yaml", [*overrides, *VARIANTS[name]])
    plan = compile_plan(spec)
    dirs = {o.stage: o.out_dir for o in apply_plan(plan)}
    records = read_metrics(dirs["rl"])
    seconds = records[-1]["time"] - records[0]["time"]
    row = {
        "steps_per_s": (len(records) - 1) / seconds if seconds > 0 else float("nan"),
        "mismatch_kl": statistics.mean(r.get("mismatch_kl", float("nan")) for r in records),
        "is_capped_fraction": statistics.mean(r.get("is_capped_fraction", 0.0) for r in records),
        "staleness": Counter(int(r.get("staleness_max", 0)) for r in records),
    }
    if spec.eval and (gain := avg_gain(dirs["eval"], spec.eval.suites[0])):
        row["gain"], row["gain_se"] = gain
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", help="spec overrides, e.g. rl.steps=4")
    parser.add_argument("--workdir", default="runs/rl-async")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    args = parser.parse_args()
    # The RL curve off: its evals would count in the steps' wall time.
    overrides = [f"workdir={args.workdir}", "rl.eval_every=0", *args.overrides]
    connect()
    rows = {name: run_variant(name, overrides) for name in args.variants}
    base = rows.get("sync", {}).get("steps_per_s")
    print(
        "| variant | RL steps/s | vs sync | mismatch_kl | is_capped_fraction "
        "| steps at staleness_max 0/1/.. | RL gain (avg@n) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, row in rows.items():
        ratio = f"{row['steps_per_s'] / base:.2f}x" if base else "-"
        gain = f"{row['gain']:+.3f} ± {row['gain_se']:.3f}" if "gain" in row else "-"
        staleness = row["staleness"]
        per_age = "/".join(str(staleness[age]) for age in range(max(staleness) + 1))
        print(
            f"| {name} | {row['steps_per_s']:.3f} | {ratio} | {row['mismatch_kl']:.2e} | "
            f"{row['is_capped_fraction']:.4f} | {per_age} | {gain} |"
        )


if __name__ == "__main__":
    main()
