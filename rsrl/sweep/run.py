"""Sweeps: Ray Tune over any dotted spec path; every trial is a pipeline apply.

All trials share the spec's workdir, so the stage cache is shared: trials that differ only
in `rl.*` reuse one pre-training (the per-stage locks make a second trial wait for the first
rather than run it again). Tune's own state lives in `<workdir>/sweeps/<name>`, so an
interrupted sweep resumes where it stopped, and re-running a finished one does nothing.
With `sweep.seeds`, every point (arm) runs with several seeds. The choice/uniform/loguniform
dimensions are drawn here, `num_samples` times from the spec's seed, not by Tune (which
would draw anew for every seed and leave each arm one seed). The results table and
`<workdir>/sweeps/<name>/results.json` give each arm's mean ± se over seeds, its Pass@k
before and after RL, and its difference from the baseline arm on every shown metric,
paired by seed (the statistics: `rsrl.eval.compare`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rsrl.eval.compare import (
    ALPHA,
    CORRECTION,
    POWER,
    POWER_ALPHA,
    decide_all,
    diff_with_interval,
    paired_comparison,
)
from rsrl.eval.results import PRE_RL
from rsrl.eval.uncertainty import bootstrap_interval, standard_error
from rsrl.files import write_json_atomic
from rsrl.layout import MODEL_STAGES
from rsrl.pipeline.apply import StageOutcome
from rsrl.spec import SpecError, load_spec
from rsrl.spec.schema import Spec, sweep_section
from rsrl.sweep.config import SearchDimSpec, SweepSpec, value_key
from rsrl.tracking.session import checked_trackers

SEED = "seed"  # the spec path that sweep.seeds adds to the search space
SAMPLED = "sampled"  # Tune's key for the drawn points: {path: value} of the random dimensions
RESULTS_FILE = "results.json"  # trials, arms and comparisons, beside Tune's state
SPEC_FINGERPRINT_FILE = "spec.sha256"  # the resolved spec the experiment started from
# eval.<suite>.pass@<k> (after RL, or the last checkpoint) and eval.pre_rl.<suite>.pass@<k>
PASS_AT_K = re.compile(rf"^eval\.(?:({PRE_RL})\.)?([^.]+)\.pass@(\d+)$")


@dataclass(frozen=True)
class SweepResult:
    rows: list[dict]  # one per trial: the swept values (and seed), then every metric
    arms: list[dict]  # one per point of the space: metrics as mean / se over its seeds
    comparisons: list[dict]  # one per non-baseline arm and compared metric
    best: dict | None  # the best arm by sweep.metric / sweep.mode
    report: Path | None  # all trials on the same axes


def require_sweep(spec: Spec) -> SweepSpec:
    """`spec.sweep`, with a space to search and a baseline among the arms it will run."""
    if spec.sweep is None or not spec.sweep.space:
        raise SpecError("sweep: this spec has no sweep.space to search; add one (see docs/spec.md)")
    _require_baseline_drawn(spec.sweep, spec.seed)
    return spec.sweep


def _require_baseline_drawn(sweep: SweepSpec, seed: int) -> None:
    """The validator checked the baseline against the grid and the choices; whether the
    draws of a choice dimension include it is known only once drawn (here, before Ray)."""
    base = sweep.baseline_point()
    paths = [path for path in sweep.random_paths() if path in base]
    if not sweep.baseline or not paths:
        return
    drawn = {tuple(value_key(p[path]) for path in paths) for p in sample_points(sweep, seed)}
    if tuple(value_key(base[path]) for path in paths) not in drawn:
        raise SpecError(
            f"sweep.baseline: no arm has it: the {sweep.num_samples} draw(s) of "
            f"{', '.join(paths)} from seed {seed} never give "
            f"{', '.join(f'{path}={base[path]!r}' for path in paths)}; raise sweep.num_samples "
            "or sweep that path with grid"
        )


def search_space(sweep: SweepSpec, seed: int = 0) -> dict[str, Any]:
    """Tune's param space, all grids so that every point runs with every seed: each grid
    path, the drawn points of the random dimensions as one grid (`SAMPLED`), and the seeds
    when `sweep.seeds` > 1."""
    from ray import tune

    space = {
        path: tune.grid_search(list(d.grid))
        for path, d in sweep.space.items()
        if d.grid is not None
    }
    if sweep.random_paths():
        space[SAMPLED] = tune.grid_search(sample_points(sweep, seed))
    if sweep.seeds > 1:
        space[SEED] = tune.grid_search(list(range(seed, seed + sweep.seeds)))
    return space


def sample_points(sweep: SweepSpec, seed: int) -> list[dict[str, Any]]:
    """`sweep.num_samples` draws of the random dimensions, {path: value} each, reproducible
    from `seed`. A draw that repeats an earlier one (a choice) is one arm, not a second copy
    of its trials that would count as more seeds."""
    rng = np.random.default_rng(seed)
    points: dict[Any, dict[str, Any]] = {}
    for _ in range(sweep.num_samples):
        point = {path: _draw(sweep.space[path], rng) for path in sweep.random_paths()}
        points.setdefault(value_key(point), point)
    return list(points.values())


def _draw(d: SearchDimSpec, rng: np.random.Generator) -> Any:
    if d.choice is not None:
        return d.choice[int(rng.integers(len(d.choice)))]
    if d.uniform is not None:
        low, high = d.uniform
        return float(rng.uniform(low, high))
    assert d.loguniform is not None  # the validator requires exactly one kind
    low, high = d.loguniform
    return float(math.exp(rng.uniform(math.log(low), math.log(high))))


def trial_values(config: dict[str, Any]) -> dict[str, Any]:
    """A trial's swept values (and seed) by spec path: Tune's config, the drawn point
    unpacked."""
    return {**config.get(SAMPLED, {}), **{k: v for k, v in config.items() if k != SAMPLED}}


def trial_overrides(config: dict[str, Any]) -> list[str]:
    """Tune's sampled values as dotted overrides (JSON is valid YAML for any value)."""
    return [f"{path}={json.dumps(value)}" for path, value in sorted(config.items())]


