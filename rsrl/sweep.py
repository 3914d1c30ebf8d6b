"""Sweeps: Ray Tune over any dotted spec path; every trial is a pipeline apply.

All trials share the spec's workdir, so the stage cache is shared: trials that differ only
in `rl.*` reuse one pre-training (the per-stage locks make a second trial wait for the first
rather than run it again). Tune's own state lives in `<workdir>/sweeps/<name>`, so an
interrupted sweep resumes where it stopped, and re-running a finished one does nothing.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from rsrl.pipeline.apply import StageOutcome
from rsrl.pipeline.plan import MODEL_STAGES
from rsrl.spec import SpecError, load_spec
from rsrl.spec.schema import SearchDimSpec, Spec, SweepSpec


@dataclass(frozen=True)
class SweepResult:
    rows: list[dict]  # one per trial: the swept values, then every metric
    best: dict | None  # the best row by sweep.metric / sweep.mode
    report: Path | None  # all trials on the same axes


def require_sweep(spec: Spec) -> SweepSpec:
    if spec.sweep is None or not spec.sweep.space:
        raise SpecError("sweep: this spec has no sweep.space to search; add one "
                        "(see docs/spec.md)")
    return spec.sweep


def search_space(sweep: SweepSpec) -> dict[str, Any]:
    from ray import tune

    def dim(d: SearchDimSpec):
        if d.grid is not None:
            return tune.grid_search(list(d.grid))
        if d.choice is not None:
            return tune.choice(list(d.choice))
        if d.uniform is not None:
            return tune.uniform(*d.uniform)
        return tune.loguniform(*d.loguniform)

    return {path: dim(d) for path, d in sweep.space.items()}


def trial_overrides(config: dict[str, Any]) -> list[str]:
    """Tune's sampled values as dotted overrides (JSON is valid YAML for any value)."""
    return [f"{path}={json.dumps(value)}" for path, value in sorted(config.items())]


def trial_metrics(outcomes: Sequence[StageOutcome]) -> dict[str, float]:
    """`eval.<suite>.<metric>` from the eval stage, `<stage>.<metric>` from the model stages
    (their last logged step): the names `sweep.metric` picks from."""
    metrics: dict[str, float] = {}
    for o in outcomes:
        if o.stage == "eval":
            metrics.update({k: v for k, v in o.result.items() if k.startswith("eval.")})
        elif o.stage in MODEL_STAGES:
            metrics.update({f"{o.stage}.{k}": float(v) for k, v in o.result.items()
                            if isinstance(v, (int, float)) and not isinstance(v, bool)})
    return metrics


def run_trial(config: dict, spec_path: str, overrides: list[str], cwd: str) -> None:
    """One Tune trial: apply the spec with this trial's values, report its metrics."""
    from ray import tune

    from rsrl.pipeline.apply import apply_plan
    from rsrl.pipeline.plan import compile_plan

    os.chdir(cwd)  # Tune starts trials in their own directories; paths mean the user's cwd
    spec = load_spec(spec_path, [*overrides, *trial_overrides(config)])
    outcomes = apply_plan(compile_plan(spec), shared_workdir=True)
    metrics = trial_metrics(outcomes)
    metrics["stage_dirs"] = json.dumps({o.stage: str(o.out_dir) for o in outcomes})
    tune.report(metrics)


def run_sweep(spec_path: str, overrides: Sequence[str] = ()) -> SweepResult:
    import ray
    from ray import tune

    spec = load_spec(spec_path, overrides)
    sweep = require_sweep(spec)
    storage = Path(spec.workdir).resolve() / "sweeps"
    trainable = tune.with_resources(
        tune.with_parameters(run_trial, spec_path=str(Path(spec_path).resolve()),
                             overrides=list(overrides), cwd=os.getcwd()),
        # A trial only drives: its stages reserve the workers they need. Tune refuses an
        # empty request, so it asks for a token of memory (a CPU share, however small,
        # would keep a stage that needs every CPU from ever starting).
        {"cpu": 0, "memory": 2**20})
    path = storage / spec.name
    if tune.Tuner.can_restore(str(path)):
        tuner = tune.Tuner.restore(str(path), trainable, resume_errored=True)
    else:
        tuner = tune.Tuner(
            trainable, param_space=search_space(sweep),
            tune_config=tune.TuneConfig(
                metric=sweep.metric, mode=sweep.mode, num_samples=sweep.num_samples,
                max_concurrent_trials=concurrent_trials(spec, ray.cluster_resources())),
            run_config=tune.RunConfig(name=spec.name, storage_path=str(storage)))
    grid = tuner.fit()
    rows = [_row(r, sweep) for r in grid if "stage_dirs" in (r.metrics or {})]
    best = max(rows, key=lambda r: _score(r, sweep), default=None)
    return SweepResult(rows=rows, best=best, report=_combined_report(spec, grid, storage))


def concurrent_trials(spec: Spec, cluster: dict[str, float]) -> int:
    """`sweep.max_concurrent`, but no more trials than the cluster fits at their peak stage."""
    from rsrl.pipeline.plan import compile_plan

    need = max(sum(b.get("CPU", 0) for b in s.resources.bundles)
               for s in compile_plan(spec).stages)
    fits = int(cluster.get("CPU", 1) // need) if need else spec.sweep.max_concurrent
    return max(1, min(spec.sweep.max_concurrent, fits))


def _row(result, sweep: SweepSpec) -> dict:
    values = {path: result.config.get(path) for path in sweep.space}
    metrics = {k: v for k, v in result.metrics.items() if k.startswith(("eval.", *MODEL_STAGES))}
    return {**values, **metrics, "stage_dirs": json.loads(result.metrics["stage_dirs"])}


def _score(row: dict, sweep: SweepSpec) -> float:
    value = row.get(sweep.metric, float("nan"))
    if value != value:  # nan: this trial never reported the metric
        return float("-inf")
    return value if sweep.mode == "max" else -value


def _combined_report(spec: Spec, grid, storage: Path) -> Path | None:
    from rsrl.report.runs import load_run
    from rsrl.report.write import write_report

    runs = []
    for result in grid:
        if "stage_dirs" not in (result.metrics or {}):  # a trial that failed
            continue
        label = ", ".join(f"{p}={result.config.get(p)}" for p in spec.sweep.space)
        dirs = {k: Path(v) for k, v in json.loads(result.metrics["stage_dirs"]).items()}
        runs.append(load_run(label, Path(spec.workdir), dirs))
    if not runs:
        return None
    return write_report(runs, storage / spec.name / "report", title=f"rsrl sweep: {spec.name}")


def format_results(result: SweepResult, sweep: SweepSpec) -> str:
    """The results table: one row per trial, the swept values, the metric; then the best."""
    columns = [*sweep.space, sweep.metric]
    lines = ["  ".join(columns)]
    for row in sorted(result.rows, key=lambda r: -_score(r, sweep)):
        lines.append("  ".join(_fmt(row.get(c)) for c in columns))
    if result.best:
        best = ", ".join(f"{p}={result.best[p]}" for p in sweep.space)
        lines.append(f"best ({sweep.mode} {sweep.metric}): {best}")
    if result.report:
        lines.append(f"report: {result.report}")
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
