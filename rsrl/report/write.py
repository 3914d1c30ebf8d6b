"""Write a report: the PNGs, then report.html with them embedded, into one directory."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path

from matplotlib.figure import Figure

from rsrl.eval.compare import diff_with_interval
from rsrl.files import write_text_atomic
from rsrl.layout import MODEL_STAGES, TRAINING_STAGES
from rsrl.report.findings import summary
from rsrl.report.html import Section, render_page
from rsrl.report.plots import (
    RL_PANELS,
    TRAINING_PANELS,
    curves_figure,
    experts_figure,
    forest_figure,
    harness_figure,
    heldout_figure,
    pass_at_k_figure,
    rl_curve_figure,
)
from rsrl.report.runs import Run
from rsrl.report.tables import (
    experts_table,
    harness_table,
    heldout_table,
    last_step_table,
    rl_gain_table,
    suite_table,
)

REPORT_FILE = "report.html"
EXPERTS_CAPTION = (
    "Experts: load per MoE layer at the last logged step (MaxVio 0 and load entropy 1 are "
    "balanced; routing agreement with the rollout engine, 1.0 under routing replay)"
)
DPI = 110


def write_report(
    runs: Sequence[Run],
    out_dir: Path,
    title: str = "rsrl report",
    comparisons: Sequence[dict] = (),
) -> Path:
    """Draw what `runs` have into `out_dir`; return the path of its report.html.
    `comparisons`: a sweep's arms against its baseline (`rsrl.sweep.compare_to_baseline`),
    drawn as a forest plot per metric."""
    out_dir.mkdir(parents=True, exist_ok=True)
    suites = list(dict.fromkeys(s for run in runs if run.eval for s in run.eval.get("suites", {})))
    sections = [*_comparison_sections(out_dir, comparisons)]
    sections += [
        Section(
            "Results",
            tables=(
                ("eval suites: mean ± standard error over problems", suite_table(runs)),
                ("RL gain: after - before RL, paired by problem", rl_gain_table(runs)),
                ("held-out text, by checkpoint", heldout_table(runs)),
                (
                    "lm-evaluation-harness, by checkpoint: value ± standard error",
                    harness_table(runs),
                ),
                (
                    "training, last logged step",
                    last_step_table(runs, TRAINING_STAGES, TRAINING_PANELS),
                ),
                ("RL, last logged step", last_step_table(runs, ("rl",), RL_PANELS)),
            ),
            missing="no results yet: no stage has logged anything",
        ),
        Section(
            "Held-out text by checkpoint",
            figures=_save(out_dir, "heldout", heldout_figure(runs)),
            missing="no eval results yet",
        ),
        Section(
            "lm-evaluation-harness by checkpoint",
            figures=_save_each(out_dir, "harness", MODEL_STAGES, lambda c: harness_figure(runs, c)),
            missing="no lm-evaluation-harness results (eval.harness)",
        ),
        *(
            Section(
                title_,
                figures=_save(
                    out_dir, f"train-{stage}", curves_figure(runs, stage, TRAINING_PANELS, title_)
                ),
                missing=f"no run has {stage} metrics",
            )
            for stage, title_ in (("pretrain", "Pre-training"), ("midtrain", "Mid-training"))
        ),
        Section(
            "RL (GRPO)",
            figures=_save(out_dir, "rl", curves_figure(runs, "rl", RL_PANELS, "RL (GRPO)"))
            + _save_each(out_dir, "rl-curve", suites, lambda s: rl_curve_figure(runs, s)),
            missing="no run has RL metrics",
        ),
        *_experts_sections(out_dir, runs),
        Section(
            "Pass@k before and after RL",
            figures=_save_each(out_dir, "passk", suites, lambda s: pass_at_k_figure(runs, s)),
            missing="no eval suite results yet",
        ),
    ]
    path = out_dir / REPORT_FILE
    opening = summary([(run.label, run.eval) for run in runs], list(comparisons))
    write_text_atomic(path, render_page(title, runs, sections, opening))
    return path


def _comparison_sections(out_dir: Path, comparisons: Sequence[dict]) -> list[Section]:
    if not comparisons:
        return []
    metrics = list(dict.fromkeys(c["metric"] for c in comparisons))
    rows = [
        {
            "arm": ", ".join(f"{path}={value}" for path, value in c["arm"].items()),
            "metric": c["metric"],
            "arm - baseline [95% CI]": diff_with_interval(c),
            "p (Holm)": c["p_holm"],
            "decision": c["decision"],
            "seeds": c["seeds"],
        }
        for c in comparisons
    ]
    figures = _save_each(out_dir, "forest", metrics, lambda m: forest_figure(comparisons, m))
    return [
        Section(
            "Arms against the baseline",
            tables=(("paired by seed; decisions on Holm-adjusted p", rows),),
            figures=figures,
        )
    ]


def _experts_sections(out_dir: Path, runs: Sequence[Run]) -> list[Section]:
    """MoE expert load, only when some run logs it: a dense report stays as it was."""
    rows = experts_table(runs)
    if not rows:
        return []
    figures = _save_each(out_dir, "experts", MODEL_STAGES, lambda s: experts_figure(runs, s))
    return [Section("Experts (MoE)", tables=((EXPERTS_CAPTION, rows),), figures=figures)]


def _save_each(
    out_dir: Path, prefix: str, names: Sequence[str], draw: Callable[[str], Figure | None]
) -> tuple[Path, ...]:
    """`draw(name)` for each of `names`, saved as <prefix>-<name>.png where it drew one."""
    return tuple(png for name in names for png in _save(out_dir, f"{prefix}-{name}", draw(name)))


def _save(out_dir: Path, name: str, fig: Figure | None) -> tuple[Path, ...]:
    if fig is None:
        return ()
    png = out_dir / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}.png"
    fig.savefig(png, dpi=DPI, bbox_inches="tight")  # long legends (sweeps) stay whole
    return (png,)
