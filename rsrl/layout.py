"""A run's directory layout: the names that stages write and that readers look for.

    <workdir>/
        spec.yaml                 the resolved spec of the last apply
        apply.log                 what Ray prints while it starts (pipeline/worker_logs.py)
        <stage>-<key>/            one directory per stage (`stage_dir`)
            logs/                 what its processes printed: stage.log, <actor>-<pid>.log
            manifest.json         written last, once the stage has finished (pipeline/cache.py)
            steps.jsonl           one line per logged step of training and RL (train/metrics.py)
            timings.json          where a stage's time outside its steps went
            metrics.json          the eval stage's results (eval/results.py)
            eval_curve.jsonl      the rl stage's RL curve: one row per suite and step
            hf/                   a model stage's Hugging Face export: what later stages load
            checkpoints/          DeepSpeed state for an exact resume (train/checkpoint.py)
            tensorboard/

A leaf module: the stages, the pipeline and the report all import it, and it imports nothing
of rsrl, so no reader has to reach into the package that writes a file to learn its name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, get_args

# The stages that produce a model, in pipeline order (their checkpoints are what eval scores).
ModelStage = Literal["pretrain", "midtrain", "rl"]
MODEL_STAGES: tuple[str, ...] = get_args(ModelStage)
TRAINING_STAGES = MODEL_STAGES[:2]

MANIFEST = "manifest.json"
STEP_METRICS = "steps.jsonl"
TIMINGS = "timings.json"
EVAL_METRICS = "metrics.json"
RL_CURVE_ROWS = "eval_curve.jsonl"
HF_EXPORT = "hf"
CHECKPOINTS = "checkpoints"
TENSORBOARD = "tensorboard"
LOGS = "logs"
APPLY_LOG = "apply.log"


def stage_dir(workdir: Path, name: str, key: str) -> Path:
    """Where stage `name` with content key `key` keeps its outputs."""
    return Path(workdir) / f"{name}-{key}"
