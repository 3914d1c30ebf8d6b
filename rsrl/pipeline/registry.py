"""Which function runs each kind of stage.

A stage not built yet fails loudly, never fakes output.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rsrl.pipeline.plan import Stage
from rsrl.spec.schema import Spec


@dataclass(frozen=True)
class StageContext:
    """What a stage function gets: the spec, its own stage, its directory, its inputs' dirs,
    and the apply's rollout actor pool when RL and eval both run (rsrl.rl.rollout.pool)."""

    spec: Spec
    stage: Stage
    out_dir: Path
    inputs: Mapping[str, Path]
    rollout_pool: Any = None


StageFn = Callable[[StageContext], dict]


class StageNotImplemented(NotImplementedError):
    pass


# kind -> "module:function", imported only in the worker that runs the stage.
BUILTIN_STAGES: dict[str, str] = {
    "tokenizer": "rsrl.models.tokenizer:tokenizer_stage",
    "data": "rsrl.data.prepare:data_stage",
    "pretrain": "rsrl.train.stage:run_training_stage",
    "midtrain": "rsrl.train.stage:run_training_stage",
    "rl": "rsrl.rl.stage:run_rl_stage",
    "eval": "rsrl.eval.stage:run_eval_stage",
    "report": "rsrl.report.stage:run_report_stage",
}


def resolve_stage_fn(kind: str, overrides: Mapping[str, StageFn] | None = None) -> StageFn:
    if overrides and kind in overrides:
        return overrides[kind]
    if kind not in BUILTIN_STAGES:
        raise StageNotImplemented(
            f"stage '{kind}' is not implemented yet in this version of rsrl "
            f"(the stages finished before it are kept)"
        )
    module, _, attr = BUILTIN_STAGES[kind].partition(":")
    return getattr(importlib.import_module(module), attr)
