"""spec -> plan -> Ray DAG of stages, with a content-addressed stage cache."""

from rsrl.pipeline.apply import apply_plan
from rsrl.pipeline.plan import Plan, Stage, compile_plan

__all__ = ["Plan", "Stage", "apply_plan", "compile_plan"]
