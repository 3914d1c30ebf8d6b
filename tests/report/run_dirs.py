"""Run directories in the real layout, for report tests: the workdir's spec.yaml, stage
directories named by the compiled plan, steps.jsonl with the keys the stages log,
manifests, and an eval metrics.json summarised by the eval code. Only the numbers
are made up (smooth curves), so the tests need no training."""

from __future__ import annotations

import json
import math
from pathlib import Path

from rsrl.eval.suite import summarise_suite
from rsrl.eval.uncertainty import paired_difference
from rsrl.layout import EVAL_METRICS, STEP_METRICS
from rsrl.pipeline.cache import write_json_atomic, write_manifest
from rsrl.pipeline.plan import compile_plan
from rsrl.spec import load_spec
from rsrl.spec.load import spec_to_yaml

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = REPO / "specs" / "quickstart.yaml"


def make_run(
    workdir: Path,
    beta: float,
    *,
    finished: tuple[str, ...] = ("pretrain", "midtrain", "rl", "eval"),
    started: tuple[str, ...] = (),
) -> dict[str, Path]:
    """A quickstart run with objective.beta=`beta` in `workdir`. Stages in `finished` are
    complete; those in `started` have logged some steps but have no manifest."""
    spec = load_spec(QUICKSTART, [f"workdir={workdir}", f"objective.beta={beta}"])
    plan = compile_plan(spec)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "spec.yaml").write_text(spec_to_yaml(spec))
    dirs = {s.name: s.out_dir(workdir) for s in plan.stages}
    for name in (*finished, *started):
        stage_dir = dirs[name]
        stage_dir.mkdir(parents=True, exist_ok=True)
        steps = 60 if name in finished else 20
        if name in ("pretrain", "midtrain"):
            _write_metrics(stage_dir, [training_record(s, beta, name) for s in range(0, steps, 5)])
        elif name == "rl":
            _write_metrics(stage_dir, [rl_record(s, beta) for s in range(steps // 2)])
        elif name == "eval":
            write_json_atomic(stage_dir / EVAL_METRICS, eval_metrics(beta))
        if name in finished:
            write_manifest(plan.stage(name), stage_dir, {})
    return dirs


def _write_metrics(stage_dir: Path, records: list[dict]) -> None:
    """One JSON object a line, as the stages' MetricsWriter appends them."""
    total = {"total_steps": records[-1]["step"] if records else 0}
    lines = [json.dumps({**record, **total}) + "\n" for record in records]
    (stage_dir / STEP_METRICS).write_text("".join(lines))


def training_record(step: int, beta: float, stage: str) -> dict:
    start = 7.6 if stage == "pretrain" else 3.0
    nll = 2.0 + (start - 2.0) * math.exp(-step / 15)
    entropy = nll * (1 + 0.3 * beta)  # beta < 0 sharpens
    tail = 0.3 * math.exp(-step / 20) + 0.02 * (1 + beta)
    return {
        "step": step,
        "lr": 3e-4,
        "grad_norm": 1.0 / (1 + step),
        "nll": nll,
        "shaped_loss": nll * (1 + 0.1 * beta),
        "perplexity": math.exp(nll),
        "entropy": entropy,
        "local_entropy": 0.6 * entropy,
        "topk_mass": 1 - tail,
        "tail_mass": tail,
        "p_target": math.exp(-nll),
        "tokens_per_s": 5000.0,
    }


def rl_record(step: int, beta: float) -> dict:
    return {
        "step": step,
        "reward_mean": 0.2 + 0.5 * (1 - math.exp(-step / (8 + 4 * beta))),
        "entropy": 1.2 * math.exp(-step / 30),
        "response_length": 40 - step / 3,
        "clip_fraction": 0.02 + 0.01 * math.sin(step),
        "kl": 0.0,
    }


def eval_metrics(beta: float) -> dict:
    """A metrics.json as the eval stage lays it out, from per-problem counts."""
    spec = load_spec(QUICKSTART)
    suite = spec.eval.suites[0]
    n = suite.n_samples
    correct = [min(n, (i * (3 + int(4 * beta))) % (n + 1)) for i in range(20)]
    problems = [
        {"n": n, "correct": c, "avg": c / n, "cons": float(c > n // 2), "mean_score": c / n}
        for c in correct
    ]
    heldout = {
        stage: {
            "nll": 2.5 - i * 0.2,
            "perplexity": math.exp(2.5 - i * 0.2),
            "entropy": 2.4 - i * (0.3 - beta),
            "local_entropy": 1.5 - i * 0.1,
            "topk_mass": 0.95,
            "tail_mass": 0.05 - i * 0.01,
            "p_target": 0.3,
            "tokens": 32768,
            "k": 100,
            "seq_len": 256,
        }
        for i, stage in enumerate(("pretrain", "midtrain", "rl"))
    }
    before = [{**p, "correct": p["correct"] // 2, "avg": p["correct"] // 2 / n} for p in problems]
    curve = [
        {
            "step": step,
            "problems": 20,
            **{
                k: v
                for k, v in summarise_suite(suite, before if step == 0 else problems, "").items()
                if isinstance(v, float)
            },
        }
        for step in (0, 5, 10)
    ]
    return {
        "model": "rl",
        "suites": {suite.name: summarise_suite(suite, problems, f"suites/rl/{suite.name}.parquet")},
        "pre_rl": {
            "model": "midtrain",
            "suites": {
                suite.name: summarise_suite(suite, before, f"suites/midtrain/{suite.name}.parquet")
            },
        },
        "rl_gain": {
            suite.name: {
                "avg@16": paired_difference(
                    [p["avg"] for p in before], [p["avg"] for p in problems]
                )
            }
        },
        "rl_curve": {suite.name: curve},
        "heldout": heldout,
    }
