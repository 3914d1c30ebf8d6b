"""MoE balancing and routing replay side by side on the MoE quickstart's models.

    .venv/bin/python benchmarks/moe_routing.py [k=v ...] [--workdir DIR] [--variants ...]

Applies specs/quickstart-moe.yaml (with the overrides) once per variant; stages a variant
shares with an earlier one come from the cache (the bias variants share pre- and
mid-training, the aux-loss one trains its own).

    aux_loss          router_balance aux_loss (Qwen3-MoE's loss), float32 engine, no replay
    bias              router_balance bias (the paper's), float32 engine, no replay
    bias-replay       bias, float32 engine, routing replay
    bias-bf16         bias, bfloat16 engine, no replay
    bias-bf16-replay  bias, bfloat16 engine, routing replay

Per variant: pre-training's expert balance (MaxVio of the worst layer and the lowest
normalised load entropy, means of the last 3 logged steps), RL's agreement of the trainer's
experts with the engine's per response token and layer (the router's own choice, and the
experts the update used), the mean `mismatch_kl`, and the eval stage's paired RL gain of the
first suite's avg@n with its standard error.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
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

BIAS, F32, BF16 = (
    "model.router_balance=bias",
    "rl.rollout.dtype=float32",
    "rl.rollout.dtype=bfloat16",
)
VARIANTS = {
    "aux_loss": ["model.router_balance=aux_loss", F32, "rl.routing_replay=off"],
    "bias": [BIAS, F32, "rl.routing_replay=off"],
    "bias-replay": [BIAS, F32, "rl.routing_replay=on"],
    "bias-bf16": [BIAS, BF16, "rl.routing_replay=off"],
    "bias-bf16-replay": [BIAS, BF16, "rl.routing_replay=on"],
}


def mean_of(records: list[dict], key: str) -> float:
    values = [r[key] for r in records if key in r]
    return statistics.mean(values) if values else float("nan")


def run_variant(name: str, overrides: list[str]) -> dict:
    spec = load_spec(REPO / "specs" / "quickstart-moe.yaml", [*overrides, *VARIANTS[name]])
    dirs = {o.stage: o.out_dir for o in apply_plan(compile_plan(spec))}
    pretrain, rl = read_metrics(dirs["pretrain"])[-3:], read_metrics(dirs["rl"])
    row = {
        "maxvio": mean_of(pretrain, "moe/maxvio"),
        "load_entropy": mean_of(pretrain, "moe/load_entropy"),
        "own": mean_of(rl, "moe/own_routing_agreement"),
        "used": mean_of(rl, "moe/routing_agreement"),
        "mismatch_kl": mean_of(rl, "mismatch_kl"),
    }
    if spec.eval and (gain := avg_gain(dirs["eval"], spec.eval.suites[0])):
        row["gain"], row["gain_se"] = gain
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", help="spec overrides, e.g. rl.steps=4")
    parser.add_argument("--workdir", default="runs/moe-routing")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    args = parser.parse_args()
    connect()
    overrides = [f"workdir={args.workdir}", *args.overrides]
    rows = {name: run_variant(name, overrides) for name in args.variants}
    print(
        "| variant | pretrain MaxVio (worst layer) | pretrain load entropy (lowest) "
        "| RL own routing agreement | RL routing agreement used | mismatch_kl | RL gain (avg@n) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, r in rows.items():
        gain = f"{r['gain']:+.3f} ± {r['gain_se']:.3f}" if "gain" in r else "-"
        print(
            f"| {name} | {r['maxvio']:.3f} | {r['load_entropy']:.3f} | {r['own']:.4f} "
            f"| {r['used']:.4f} | {r['mismatch_kl']:.2e} | {gain} |"
        )


if __name__ == "__main__":
    main()
