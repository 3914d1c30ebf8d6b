"""What a report shows of one run: its logged metrics, its eval results, and what is missing.

A run is known either by its stage directories (the report stage gets them from the
pipeline) or by its workdir (`rsrl report WORKDIR`, see `workdir.py`). Whatever is missing
or unfinished becomes a note that the report prints; the rest is shown as it is.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rsrl.eval.results import read_eval_metrics
from rsrl.layout import MANIFEST, MODEL_STAGES
from rsrl.train.metrics import read_metrics

SHOWN_STAGES = (*MODEL_STAGES, "eval")  # the stages whose outputs a report draws
MOE_LAYER_KEY = re.compile(r"^moe/maxvio/l(\d+)$")  # one per MoE layer (rsrl.models.moe)


@dataclass
class Run:
    label: str
    where: Path
    curves: dict[str, list[dict]] = field(default_factory=dict)  # model stage -> steps.jsonl
    eval: dict | None = None  # the eval stage's metrics.json
    notes: list[str] = field(default_factory=list)  # what is missing or unfinished

    @property
    def empty(self) -> bool:
        return not any(self.curves.values()) and self.eval is None


def load_run(label: str, where: Path, stage_dirs: Mapping[str, Path]) -> Run:
    """The run whose stages (by name: pretrain, midtrain, rl, eval) live in `stage_dirs`;
    stages the run has no directory for are absent from the mapping."""
    run = Run(label=label, where=where)
    for stage in SHOWN_STAGES:
        if stage in stage_dirs:
            _load_stage(run, stage, Path(stage_dirs[stage]))
    return run


def _load_stage(run: Run, stage: str, stage_dir: Path) -> None:
    if not stage_dir.is_dir():
        run.notes.append(f"{stage}: not run yet ({stage_dir.name} does not exist)")
        return
    finished = (stage_dir / MANIFEST).is_file()
    if stage == "eval":
        run.eval = read_eval_metrics(stage_dir)
        if run.eval is None:
            state = "finished without" if finished else "unfinished, no"
            run.notes.append(f"eval: {state} metrics.json in {stage_dir.name}")
        return
    run.curves[stage] = read_metrics(stage_dir)
    logged = len(run.curves[stage])
    if not finished:
        shown = f"showing the {logged} steps logged so far" if logged else "nothing logged yet"
        run.notes.append(f"{stage}: unfinished (no {MANIFEST} in {stage_dir.name}); {shown}")
    elif not logged:
        run.notes.append(f"{stage}: finished but its steps.jsonl is missing or empty")


def moe_key(stat: str, layer: int) -> str:
    """A per-layer MoE metric's key in steps.jsonl: `moe/maxvio/l0`."""
    return f"moe/{stat}/l{layer}"


def last_moe_record(records: Sequence[dict]) -> dict | None:
    """The last step that logged expert loads; None for a dense model."""
    return next((r for r in reversed(records) if "moe/maxvio" in r), None)


def moe_layers(record: Mapping[str, object]) -> list[int]:
    """The MoE layers whose expert loads `record` (one logged step) holds; [] if dense."""
    return sorted(int(m[1]) for key in record if (m := MOE_LAYER_KEY.match(key)))
