"""The report's results tables, as rows of {column: value}: per run, checkpoint and suite;
per run, suite and metric for the RL gain; per run and checkpoint; per run and stage; per
run, stage and MoE layer for the experts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rsrl.eval.harness import stderr_name
from rsrl.eval.results import HARNESS, PRE_RL, RL_GAIN
from rsrl.layout import MODEL_STAGES
from rsrl.objective.stat_names import STAT_NAMES
from rsrl.report.findings import gain_reading
from rsrl.report.plots import Panel
from rsrl.report.runs import Run, last_moe_record, moe_key, moe_layers

Row = dict[str, Any]
SKIPPED_SUITE_FIELDS = ("curve", "curve_se", "k", "problems_file")  # drawn or linked
HELDOUT_COLUMNS = ("perplexity", *STAT_NAMES, "tokens")
EXPERT_COLUMNS = (  # (per-layer stat in steps.jsonl, column); a model logs some of them
    ("maxvio", "MaxVio"),
    ("dead", "dead experts"),
    ("load_entropy", "load entropy"),
    ("bias_min", "bias min"),
    ("bias_max", "bias max"),
    ("routing_agreement", "routing agreement"),
    ("own_routing_agreement", "own routing agreement"),
)


def suite_table(runs: Sequence[Run]) -> list[Row]:
    """A row per run, checkpoint the suites sampled (before RL, then last) and suite; each
    metric as 'mean ± standard error'."""
    return [
        {"run": run.label, "checkpoint": model, "suite": suite, **_with_errors(result)}
        for run in runs
        if run.eval
        for model, suites in _sampled(run.eval)
        for suite, result in suites.items()
    ]


def rl_gain_table(runs: Sequence[Run]) -> list[Row]:
    """A row per run, suite and metric: before and after RL, the paired gain ± its standard
    error, z, and whether the 95% interval of the gain covers 0."""
    rows = []
    for run in runs:
        if not run.eval or PRE_RL not in run.eval:
            continue
        before = run.eval[PRE_RL]["suites"]
        for suite, gains in run.eval.get(RL_GAIN, {}).items():
            for metric, gain in gains.items():
                rows.append(
                    {
                        "run": run.label,
                        "suite": suite,
                        "metric": metric,
                        "before RL": before[suite][metric],
                        "after RL": run.eval["suites"][suite][metric],
                        "gain": plus_minus(gain["mean"], gain["se"]),
                        "z": gain["z"],
                        "reading": gain_reading(gain["mean"], gain["se"]),
                    }
                )
    return rows


def plus_minus(mean: float, se: float) -> str:
    return f"{mean:.3f} ± {se:.3f}"


def _sampled(metrics: dict) -> list[tuple[str, dict]]:
    pre = [(metrics[PRE_RL]["model"], metrics[PRE_RL]["suites"])] if PRE_RL in metrics else []
    return [*pre, (metrics.get("model", ""), metrics.get("suites", {}))]


def _with_errors(result: dict) -> Row:
    """The suite's numbers in column order; `x` with `x_se` becomes 'x ± se' (and its
    bootstrap interval, `x_ci`, a '[low, high]' column)."""
    row: Row = {}
    for k in sorted(result, key=_suite_column_rank):
        if k in SKIPPED_SUITE_FIELDS or k.endswith(("_se", "_ci")):
            continue
        row[k] = plus_minus(result[k], result[f"{k}_se"]) if f"{k}_se" in result else result[k]
        if f"{k}_ci" in result:
            low, high = result[f"{k}_ci"]
            row[f"{k} 95% CI"] = f"[{low:.3f}, {high:.3f}]"
    return row


def _suite_column_rank(name: str) -> tuple[int, int, str]:
    """problems, n_samples, avg@n, cons@n, pass@k by k, then the rest by name."""
    metric, _, k = name.partition("@")
    order = ("problems", "n_samples", "avg", "cons", "pass")
    rank = order.index(metric) if metric in order else len(order)
    return rank, int(k) if k.isdigit() else 0, name


def heldout_table(runs: Sequence[Run]) -> list[Row]:
    return [
        {
            "run": run.label,
            "checkpoint": stage,
            **{k: heldout[stage][k] for k in HELDOUT_COLUMNS if k in heldout[stage]},
        }
        for run in runs
        if run.eval
        for heldout in [run.eval.get("heldout", {})]
        for stage in MODEL_STAGES
        if stage in heldout
    ]


def harness_table(runs: Sequence[Run]) -> list[Row]:
    """A row per run, checkpoint and lm-eval task: its metrics as 'value ± standard error'."""
    return [
        {"run": run.label, "checkpoint": checkpoint, "task": task, **_harness_cells(values)}
        for run in runs
        if run.eval
        for checkpoint, tasks in run.eval.get(HARNESS, {}).items()
        for task, values in tasks.items()
    ]


def _harness_cells(values: dict[str, float]) -> Row:
    errors = {stderr_name(k) for k in values}
    return {
        k: plus_minus(v, values[stderr_name(k)]) if stderr_name(k) in values else v
        for k, v in values.items()
        if k not in errors
    }


def last_step_table(
    runs: Sequence[Run], stages: Sequence[str], panels: Sequence[Panel]
) -> list[Row]:
    """The last logged step of each of `stages`, with the metrics `panels` draw."""
    keys = ["step", *(key for panel in panels for key, _ in panel.series)]
    return [
        {
            "run": run.label,
            "stage": stage,
            **{k: run.curves[stage][-1][k] for k in keys if k in run.curves[stage][-1]},
        }
        for run in runs
        for stage in stages
        if run.curves.get(stage)
    ]


def experts_table(runs: Sequence[Run]) -> list[Row]:
    """A row per run, model stage and MoE layer: its expert load at the last step that
    logged one; [] when every run is dense."""
    return [
        {
            "run": run.label,
            "stage": stage,
            "step": last["step"],
            "layer": layer,
            **{
                column: last[moe_key(stat, layer)]
                for stat, column in EXPERT_COLUMNS
                if moe_key(stat, layer) in last
            },
        }
        for run in runs
        for stage in MODEL_STAGES
        if (last := last_moe_record(run.curves.get(stage, [])))
        for layer in moe_layers(last)
    ]


def columns(rows: Sequence[Row]) -> list[str]:
    """Every column of `rows`, in order of first appearance."""
    return list(dict.fromkeys(k for row in rows for k in row))