def describe_trial(config: dict[str, Any]) -> str:
    """A trial's arm and seed: 'objective.beta=-0.25, seed=1'."""
    return ", ".join(f"{path}={_fmt(value)}" for path, value in trial_values(config).items())


def trial_stage(spec_path: str, overrides: Sequence[str], config: dict[str, Any]) -> str | None:
    """The stage a running trial is in: the first of its plan that has not finished."""
    from rsrl.pipeline.cache import Status, stage_status
    from rsrl.pipeline.plan import compile_plan

    spec = load_spec(spec_path, [*overrides, *trial_overrides(trial_values(config))])
    plan = compile_plan(spec)
    unfinished = (s.name for s in plan.stages if stage_status(s, plan.workdir) != Status.CACHED)
    return next(unfinished, None)


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
    values = trial_values(config)
    spec = load_spec(spec_path, [*overrides, *trial_overrides(values)])
    tags = {path: json.dumps(value) for path, value in sorted(values.items())}
    outcomes = apply_plan(compile_plan(spec), shared_workdir=True, tags=tags)
    metrics: dict[str, Any] = trial_metrics(outcomes)
    metrics["stage_dirs"] = json.dumps({o.stage: str(o.out_dir) for o in outcomes})
    tune.report(metrics)


def sweep_dir(spec: Spec) -> Path:
    """Where Tune keeps the sweep's state and trials; results.json and the report beside."""
    return Path(spec.workdir).resolve() / "sweeps" / spec.name


def run_sweep(spec_path: str, overrides: Sequence[str] = (), verbose: bool = False) -> SweepResult:
    """Run (or resume) the sweep, showing its progress in plain lines (`progress.py`);
    `verbose`: Tune's own status tables as well."""
    import ray
    from ray import tune

    from rsrl.sweep.progress import SweepProgress

    spec = load_spec(spec_path, overrides)
    sweep = require_sweep(spec)
    storage = sweep_dir(spec).parent
    progress = SweepProgress(
        total=math.prod(len(v["grid_search"]) for v in search_space(sweep, spec.seed).values()),
        describe=describe_trial,
        stage_of=lambda config: trial_stage(spec_path, overrides, config),
    )
    if not verbose:  # Tune's older console engine prints nothing at verbose 0; the newer
        os.environ["RAY_AIR_NEW_OUTPUT"] = "0"  # one still prints its experiment table
    run_config = tune.RunConfig(
        name=spec.name,
        storage_path=str(storage),
        callbacks=[progress],
        verbose=None if verbose else 0,
    )
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
    if _resumable(path, spec):
        # Tune restores the run config it saved: the progress callback and verbosity included
        tuner = tune.Tuner.restore(str(path), trainable, resume_errored=True)
    else:
        tuner = tune.Tuner(
            trainable,
            param_space=search_space(sweep, spec.seed),
            tune_config=tune.TuneConfig(
                metric=sweep.metric,
                mode=sweep.mode,
                max_concurrent_trials=concurrent_trials(spec, ray.cluster_resources()),
            ),
            run_config=run_config,
        )
        path.mkdir(parents=True, exist_ok=True)
        (path / SPEC_FINGERPRINT_FILE).write_text(spec_fingerprint(spec))
    grid = tuner.fit()
    # ray's stubs: ResultGrid iterates by __getitem__/__len__, not __iter__
    rows = [_row(r, sweep) for r in grid if "stage_dirs" in (r.metrics or {})]  # type: ignore[attr-defined]
    arms, comparisons = summarise(rows, sweep)
    write_json_atomic(path / RESULTS_FILE, results_json(rows, arms, comparisons, sweep))
    best = max(arms, key=lambda r: _score(r, sweep), default=None)
    return SweepResult(
        rows=rows,
        arms=arms,
        comparisons=comparisons,
        best=best,
        report=_combined_report(spec, grid, storage, comparisons),
    )


