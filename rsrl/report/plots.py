"""The report's figures, one function each, every run on the same axes in its own colour.

Figures are built with matplotlib's object API (`Figure`, no pyplot): no global state and
no GUI backend, so they render the same in a Ray worker, a test, or a headless server.
A function returns None when no run has the data its figure needs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from rsrl.eval.harness import stderr_name
from rsrl.eval.results import HARNESS, PRE_RL, RL_CURVE
from rsrl.eval.uncertainty import Z_95
from rsrl.layout import MODEL_STAGES
from rsrl.report.runs import Run, last_moe_record, moe_key, moe_layers

HELDOUT_METRICS = ("perplexity", "entropy", "local_entropy", "tail_mass")
FEW_POINTS = 20
LOG_SCALE_SPAN = 10  # a log y axis only for values that span more than this factor
DECISION_COLORS = {"higher": "tab:green", "lower": "tab:red"}  # any other decision: grey


@dataclass(frozen=True)
class Panel:
    title: str
    series: tuple[tuple[str, str], ...]  # (metric key, line style): solid first
    log_y: bool = False


TRAINING_PANELS = (
    Panel("loss: shaped (solid), NLL (dashed)", (("shaped_loss", "-"), ("nll", "--"))),
    Panel("perplexity", (("perplexity", "-"),), log_y=True),
    Panel(
        "entropy: global (solid), local top-k (dashed)", (("entropy", "-"), ("local_entropy", "--"))
    ),
    Panel("tail mass (outside the top-k)", (("tail_mass", "-"),)),
)
RL_PANELS = (
    Panel("reward (mean over rollouts)", (("reward_mean", "-"),)),
    Panel("policy entropy", (("entropy", "-"),)),
    Panel("response length (tokens)", (("response_length", "-"),)),
    Panel("clip fraction", (("clip_fraction", "-"),)),
)

# Expert panels draw one line per MoE layer: their series are per-layer stats (`moe_key`).
EXPERT_PANELS = (
    Panel("MaxVio: max / mean load - 1 (0: balanced)", (("maxvio", "-"),)),
    Panel("load entropy / log(experts) (1: uniform)", (("load_entropy", "-"),)),
)
ROUTING_PANEL = Panel(
    "routing agreement: used (solid), own (dashed)",
    (("routing_agreement", "-"), ("own_routing_agreement", "--")),
)


def run_color(index: int) -> tuple:
    return colormaps["tab10"](index % 10)


def layer_color(layer: int, layers: int) -> tuple:
    """Neighbouring layers in neighbouring colours, however many layers there are."""
    return colormaps["viridis"](0.9 * layer / max(layers - 1, 1))  # 0.9: no pale yellow


def curves_figure(
    runs: Sequence[Run], stage: str, panels: Sequence[Panel], title: str
) -> Figure | None:
    """A 2x2 grid of per-step curves of `stage` (a steps.jsonl per run)."""
    if not any(run.curves.get(stage) for run in runs):
        return None
    fig = Figure(figsize=(11, 7.5), layout="constrained")
    for ax, panel in zip(fig.subplots(2, 2).flat, panels):
        drawn = [
            _draw_series(ax, run.curves.get(stage, []), key, style, run_color(i))
            for i, run in enumerate(runs)
            for key, style in panel.series
        ]
        _finish(ax, panel.title, "step", any(drawn), panel.log_y)
    _legend(fig, runs, [i for i, run in enumerate(runs) if run.curves.get(stage)])
    fig.suptitle(title)
    return fig


def experts_figure(runs: Sequence[Run], stage: str) -> Figure | None:
    """Expert load per MoE layer over the steps of `stage`: a row of panels per MoE run, a
    colour per layer; rl adds the routing agreement with the rollout engine."""
    moe_runs = [
        (run, layers)
        for run in runs
        if (layers := moe_layers(last_moe_record(run.curves.get(stage, [])) or {}))
    ]
    if not moe_runs:
        return None
    panels = (*EXPERT_PANELS, ROUTING_PANEL) if stage == "rl" else EXPERT_PANELS
    n_layers = max(layers[-1] for _, layers in moe_runs) + 1
    colors = [layer_color(layer, n_layers) for layer in range(n_layers)]
    fig = Figure(figsize=(4.5 * len(panels), 1.2 + 3 * len(moe_runs)), layout="constrained")
    grid = fig.subplots(len(moe_runs), len(panels), squeeze=False)
    for axes, (run, layers) in zip(grid, moe_runs):
        for ax, panel in zip(axes, panels):
            drawn = [
                _draw_series(ax, run.curves[stage], moe_key(stat, layer), style, colors[layer])
                for layer in layers
                for stat, style in panel.series
            ]
            _finish(ax, panel.title, "step", any(drawn), panel.log_y)
        axes[0].set_ylabel(run.label)
    _color_legend(fig, colors, [f"layer {layer}" for layer in range(n_layers)], ncols=8)
    fig.suptitle(f"{stage}: expert load per MoE layer")
    return fig


def _draw_series(ax: Axes, records: list[dict], key: str, style: str, color: tuple) -> bool:
    points = [(r["step"], r[key]) for r in records if _finite(r.get(key))]
    if points:  # dots too when there are few points, so single steps stay visible
        ax.plot(
            *zip(*points),
            style,
            color=color,
            linewidth=1.4,
            marker="o" if len(points) <= FEW_POINTS else None,
            markersize=3,
        )
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return bool(points)


def pass_at_k_figure(runs: Sequence[Run], suite: str) -> Figure | None:
    """Pass@k against k = 1..n for one suite, before RL (dashed) and after (solid) on one
    axis, each with a band of +- 1.96 standard errors; dots at the suite's reported k."""
    results = [
        (i, style, result)
        for i, run in enumerate(runs)
        if run.eval
        for style, result in _before_after(run.eval, suite)
    ]
    if not results:
        return None
    fig = Figure(figsize=(7.5, 5), layout="constrained")
    ax = fig.subplots()
    for i, style, result in results:
        curve, ks = result["curve"], range(1, len(result["curve"]) + 1)
        ax.plot(ks, curve, style, color=run_color(i), linewidth=1.6)
        if "curve_se" in result:
            _band(ax, ks, curve, result["curve_se"], run_color(i))
        marks = [k for k in result.get("k", []) if 1 <= k <= len(curve)]
        ax.plot(marks, [curve[k - 1] for k in marks], "o", color=run_color(i))
    n = max(len(result["curve"]) for *_, result in results)
    ax.set_xscale("log", base=2)
    ax.set_xticks([2**e for e in range(n.bit_length())], [str(2**e) for e in range(n.bit_length())])
    ax.set_ylim(0, 1.02)
    before = any(style == "--" for _, style, _ in results)
    _finish(
        ax,
        f"suite '{suite}': unbiased Pass@k"
        + (", before RL (dashed) and after (solid)" if before else ""),
        "k (samples per problem)",
        True,
        False,
    )
    ax.set_ylabel("pass@k (band: 95% over problems)")
    _legend(fig, runs, sorted({i for i, *_ in results}))
    return fig


