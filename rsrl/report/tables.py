"""The report's results tables, as rows of {column: value}: one row per run and suite,
per run and checkpoint, per run and stage."""

from __future__ import annotations

from typing import Any, Sequence

from rsrl.report.plots import Panel
from rsrl.pipeline.plan import MODEL_STAGES
from rsrl.report.runs import Run

Row = dict[str, Any]
SKIPPED_SUITE_FIELDS = ("curve", "k", "problems_file")  # drawn or linked, not tabulated
HELDOUT_COLUMNS = ("perplexity", "nll", "entropy", "local_entropy", "topk_mass", "tail_mass",
                   "p_target", "tokens")


def suite_table(runs: Sequence[Run]) -> list[Row]:
    return [{"run": run.label, "suite": suite,
             **{k: result[k] for k in sorted(result, key=_suite_column_rank)
                if k not in SKIPPED_SUITE_FIELDS}}
            for run in runs if run.eval
            for suite, result in run.eval.get("suites", {}).items()]


def _suite_column_rank(name: str) -> tuple[int, int, str]:
    """problems, n_samples, avg@n, cons@n, pass@k by k, then the rest by name."""
    metric, _, k = name.partition("@")
    order = ("problems", "n_samples", "avg", "cons", "pass")
    rank = order.index(metric) if metric in order else len(order)
    return rank, int(k) if k.isdigit() else 0, name


def heldout_table(runs: Sequence[Run]) -> list[Row]:
    return [{"run": run.label, "checkpoint": stage,
             **{k: heldout[stage][k] for k in HELDOUT_COLUMNS if k in heldout[stage]}}
            for run in runs if run.eval
            for heldout in [run.eval.get("heldout", {})]
            for stage in MODEL_STAGES if stage in heldout]


def last_step_table(runs: Sequence[Run], stages: Sequence[str],
                    panels: Sequence[Panel]) -> list[Row]:
    """The last logged step of each of `stages`, with the metrics `panels` draw."""
    keys = ["step", *(key for panel in panels for key, _ in panel.series)]
    return [{"run": run.label, "stage": stage,
             **{k: run.curves[stage][-1][k] for k in keys if k in run.curves[stage][-1]}}
            for run in runs for stage in stages if run.curves.get(stage)]


def columns(rows: Sequence[Row]) -> list[str]:
    """Every column of `rows`, in order of first appearance."""
    return list(dict.fromkeys(k for row in rows for k in row))