def spec_fingerprint(spec: Spec) -> str:
    """A hash of the resolved spec (file and overrides): what every trial's results follow."""
    text = json.dumps(dataclasses.asdict(spec), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _resumable(path: Path, spec: Spec) -> bool:
    """Whether to resume the Tune experiment at `path`. Tune would restore finished trials with
    the results of whatever spec they ran, so one started from another spec moves aside
    (kept, never deleted) and the sweep starts over; stages whose inputs did not change come
    from the stage cache."""
    from ray import tune

    if not tune.Tuner.can_restore(str(path)):
        return False
    mark = path / SPEC_FINGERPRINT_FILE
    if not mark.exists() or mark.read_text() == spec_fingerprint(spec):
        return True
    stale = next(
        path.with_name(f"{path.name}.stale-{n}")
        for n in itertools.count(1)
        if not path.with_name(f"{path.name}.stale-{n}").exists()
    )
    path.rename(stale)
    print(f"rsrl sweep: the spec changed since this sweep started; its trials moved to {stale}")
    return False


def summarise(rows: Sequence[dict], sweep: SweepSpec) -> tuple[list[dict], list[dict]]:
    """(arms, comparisons): the arms over their seeds, each with `vs_baseline` (its
    `sweep.metric` comparison in short), and every comparison with the baseline arm."""
    arms, comparisons = aggregate_seeds(rows, sweep), compare_to_baseline(rows, sweep)
    if sweep.baseline:
        base = _arm_key(sweep.baseline_point(), sweep)
        headline = {
            _arm_key(c["arm"], sweep): c for c in comparisons if c["metric"] == sweep.metric
        }
        for arm in arms:
            key = _arm_key(arm, sweep)
            arm["vs_baseline"] = {"reading": "baseline"} if key == base else _short(headline[key])
    return arms, comparisons


def results_json(
    rows: Sequence[dict], arms: Sequence[dict], comparisons: Sequence[dict], sweep: SweepSpec
) -> dict[str, Any]:
    """results.json: the trials, arms and comparisons, and how the comparisons decide
    (Holm at `alpha`; mde and seeds_needed at `power` and the uncorrected `power_alpha`).
    Strict JSON: every nan or infinity is null, so any parser reads it and no infinite
    statistic is ever written."""
    return _strict_json(
        {
            "trials": rows,
            "arms": arms,
            "comparisons": comparisons,
            "baseline": sweep.baseline_point() if sweep.baseline else None,
            "correction": CORRECTION,
            "alpha": ALPHA,
            "power": POWER,
            "power_alpha": POWER_ALPHA,
        }
    )


def _short(comparison: dict) -> dict:
    c = comparison
    return {
        "mean": c["diff"],
        "se": c["se"],
        "low": c["ci_low"],
        "high": c["ci_high"],
        "p_holm": c["p_holm"],
        "reading": c["decision"],
    }


def aggregate_seeds(rows: Sequence[dict], sweep: SweepSpec) -> list[dict]:
    """One arm per point of the space: its swept values, `seeds` (how many trials), each
    metric's mean over seeds with `<metric>_se` (standard error over seeds; nan for one),
    and `pass_at_k` (see `pass_at_k_curves`).

    A trial's own `<metric>_se` (its error over problems) is dropped where `<metric>` is there
    too: across seeds the seed-to-seed spread is the error, and the names would collide."""
    out = []
    for trials in _by_arm(rows, sweep).values():
        arm: dict[str, Any] = {**_swept(trials[0], sweep), "seeds": len(trials)}
        names = dict.fromkeys(
            k
            for t in trials
            for k, v in t.items()
            if k not in sweep.space
            and k not in (SEED, "stage_dirs")
            and isinstance(v, (int, float))
        )
        for name in [n for n in names if not (n.endswith("_se") and n[: -len("_se")] in names)]:
            values = [t[name] for t in trials if name in t]
            arm[name], arm[f"{name}_se"] = float(np.mean(values)), standard_error(values)
        arm["pass_at_k"] = pass_at_k_curves(trials)
        out.append(arm)
    return out


def pass_at_k_curves(trials: Sequence[dict]) -> dict[str, dict[str, dict[str, dict]]]:
    """{suite: {"pre_rl" | "post_rl": {k: {"mean", "low", "high"}}}}: an arm's Pass@k
    before and after RL over its seeds, low/high a seeded 95% percentile bootstrap over the
    seeds (nan with one seed: one value has no spread to resample)."""
    values: dict[tuple[str, str, int], list[float]] = {}
    for trial in trials:
        for name, value in trial.items():
            match = PASS_AT_K.match(name)
            if match and _finite(value):
                when = "pre_rl" if match[1] else "post_rl"
                values.setdefault((match[2], when, int(match[3])), []).append(value)
    curves: dict[str, dict[str, dict[str, dict]]] = {}
    for (suite, when, k), seeds in sorted(values.items()):
        low, high = bootstrap_interval(seeds) if len(seeds) > 1 else [math.nan, math.nan]
        point = {"mean": float(np.mean(seeds)), "low": low, "high": high}
        curves.setdefault(suite, {}).setdefault(when, {})[str(k)] = point
    return curves


def compare_to_baseline(rows: Sequence[dict], sweep: SweepSpec) -> list[dict]:
    """One comparison per arm other than the baseline and per metric of the table
    (`sweep.metric`, then `sweep.show`): the arm minus the baseline arm, paired by seed over
    the seeds where both have the metric, decided on Holm over all of them (see
    `rsrl.eval.compare`)."""
    if not sweep.baseline:
        return []
    arms = _by_arm(rows, sweep)
    base_key = _arm_key(sweep.baseline_point(), sweep)
    base = {r.get(SEED): r for r in arms.get(base_key, [])}
    comparisons = []
    for key, trials in arms.items():
        if key == base_key:
            continue
        for metric in compared_metrics(sweep):
            pairs = [
                (t[metric], base[t.get(SEED)][metric])
                for t in trials
                if _finite(t.get(metric)) and _finite(base.get(t.get(SEED), {}).get(metric))
            ]
            comparison = paired_comparison([a for a, _ in pairs], [b for _, b in pairs])
            comparisons.append({"arm": _swept(trials[0], sweep), "metric": metric, **comparison})
    return decide_all(comparisons)


def compared_metrics(sweep: SweepSpec) -> list[str]:
    """The table's metrics: `sweep.metric`, then `sweep.show`, each once."""
    return list(dict.fromkeys([sweep.metric, *sweep.show]))


def _by_arm(rows: Sequence[dict], sweep: SweepSpec) -> dict[tuple, list[dict]]:
    arms: dict[tuple, list[dict]] = {}
    for row in rows:
        arms.setdefault(_arm_key(row, sweep), []).append(row)
    return arms


def _arm_key(row: dict, sweep: SweepSpec) -> tuple:
    """The arm a row belongs to, compared by value (0 and 0.0 alike) and hashable even when
    a swept value is a mapping."""
    return tuple(value_key(row.get(path)) for path in sweep.space)


def _swept(row: dict, sweep: SweepSpec) -> dict[str, Any]:
    return {path: row.get(path) for path in sweep.space}


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _strict_json(value: Any) -> Any:
    """`value` with every nan or infinity as None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict_json(v) for v in value]
    return value


def concurrent_trials(spec: Spec, cluster: dict[str, float]) -> int:
    """`sweep.max_concurrent`, but no more trials than the cluster fits at their peak stage."""
    from rsrl.pipeline.plan import compile_plan

    need = max(sum(b.get("CPU", 0) for b in s.resources.bundles) for s in compile_plan(spec).stages)
    max_concurrent = sweep_section(spec).max_concurrent
    fits = int(cluster.get("CPU", 1) // need) if need else max_concurrent
    return max(1, min(max_concurrent, fits))


def _row(result, sweep: SweepSpec) -> dict:
    config = trial_values(result.config)
    values = {path: config[path] for path in [*sweep.space, SEED] if path in config}
    metrics = {k: v for k, v in result.metrics.items() if k.startswith(("eval.", *MODEL_STAGES))}
    return {**values, **metrics, "stage_dirs": json.loads(result.metrics["stage_dirs"])}


def _score(row: dict, sweep: SweepSpec) -> float:
    value = row.get(sweep.metric, float("nan"))
    if value != value:  # nan: this trial never reported the metric
        return float("-inf")
    return value if sweep.mode == "max" else -value


def _combined_report(spec: Spec, grid, storage: Path, comparisons: list[dict]) -> Path | None:
    from rsrl.report.runs import load_run
    from rsrl.report.write import write_report

    runs = []
    for result in grid:
        if "stage_dirs" not in (result.metrics or {}):  # a trial that failed
            continue
        config = trial_values(result.config)
        label = ", ".join(
            f"{p}={config[p]}" for p in [*sweep_section(spec).space, SEED] if p in config
        )
        dirs = {k: Path(v) for k, v in json.loads(result.metrics["stage_dirs"]).items()}
        runs.append(load_run(label, Path(spec.workdir), dirs))
    if not runs:
        return None
    return write_report(
        runs, storage / spec.name / "report", f"rsrl sweep: {spec.name}", comparisons
    )


def format_results(result: SweepResult, sweep: SweepSpec) -> str:
    """The arms (mean ± se over their seeds, and how `sweep.metric` reads against the
    baseline), the best arm, then every comparison with the baseline arm."""
    metrics = compared_metrics(sweep)
    header = [*sweep.space, "seeds", *metrics]
    if sweep.baseline:
        header.append(f"{sweep.metric} vs baseline")
    rows = [header]
    for arm in sorted(result.arms, key=lambda r: -_score(r, sweep)):
        cells = [_fmt(arm.get(c)) for c in [*sweep.space, "seeds"]]
        cells += [_mean_se(arm, m) for m in metrics]
        if sweep.baseline:
            cells.append(arm.get("vs_baseline", {}).get("reading", ""))
        rows.append(cells)
    lines = _aligned(rows)
    if result.best:
        best = ", ".join(f"{p}={result.best[p]}" for p in sweep.space)
        lines.append(f"best ({sweep.mode} {sweep.metric}): {best}")
    if result.comparisons:
        lines += ["", *format_comparisons(result.comparisons, sweep)]
    if result.report:
        lines.append(f"report: {result.report}")
    return "\n".join(lines)


def format_comparisons(comparisons: Sequence[dict], sweep: SweepSpec) -> list[str]:
    """A line saying how to read it, then a row per comparison: arm, metric, diff [95% CI],
    p_holm, decision, mde, seeds, seeds_needed."""
    base = ", ".join(f"{p}={_fmt(v)}" for p, v in sweep.baseline_point().items())
    tested = sum(not math.isnan(c["p"]) for c in comparisons)
    intro = (
        f"vs baseline ({base}), paired by seed: diff = arm - baseline [95% t interval]; "
        f"decision on Holm-adjusted p < {ALPHA:g} over all {tested} tested comparisons; "
        f"mde and seeds_needed at {POWER:.0%} power, paired t-test, uncorrected two-sided "
        f"alpha {POWER_ALPHA:g}"
    )
    header = ["arm", "metric", "diff [95% CI]", "p_holm", "decision", "mde", "seeds"]
    rows = [[*header, "seeds_needed"]]
    for c in comparisons:
        arm = ", ".join(f"{p}={_fmt(v)}" for p, v in c["arm"].items())
        rows.append(
            [
                arm,
                c["metric"],
                diff_with_interval(c),
                _number(c["p_holm"], ".3g"),
                c["decision"],
                _number(c["mde"], ".4g"),
                str(c["seeds"]),
                "-" if c["seeds_needed"] is None else str(c["seeds_needed"]),
            ]
        )
    return [intro, *_aligned(rows)]


def _number(value: float, spec: str) -> str:
    return "-" if math.isnan(value) else format(value, spec)


def _aligned(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]


def _mean_se(arm: dict, metric: str) -> str:
    mean, se = arm.get(metric), arm.get(f"{metric}_se")
    if not isinstance(mean, float):
        return "-"
    return f"{mean:.4g}" if se is None or math.isnan(se) else f"{mean:.4g} ± {se:.2g}"


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