def _before_after(metrics: dict, suite: str) -> list[tuple[str, dict]]:
    pre = metrics.get(PRE_RL, {}).get("suites", {})
    pairs = [("--", pre[suite])] if suite in pre else []
    final = metrics.get("suites", {})
    return pairs + ([("-", final[suite])] if suite in final else [])


def rl_curve_figure(runs: Sequence[Run], suite: str) -> Figure | None:
    """The paper's RL figure: Avg@n and Pass@k of one suite's subset against the RL step,
    with +- 1.96 standard-error bars, one panel per metric."""
    curves = [
        (i, run.eval[RL_CURVE][suite])
        for i, run in enumerate(runs)
        if run.eval and run.eval.get(RL_CURVE, {}).get(suite)
    ]
    if not curves:
        return None
    # pass@1 is avg@n again (the mean correctness of the samples): drawn once.
    metrics = list(
        dict.fromkeys(
            k
            for _, rows in curves
            for k in rows[0]
            if k.startswith(("avg@", "pass@")) and k != "pass@1" and not k.endswith(("_se", "_ci"))
        )
    )
    fig = Figure(figsize=(4 * len(metrics), 4), layout="constrained")
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    for ax, metric in zip(axes, metrics):
        for i, rows in curves:
            points = [r for r in rows if _finite(r.get(metric))]
            ax.errorbar(
                [r["step"] for r in points],
                [r[metric] for r in points],
                yerr=[Z_95 * r.get(f"{metric}_se", 0.0) for r in points],
                fmt="o-",
                color=run_color(i),
                capsize=3,
                linewidth=1.4,
                markersize=4,
            )
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        _finish(ax, metric, "RL step", True, False)
    problems = curves[0][1][0].get("problems")
    fig.suptitle(f"suite '{suite}' during RL ({problems} problems; bars: 95% over problems)")
    _legend(fig, runs, [i for i, _ in curves])
    return fig


def _band(ax: Axes, xs, mean: Sequence[float], se: Sequence[float], color: tuple) -> None:
    ax.fill_between(
        xs,
        [m - Z_95 * e for m, e in zip(mean, se)],
        [m + Z_95 * e for m, e in zip(mean, se)],
        color=color,
        alpha=0.15,
        linewidth=0,
    )


