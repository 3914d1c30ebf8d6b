"""Check a typed spec: every section's own checks, then the rules that span sections.

All problems are collected, then raised at once, so one run of `rsrl validate` shows every
mistake.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from rsrl.config import Problems
from rsrl.errors import SpecError, did_you_mean
from rsrl.layout import TRAINING_STAGES
from rsrl.spec.schema import Spec, nested_dataclass
from rsrl.verifiers.config import check_plugins


def validate(spec: Spec) -> None:
    """Raise SpecError listing every problem in `spec`; return quietly when it is sound."""
    p = Problems()
    p.need(
        bool(spec.name) and "/" not in spec.name,
        "name",
        spec.name,
        "must be a non-empty name without '/'",
    )
    p.lines += spec.model.check()
    p.lines += spec.tokenizer.check(spec.model.resolved_vocab_size())
    p.lines += spec.objective.check()
    for name in TRAINING_STAGES:
        stage = getattr(spec.stages, name)
        if stage is not None:
            workers = spec.resources.num_workers
            p.lines += stage.check(f"stages.{name}", spec.objective, workers)
    trained = any(getattr(spec.stages, name) is not None for name in TRAINING_STAGES)
    if not trained and (spec.rl or spec.eval):
        p.add("stages", "rl and eval need a trained model: add stages.pretrain")
    if spec.rl is not None:
        p.lines += spec.rl.check(spec.plugins, moe=spec.model.resolved_arch() == "moe")
        if spec.rl.eval_every > 0 and not (spec.eval and spec.eval.suites):
            p.add(
                "rl.eval_every",
                f"evaluates the eval suites during RL, but eval.suites is "
                f"empty, got {spec.rl.eval_every}; add a suite or set rl.eval_every: 0",
            )
    if spec.eval is not None:
        p.lines += spec.eval.check(spec.plugins, _produced(spec))
    p.lines += spec.resources.check()
    if spec.sweep is not None:
        p.lines += spec.sweep.check()
        for key in spec.sweep.space:
            if problem := spec_path_problem(key):
                p.add(f"sweep.space.{key}", problem)
    p.lines += spec.logging.check()
    p.lines += check_plugins(spec.plugins)
    if p.lines:
        raise SpecError(p.lines)


def _produced(spec: Spec) -> list[str]:
    """The model stages `spec` runs, in pipeline order (the checkpoints eval can score)."""
    trained = [name for name in TRAINING_STAGES if getattr(spec.stages, name) is not None]
    return trained + (["rl"] if spec.rl is not None else [])


def spec_path_problem(dotted: str) -> str | None:
    """None when `dotted` names a field of the schema (list items as name.0), else a message."""
    cls: Any = Spec
    for part in dotted.split("."):
        if part.isdigit():
            continue
        if cls is None:
            return f"'{dotted}' is not a spec path: '{part}' is below a plain value"
        if cls is dict:
            return None  # free-form options, e.g. rl.verifier.options.*
        fields = [f.name for f in dataclasses.fields(cls)]
        if part not in fields:
            return (
                f"'{dotted}' is not a spec path: unknown key '{part}'{did_you_mean(part, fields)}"
            )
        hint = typing.get_type_hints(cls)[part]
        cls = nested_dataclass(cls, part) or (dict if "dict[" in str(hint) else None)
    return None
