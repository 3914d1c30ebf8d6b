"""Sweeps: Ray Tune over any dotted spec path; every trial is a pipeline apply.

All trials share the spec's workdir, so the stage cache is shared: trials that differ only
in `rl.*` reuse one pre-training (the per-stage locks make a second trial wait for the first
rather than run it again). Tune's own state lives in `<workdir>/sweeps/<name>`, so an
interrupted sweep resumes where it stopped, and re-running a finished one does nothing.
With `sweep.seeds`, every point runs with several seeds; the results table and
`<workdir>/sweeps/<name>/results.json` give each arm's mean ± se over seeds and its
difference from the baseline arm, paired by seed.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rsrl.eval.uncertainty import t_interval
from rsrl.files import write_json_atomic
from rsrl.pipeline.apply import StageOutcome
from rsrl.pipeline.plan import MODEL_STAGES
from rsrl.spec import SpecError, load_spec
from rsrl.spec.schema import SearchDimSpec, Spec, SweepSpec, sweep_section
from rsrl.tracking.session import checked_trackers

SEED = "seed"  # the spec path that sweep.seeds adds to the search space
RESULTS_FILE = "results.json"  # trials and arms, beside Tune's state


@dataclass(frozen=True)
class SweepResult:
    rows: list[dict]  # one per trial: the swept values (and seed), then every metric
    arms: list[dict]  # one per point of the space: metrics as mean / se over its seeds
    best: dict | None  # the best arm by sweep.metric / sweep.mode
    report: Path | None  # all trials on the same axes


def require_sweep(spec: Spec) -> SweepSpec:
    if spec.sweep is None or not spec.sweep.space:
        raise SpecError("sweep: this spec has no sweep.space to search; add one (see docs/spec.md)")
    return spec.sweep


def search_space(sweep: SweepSpec, seed: int = 0) -> dict[str, Any]:
    """Tune's param space: each swept path, and the seeds when `sweep.seeds` > 1."""
    space = {path: _dim(d) for path, d in sweep.space.items()}
    if sweep.seeds > 1:
        from ray import tune

        space[SEED] = tune.grid_search(list(range(seed, seed + sweep.seeds)))
    return space


def _dim(d: SearchDimSpec):
    from ray import tune

    if d.grid is not None:
        return tune.grid_search(list(d.grid))
    if d.choice is not None:
        return tune.choice(list(d.choice))
    if d.uniform is not None:
        return tune.uniform(*d.uniform)
    assert d.loguniform is not None  # the validator requires exactly one kind
    return tune.loguniform(*d.loguniform)


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
            metrics.update(
                {
                    f"{o.stage}.{k}": float(v)
                    for k, v in o.result.items()
                    if isinstance(v, (int, float)) and not isinstance(v, bool)
                }
            )
    return metrics


def run_trial(config: dict, spec_path: str, overrides: list[str], cwd: str) -> None:
    """One Tune trial: apply the spec with this trial's values (its trackers' runs tagged
    with them), report its metrics."""
    from ray import tune

    from rsrl.pipeline.apply import apply_plan
    from rsrl.pipeline.plan import compile_plan

    os.chdir(cwd)  # Tune starts trials in their own directories; paths mean the user's cwd
    spec = load_spec(spec_path, [*overrides, *trial_overrides(config)])
    tags = {path: json.dumps(value) for path, value in sorted(config.items())}
    outcomes = apply_plan(compile_plan(spec), shared_workdir=True, tags=tags)
    metrics: dict[str, Any] = trial_metrics(outcomes)
    metrics["stage_dirs"] = json.dumps({o.stage: str(o.out_dir) for o in outcomes})
    tune.report(metrics)


def run_sweep(spec_path: str, overrides: Sequence[str] = ()) -> SweepResult:
    import ray
    from ray import tune

    spec = load_spec(spec_path, overrides)
    sweep = require_sweep(spec)
    storage = Path(spec.workdir).resolve() / "sweeps"
    checked_trackers(spec, storage.parent)  # an unreachable tracker: before the first trial
    trainable = tune.with_resources(
        tune.with_parameters(
            run_trial,
            spec_path=str(Path(spec_path).resolve()),
            overrides=list(overrides),
            cwd=os.getcwd(),
        ),
        # A trial only drives: its stages reserve the workers they need. Tune refuses an
        # empty request, so it asks for a token of memory (a CPU share, however small,
        # would keep a stage that needs every CPU from ever starting).
        {"cpu": 0, "memory": 2**20},
    )
    path = storage / spec.name
    if tune.Tuner.can_restore(str(path)):
        tuner = tune.Tuner.restore(str(path), trainable, resume_errored=True)
    else:
        tuner = tune.Tuner(
            trainable,
            param_space=search_space(sweep, spec.seed),
            tune_config=tune.TuneConfig(
                metric=sweep.metric,
                mode=sweep.mode,
                num_samples=sweep.num_samples,
                max_concurrent_trials=concurrent_trials(spec, ray.cluster_resources()),
            ),
            run_config=tune.RunConfig(name=spec.name, storage_path=str(storage)),
        )
    grid = tuner.fit()
    # ray's stubs: ResultGrid iterates by __getitem__/__len__, not __iter__
    rows = [_row(r, sweep) for r in grid if "stage_dirs" in (r.metrics or {})]  # type: ignore[attr-defined]
    arms = compare_to_baseline(aggregate_seeds(rows, sweep), rows, sweep)
    write_json_atomic(path / RESULTS_FILE, {"trials": rows, "arms": arms})
    best = max(arms, key=lambda r: _score(r, sweep), default=None)
    return SweepResult(
        rows=rows, arms=arms, best=best, report=_combined_report(spec, grid, storage)
    )


