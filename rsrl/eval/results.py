"""The eval stage's `metrics.json`: its layout, and the flat view that sweeps and the report read.

Layout (every number a float unless said otherwise):

    {
      "model": "rl",                  # the checkpoint the suites sampled (the last one)
      "suites": {
        "arith": {
          "problems": 250, "n_samples": 16, "k": [1, 4, 16],      # ints
          "avg@16": ..., "cons@16": ..., "mean_score": ...,
          "pass@1": ..., "pass@4": ..., "pass@16": ...,           # each k of the suite
          "curve": [pass@1, pass@2, ..., pass@16],                # k = 1..n_samples
          "problems_file": "suites/arith.parquet"                 # per-problem results
        }
      },
      "heldout": {                    # one entry per checkpoint, in pipeline order
        "pretrain": {"nll", "perplexity", "entropy", "local_entropy", "topk_mass",
                     "tail_mass", "p_target", "tokens", "k", "seq_len"},
        "midtrain": {...}, "rl": {...}
      }
    }

`flat_metrics` turns it into {"eval.arith.pass@4": ..., "eval.heldout.pretrain.entropy": ...}:
every number, lists and strings left out. A suite may therefore not be named "heldout".
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

METRICS_FILE = "metrics.json"
HELDOUT = "heldout"


def read_eval_metrics(stage_dir: Path) -> dict | None:
    """The eval stage's metrics.json, or None when it has not been written."""
    path = Path(stage_dir) / METRICS_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def flat_metrics(metrics_json: dict) -> dict[str, float]:
    """Every number of a metrics.json as "eval.<suite>.<metric>" and
    "eval.heldout.<checkpoint>.<metric>"."""
    flat: dict[str, float] = {}
    for suite, values in metrics_json.get("suites", {}).items():
        flat.update(_numbers(f"eval.{suite}", values))
    for checkpoint, values in metrics_json.get(HELDOUT, {}).items():
        flat.update(_numbers(f"eval.{HELDOUT}.{checkpoint}", values))
    return flat


def _numbers(prefix: str, values: dict[str, Any]) -> dict[str, float]:
    return {f"{prefix}.{name}": float(v) for name, v in values.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)}
