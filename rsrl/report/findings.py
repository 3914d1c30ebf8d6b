"""What runs found, in a few lines: what `rsrl apply` prints when it ends and what
report.html opens with.

- the RL gain per suite metric (after RL minus before, paired by problem), its standard
  error and how it reads;
- held-out entropy and perplexity per checkpoint: the stage-by-stage story;
- for a sweep, each arm against the baseline (`rsrl.eval.compare`).
"""

from __future__ import annotations

import math

from rsrl.eval.compare import diff_with_interval
from rsrl.eval.results import HELDOUT, RL_GAIN
from rsrl.eval.uncertainty import covers_zero
from rsrl.layout import MODEL_STAGES


def gain_reading(mean: float, se: float) -> str:
    """A single problem has no spread (se nan): no interval, so no reading either way."""
    if math.isnan(se):
        return "one problem: no interval"
    if covers_zero(mean, se):
        return "no detectable difference"
    return "gain" if mean > 0 else "loss"


def rl_gain_lines(metrics: dict) -> list[str]:
    """One line per suite and gain: 'count avg@16 (= mean_score, pass@1): +0.109 ± 0.016
    (gain)'. Metrics whose gain reads the same are said once (pass@1 is avg@n again, and so
    is the mean score of a verifier that scores 0 or 1)."""
    lines = []
    for suite, gains in metrics.get(RL_GAIN, {}).items():
        said: dict[str, list[str]] = {}  # the gain as printed -> the metrics that have it
        for metric, gain in gains.items():
            reading = gain_reading(gain["mean"], gain["se"])
            said.setdefault(f"{gain['mean']:+.3f} ± {gain['se']:.3f} ({reading})", []).append(
                metric
            )
        for text, names in said.items():
            same = f" (= {', '.join(names[1:])})" if len(names) > 1 else ""
            lines.append(f"{suite} {names[0]}{same}: {text}")
    return lines


def heldout_line(metrics: dict) -> str:
    """'pretrain 5.62 / 161, midtrain 5.19 / 266, rl 4.31 / 322': entropy / perplexity."""
    heldout = metrics.get(HELDOUT, {})
    return ", ".join(
        f"{stage} {heldout[stage]['entropy']:.3g} / {heldout[stage]['perplexity']:.3g}"
        for stage in MODEL_STAGES
        if {"entropy", "perplexity"} <= set(heldout.get(stage, {}))
    )


def findings(metrics: dict | None) -> list[str]:
    """The findings as lines to print; [] without eval results."""
    if not metrics:
        return []
    lines = []
    gains = rl_gain_lines(metrics)
    if gains:
        lines += ["RL gain (after - before RL, paired by problem, ± standard error):"]
        lines += [f"  {line}" for line in gains]
    heldout = heldout_line(metrics)
    if heldout:
        lines += [f"held-out entropy / perplexity by checkpoint: {heldout}"]
    return lines


def summary(labelled_metrics: list[tuple[str, dict | None]], comparisons: list[dict]) -> list[str]:
    """The report's opening lines: each comparison with the baseline when there are some,
    else one run's findings, or each run's first RL gain."""
    if comparisons:
        return [comparison_line(c) for c in comparisons]
    if len(labelled_metrics) == 1:
        metrics = labelled_metrics[0][1] or {}
        heldout = heldout_line(metrics)
        return [f"RL gain, {line}" for line in rl_gain_lines(metrics)] + (
            [f"held-out entropy / perplexity: {heldout}"] if heldout else []
        )
    return [
        f"{label}: RL gain, {gains[0]}"
        for label, metrics in labelled_metrics
        for gains in [rl_gain_lines(metrics or {})]
        if gains
    ]


def comparison_line(c: dict) -> str:
    """'objective.beta=-0.25 - baseline, eval.count.pass@4: +0.031 [-0.012, 0.074] over 4
    seeds: no detectable difference'."""
    arm = ", ".join(f"{path}={value}" for path, value in c["arm"].items())
    return (
        f"{arm} - baseline, {c['metric']}: {diff_with_interval(c)} over {c['seeds']} "
        f"seed(s): {c['decision']}"
    )