def heldout_figure(runs: Sequence[Run]) -> Figure | None:
    """Held-out perplexity and entropies of each checkpoint: the stage-by-stage story."""
    tables = [(i, (run.eval or {}).get("heldout", {})) for i, run in enumerate(runs)]
    tables = [(i, t) for i, t in tables if t]
    if not tables:
        return None
    stages = [s for s in MODEL_STAGES if any(s in t for _, t in tables)]
    fig = Figure(figsize=(13, 4), layout="constrained")
    for ax, metric in zip(fig.subplots(1, len(HELDOUT_METRICS)), HELDOUT_METRICS):
        for i, table in tables:
            xs = [x for x, s in enumerate(stages) if _finite(table.get(s, {}).get(metric))]
            ax.plot(xs, [table[stages[x]][metric] for x in xs], "o-", color=run_color(i))
        ax.set_xticks(range(len(stages)), stages)
        ax.set_xlim(-0.4, len(stages) - 0.6)
        _finish(ax, metric.replace("_", " "), "checkpoint", True, metric == "perplexity")
    _legend(fig, runs, [i for i, _ in tables])
    fig.suptitle("held-out text, after each stage")
    return fig


def harness_figure(runs: Sequence[Run], checkpoint: str) -> Figure | None:
    """lm-eval's scores of one checkpoint: a bar per task and metric (those with a standard
    error: acc, acc_norm, ...) and run, with +- 1.96 standard-error whiskers."""
    scores = [
        (i, (run.eval or {}).get(HARNESS, {}).get(checkpoint, {})) for i, run in enumerate(runs)
    ]
    scores = [(i, tasks) for i, tasks in scores if tasks]
    rows = list(
        dict.fromkeys(
            (task, metric)
            for _, tasks in scores
            for task, values in tasks.items()
            for metric in values
            if stderr_name(metric) in values
        )
    )
    if not rows:
        return None
    fig = Figure(figsize=(8, 1 + 0.3 * len(rows) * len(scores)), layout="constrained")
    ax = fig.subplots()
    height = 0.8 / len(scores)
    for j, (i, tasks) in enumerate(scores):
        bars = [
            (y + j * height, tasks[task][metric], Z_95 * tasks[task][stderr_name(metric)])
            for y, (task, metric) in enumerate(rows)
            if stderr_name(metric) in tasks.get(task, {})
        ]
        if bars:
            ys, values, whiskers = zip(*bars)
            ax.barh(ys, values, height=height, xerr=whiskers, color=run_color(i), capsize=2)
    ax.set_yticks(
        [y + (len(scores) - 1) * height / 2 for y in range(len(rows))],
        [f"{task} {metric}" for task, metric in rows],
    )
    ax.invert_yaxis()
    _finish(ax, f"lm-evaluation-harness on {checkpoint} (whiskers: 95%)", "score", True, False)
    _legend(fig, runs, [i for i, _ in scores])
    return fig


def forest_figure(comparisons: Sequence[dict], metric: str) -> Figure | None:
    """A sweep's arms against its baseline on one metric: a dot at each arm's difference, a
    bar over its 95% interval (paired by seed), coloured and labelled by the decision."""
    rows = [c for c in comparisons if c["metric"] == metric]
    if not rows:
        return None
    fig = Figure(figsize=(9, 1.4 + 0.45 * len(rows)), layout="constrained")
    ax = fig.subplots()
    for y, c in enumerate(rows):
        color = DECISION_COLORS.get(c["decision"], "grey")
        if _finite(c["ci_low"]) and _finite(c["ci_high"]):
            ax.plot([c["ci_low"], c["ci_high"]], [y, y], color=color, linewidth=2.5)
        if _finite(c["diff"]):
            ax.plot(c["diff"], y, "o", color=color, markersize=7)
        ax.annotate(
            c["decision"], (1.01, y), xycoords=("axes fraction", "data"), va="center", color=color
        )
    ax.axvline(0.0, color="black", linewidth=0.8, linestyle="--")
    arms = [", ".join(f"{path}={value}" for path, value in c["arm"].items()) for c in rows]
    ax.set_yticks(range(len(rows)), arms)
    ax.set_ylim(len(rows) - 0.5, -0.5)
    title = f"{metric}: arm - baseline (bars: 95% over paired seeds)"
    _finish(ax, title, "difference", any(_finite(c["diff"]) for c in rows), False)
    return fig


def _finish(ax: Axes, title: str, xlabel: str, drawn: bool, log_y: bool) -> None:
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.grid(True, alpha=0.3)
    if not drawn:
        ax.text(
            0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes, color="grey"
        )
    elif log_y:
        # matplotlib types ydata as any ArrayLike; a drawn line's is a sequence of floats
        values = [v for line in ax.get_lines() for v in cast("Sequence[float]", line.get_ydata())]
        if min(values) > 0 and max(values) > LOG_SCALE_SPAN * min(values):
            ax.set_yscale("log")


def _legend(fig: Figure, runs: Sequence[Run], shown: list[int]) -> None:
    _color_legend(fig, [run_color(i) for i in shown], [runs[i].label for i in shown], ncols=3)


def _color_legend(fig: Figure, colors: Sequence[tuple], labels: Sequence[str], ncols: int) -> None:
    handles = [Line2D([], [], color=color, linewidth=2) for color in colors]
    fig.legend(
        handles, labels, loc="outside lower center", ncols=min(len(labels), ncols), fontsize=9
    )


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
