"""Find a run's stage directories in its workdir, for `rsrl report WORKDIR [WORKDIR ...]`.

A workdir holds `<stage>-<key>` directories, possibly several per stage after edits of
the spec, and the `spec.yaml` of the last `rsrl apply`. Compiling that spec gives the
exact keys of the run it describes. Without a readable spec.yaml, the newest directory
of each stage is taken instead, and the report says so.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import yaml

from rsrl.report.runs import SHOWN_STAGES, Run, load_run

SPEC_FILE = "spec.yaml"  # written by `rsrl apply` into the workdir
STAGE_DIR = re.compile(r"^(?P<stage>[a-z][a-z-]*)-(?P<key>[0-9a-f]{12})$")
UNLABELLED_KEYS = ("workdir", "sweep")  # spec keys that never tell runs apart
MAX_LABEL_KEYS = 3


def is_run_dir(path: Path) -> bool:
    return path.is_dir() and (
        (path / SPEC_FILE).is_file()
        or any(STAGE_DIR.match(child.name) for child in path.iterdir() if child.is_dir())
    )


def expand_workdirs(paths: Sequence[Path]) -> list[Path]:
    """Each path that is a run, or else the runs right inside it (say, runs/).
    A path that is neither is kept, so that the report can say what is wrong with it."""
    runs: list[Path] = []
    for path in paths:
        inside = sorted(c for c in path.iterdir() if is_run_dir(c)) if path.is_dir() else []
        runs.extend([path] if is_run_dir(path) or not inside else inside)
    return runs


def load_workdirs(paths: Sequence[Path]) -> list[Run]:
    workdirs = expand_workdirs(paths)
    labels = run_labels(workdirs, [_spec_dict(w) for w in workdirs])
    return [load_workdir(w, label) for w, label in zip(workdirs, labels)]


def load_workdir(workdir: Path, label: str) -> Run:
    if not workdir.is_dir():
        return Run(label=label, where=workdir, notes=["no such directory"])
    stage_dirs = _planned_stage_dirs(workdir)
    notes = []
    if stage_dirs is None:
        stage_dirs = _newest_stage_dirs(workdir)
        notes.append(f"no readable {SPEC_FILE}; showing the newest directory of each stage")
    run = load_run(label, workdir, stage_dirs)
    if not stage_dirs:
        notes.append(
            f"not an rsrl run directory (no {SPEC_FILE}, no stage directories); "
            f"give the workdir that `rsrl apply` wrote"
        )
    run.notes[:0] = notes
    return run


def _planned_stage_dirs(workdir: Path) -> dict[str, Path] | None:
    """The directories of the stages that workdir/spec.yaml plans, or None if unreadable."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from rsrl.errors import SpecError
    from rsrl.pipeline.plan import compile_plan
    from rsrl.spec.schema import Spec

    try:
        # Not `load_spec`: that also validates (data paths exist from here, plugins import),
        # which an existing run need not satisfy to be shown.
        cfg = OmegaConf.merge(OmegaConf.structured(Spec), OmegaConf.load(workdir / SPEC_FILE))
        plan = compile_plan(cast(Spec, OmegaConf.to_object(cfg)))
    except (OSError, yaml.YAMLError, OmegaConfBaseException, SpecError):
        return None
    return {s.name: s.out_dir(workdir) for s in plan.stages if s.name in SHOWN_STAGES}


def _newest_stage_dirs(workdir: Path) -> dict[str, Path]:
    newest: dict[str, Path] = {}
    for child in sorted(workdir.iterdir(), key=lambda c: c.stat().st_mtime):
        match = STAGE_DIR.match(child.name)
        if child.is_dir() and match and match["stage"] in SHOWN_STAGES:
            newest[match["stage"]] = child
    return newest


def _spec_dict(workdir: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load((workdir / SPEC_FILE).read_text())
    except (OSError, yaml.YAMLError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def run_labels(workdirs: Sequence[Path], specs: Sequence[dict]) -> list[str]:
    """A legend label per run: the spec values that differ between the runs (as
    `objective.beta=-0.25`), else the spec's name (one run) or the directory name (several);
    made unique with the path."""
    flats = [_flatten(spec) for spec in specs]
    keys = sorted({k for f in flats for k in f})
    differing = [
        k
        for k in keys
        if len({repr(f.get(k)) for f in flats}) > 1 and not k.startswith(UNLABELLED_KEYS)
    ][:MAX_LABEL_KEYS]
    labels = [
        ", ".join(f"{k}={f.get(k)}" for k in differing) or _plain_label(w, f, len(flats))
        for w, f in zip(workdirs, flats)
    ]
    return [
        label if labels.count(label) == 1 else f"{label} ({w})"
        for w, label in zip(workdirs, labels)
    ]


def _plain_label(workdir: Path, flat_spec: dict[str, Any], runs: int) -> str:
    """A lone run goes by its spec's name (as in the report stage), several by directory."""
    return str(flat_spec.get("name") or workdir.name) if runs == 1 else workdir.name


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(tree, dict):
        return {prefix: tree}
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        flat.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat
