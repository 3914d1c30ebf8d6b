"""The eval stage's `metrics.json`: its layout, and the flat view that sweeps and the report read.

Layout (every number a float unless said otherwise):

    {
      "model": "rl",                  # the last checkpoint: what "suites" sampled
      "suites": {
        "arith": {
          "problems": 250, "n_samples": 16, "k": [1, 4, 16],      # ints
          "avg@16": ..., "cons@16": ..., "mean_score": ...,
          "pass@1": ..., "pass@4": ..., "pass@16": ...,           # each k of the suite
          "avg@16_se": ..., "pass@4_se": ..., ...                 # standard error over problems
          "pass@4_ci": [low, high],                               # 95% bootstrap interval
          "curve": [pass@1, pass@2, ..., pass@16],                # k = 1..n_samples
          "curve_se": [...],                                      # its standard errors
          "problems_file": "suites/rl/arith.parquet"              # per-problem results
        }
      },
      "pre_rl": {                     # only with an RL stage: the model RL started from,
        "model": "midtrain",          # on the same problems with the same seeds
        "suites": {"arith": {...as above...}}
      },
      "rl_gain": {                    # post - pre, paired by problem
        "arith": {"avg@16": {"mean": ..., "se": ..., "z": ...}, "pass@4": {...}, ...}
      },
      "rl_curve": {                   # the rl stage's eval every rl.eval_every steps
        "arith": [{"step": 0, "problems": 32, "avg@16": ..., "avg@16_se": ..., ...}, ...]
      },
      "heldout": {                    # one entry per checkpoint, in pipeline order
        "pretrain": {"nll", "perplexity", "entropy", "local_entropy", "topk_mass",
                     "tail_mass", "p_target", "tokens", "k", "seq_len"},
        "midtrain": {...}, "rl": {...}
      },
      "harness": {                    # only with eval.harness: lm-eval's numbers, by
        "pretrain": {                 # checkpoint and task, its metric names without the
          "arc_easy": {"acc": ..., "acc_stderr": ..., "acc_norm": ..., "acc_norm_stderr": ...,
                       "samples": 2376, "num_fewshot": 0}     # ",none" filter suffix
        },
        "midtrain": {...}, "rl": {...}
      },
      "harness_errors": {"rl": {"arc_easy": "why it failed"}}  # only when a task failed
    }

`flat_metrics` turns it into {"eval.arith.pass@4": ..., "eval.pre_rl.arith.pass@4": ...,
"eval.rl_gain.arith.pass@4": ..., "eval.rl_gain.arith.pass@4_se": ...,
"eval.heldout.pretrain.entropy": ..., "eval.harness.pretrain.arc_easy.acc": ...}: every
number, lists and strings left out. A suite may therefore not take a name of RESERVED_NAMES.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rsrl.layout import EVAL_METRICS

if TYPE_CHECKING:  # eval.config imports this module's RESERVED_NAMES
    from rsrl.eval.config import SuiteSpec

HELDOUT = "heldout"
PRE_RL = "pre_rl"
RL_GAIN = "rl_gain"
RL_CURVE = "rl_curve"
HARNESS = "harness"
HARNESS_ERRORS = "harness_errors"
HELDOUT_OVERLAP = "heldout_overlap"  # {data stage: what held-out text shares with its documents}
RESERVED_NAMES = (HELDOUT, PRE_RL, RL_GAIN, RL_CURVE, HARNESS, HELDOUT_OVERLAP)


def read_eval_metrics(stage_dir: Path) -> dict | None:
    """The eval stage's metrics.json, or None when it has not been written."""
    path = Path(stage_dir) / EVAL_METRICS
    return json.loads(path.read_text()) if path.is_file() else None


def avg_gain(stage_dir: Path, suite: SuiteSpec) -> tuple[float, float] | None:
    """(gain, standard error) of `suite`'s avg@n from an eval stage's metrics.json, None when
    RL's gain was not measured (no RL stage, or the stage has not written it)."""
    metrics = read_eval_metrics(stage_dir) or {}
    gain = metrics.get(RL_GAIN, {}).get(suite.name, {}).get(f"avg@{suite.n_samples}")
    return (float(gain["mean"]), float(gain["se"])) if gain else None


def flat_metrics(metrics_json: dict) -> dict[str, float]:
    """Every number of a metrics.json as "eval.<suite>.<metric>",
    "eval.heldout.<checkpoint>.<metric>", "eval.heldout_overlap.<data stage>.<metric>" and
    "eval.harness.<checkpoint>.<task>.<metric>"."""
    flat: dict[str, float] = {}
    for suite, values in metrics_json.get("suites", {}).items():
        flat.update(_numbers(f"eval.{suite}", values))
    for suite, values in metrics_json.get(PRE_RL, {}).get("suites", {}).items():
        flat.update(_numbers(f"eval.{PRE_RL}.{suite}", values))
    for suite, gains in metrics_json.get(RL_GAIN, {}).items():
        for name, gain in gains.items():
            flat[f"eval.{RL_GAIN}.{suite}.{name}"] = float(gain["mean"])
            flat[f"eval.{RL_GAIN}.{suite}.{name}_se"] = float(gain["se"])
    for checkpoint, values in metrics_json.get(HELDOUT, {}).items():
        flat.update(_numbers(f"eval.{HELDOUT}.{checkpoint}", values))
    for data_stage, values in metrics_json.get(HELDOUT_OVERLAP, {}).items():
        flat.update(_numbers(f"eval.{HELDOUT_OVERLAP}.{data_stage}", values))
    for checkpoint, tasks in metrics_json.get(HARNESS, {}).items():
        for task, values in tasks.items():
            flat.update(_numbers(f"eval.{HARNESS}.{checkpoint}.{task}", values))
    return flat


def _numbers(prefix: str, values: dict[str, Any]) -> dict[str, float]:
    return {
        f"{prefix}.{name}": float(v)
        for name, v in values.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    }