def aggregate_seeds(rows: Sequence[dict], sweep: SweepSpec) -> list[dict]:
    """One arm per point of the space: its swept values, `seeds` (how many trials), and each
    metric's mean over seeds with `<metric>_se` (standard error over seeds; nan for one).

    A trial's own `<metric>_se` (its error over problems) is dropped where `<metric>` is there
    too: across seeds the seed-to-seed spread is the error, and the names would collide."""
    arms: dict[tuple, list[dict]] = {}
    for row in rows:
        arms.setdefault(_arm_key(row, sweep), []).append(row)
    out = []
    for trials in arms.values():
        arm: dict[str, Any] = {**{p: trials[0].get(p) for p in sweep.space}, "seeds": len(trials)}
        names = dict.fromkeys(
            k
            for t in trials
            for k, v in t.items()
            if k not in sweep.space
            and k not in (SEED, "stage_dirs")
            and isinstance(v, (int, float))
        )
        for name in [n for n in names if not (n.endswith("_se") and n[: -len("_se")] in names)]:
            summary = t_interval([t[name] for t in trials if name in t])
            arm[name], arm[f"{name}_se"] = summary["mean"], summary["se"]
        out.append(arm)
    return out


def compare_to_baseline(arms: list[dict], rows: Sequence[dict], sweep: SweepSpec) -> list[dict]:
    """Each arm with `vs_baseline`: its `sweep.metric` minus the baseline arm's, paired by
    seed, as {"mean", "se", "low", "high", "reading"} over the seeds both ran."""
    if not sweep.baseline:
        return arms
    base_key = _arm_key(sweep.baseline, sweep)
    by_seed = {(_arm_key(r, sweep), r.get(SEED)): r.get(sweep.metric) for r in rows}
    for arm in arms:
        key = _arm_key(arm, sweep)
        diffs = [
            value - by_seed[(base_key, seed)]
            for (k, seed), value in by_seed.items()
            if k == key
            and (base_key, seed) in by_seed
            and value is not None
            and by_seed[(base_key, seed)] is not None
        ]
        if key == base_key or not diffs:
            arm["vs_baseline"] = {"reading": "baseline" if key == base_key else "no paired seeds"}
            continue
        diff = t_interval(diffs)
        if math.isnan(diff["low"]):
            reading = "one seed: no interval"
        elif diff["low"] <= 0 <= diff["high"]:
            reading = "no detectable difference"
        else:
            reading = "higher" if diff["mean"] > 0 else "lower"
        arm["vs_baseline"] = {**diff, "reading": reading}
    return arms


def _arm_key(row: dict, sweep: SweepSpec) -> tuple[str, ...]:
    """The arm a row belongs to, hashable even when a swept value is a mapping."""
    return tuple(json.dumps(row.get(path), sort_keys=True) for path in sweep.space)


def concurrent_trials(spec: Spec, cluster: dict[str, float]) -> int:
    """`sweep.max_concurrent`, but no more trials than the cluster fits at their peak stage."""
    from rsrl.pipeline.plan import compile_plan

    need = max(sum(b.get("CPU", 0) for b in s.resources.bundles) for s in compile_plan(spec).stages)
    max_concurrent = sweep_section(spec).max_concurrent
    fits = int(cluster.get("CPU", 1) // need) if need else max_concurrent
    return max(1, min(max_concurrent, fits))


def _row(result, sweep: SweepSpec) -> dict:
    values = {
        path: result.config.get(path) for path in [*sweep.space, SEED] if path in result.config
    }
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
        label = ", ".join(
            f"{p}={result.config.get(p)}"
            for p in [*sweep_section(spec).space, SEED]
            if p in result.config
        )
        dirs = {k: Path(v) for k, v in json.loads(result.metrics["stage_dirs"]).items()}
        runs.append(load_run(label, Path(spec.workdir), dirs))
    if not runs:
        return None
    return write_report(runs, storage / spec.name / "report", title=f"rsrl sweep: {spec.name}")


def format_results(result: SweepResult, sweep: SweepSpec) -> str:
    """The results table: one row per arm (mean ± se over its seeds), the comparison with
    the baseline arm when there is one; then the best arm."""
    metrics = [sweep.metric, *(m for m in sweep.show if m != sweep.metric)]
    header = [*sweep.space, "seeds", *metrics]
    if sweep.baseline:
        header += [f"{sweep.metric} - baseline [95% CI]", "reading"]
    lines = ["  ".join(header)]
    for arm in sorted(result.arms, key=lambda r: -_score(r, sweep)):
        cells = [_fmt(arm.get(c)) for c in [*sweep.space, "seeds"]]
        cells += [_mean_se(arm, m) for m in metrics]
        if sweep.baseline:
            vs = arm.get("vs_baseline", {})
            cells += [
                f"{vs['mean']:+.4f} [{vs['low']:+.4f}, {vs['high']:+.4f}]" if "mean" in vs else "",
                vs.get("reading", ""),
            ]
        lines.append("  ".join(cells))
    if result.best:
        best = ", ".join(f"{p}={result.best[p]}" for p in sweep.space)
        lines.append(f"best ({sweep.mode} {sweep.metric}): {best}")
    if result.report:
        lines.append(f"report: {result.report}")
    return "\n".join(lines)


def _mean_se(arm: dict, metric: str) -> str:
    mean, se = arm.get(metric), arm.get(f"{metric}_se")
    if not isinstance(mean, float):
        return "-"
    return f"{mean:.4g}" if se is None or math.isnan(se) else f"{mean:.4g} ± {se:.2g}"


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
