"""The spec: one experiment, assembled from the sections that each component owns.

Each section is a dataclass next to the code that uses it (`rsrl/<component>/config.py`),
with its allowed values, its checks and what stays out of the stage key; docs/spec.md
explains each key. The YAML is merged onto these dataclasses, so an unknown key or a value
of the wrong type is caught before anything runs; `validate.py` runs the sections' checks
and the rules that span sections.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import cast

from rsrl.eval.config import EvalSpec
from rsrl.models.config import ModelSpec, TokenizerSpec
from rsrl.objective.config import ObjectiveSpec
from rsrl.rl.config import RLSpec
from rsrl.sweep.config import SweepSpec
from rsrl.tracking.config import LoggingSpec
from rsrl.train.config import ResourcesSpec, TrainStageSpec


@dataclass
class StagesSpec:
    pretrain: TrainStageSpec | None = None
    midtrain: TrainStageSpec | None = None


@dataclass
class Spec:
    name: str = "rsrl"
    seed: int = 0
    workdir: str = "runs/${name}"
    model: ModelSpec = field(default_factory=ModelSpec)
    tokenizer: TokenizerSpec = field(default_factory=TokenizerSpec)
    objective: ObjectiveSpec = field(default_factory=ObjectiveSpec)
    stages: StagesSpec = field(default_factory=StagesSpec)
    rl: RLSpec | None = None
    eval: EvalSpec | None = None
    resources: ResourcesSpec = field(default_factory=ResourcesSpec)
    sweep: SweepSpec | None = None
    logging: LoggingSpec = field(default_factory=LoggingSpec)
    plugins: list[str] = field(default_factory=list)  # modules or .py files with verifiers


def rl_section(spec: Spec) -> RLSpec:
    """`spec.rl`, for code that runs only when the spec has it (the rl stage, its plan)."""
    assert spec.rl is not None, "the spec has no rl: section"
    return spec.rl


def eval_section(spec: Spec) -> EvalSpec:
    """`spec.eval`, for code that runs only when the spec has it (the eval stage, its plan)."""
    assert spec.eval is not None, "the spec has no eval: section"
    return spec.eval


def sweep_section(spec: Spec) -> SweepSpec:
    """`spec.sweep`, for code that runs only when the spec has it (rsrl sweep)."""
    assert spec.sweep is not None, "the spec has no sweep: section"
    return spec.sweep


def nested_dataclass(cls: type, name: str) -> type | None:
    """The dataclass behind field `name` of `cls` (through Optional, List, Dict), else None."""
    hints = typing.get_type_hints(cls) if dataclasses.is_dataclass(cls) else {}
    tp = hints.get(name)
    while tp is not None and typing.get_origin(tp) is not None:
        tp = [a for a in typing.get_args(tp) if a is not type(None)][-1]
    return cast("type", tp) if tp is not None and dataclasses.is_dataclass(tp) else None
