"""Human-readable tables of a plan and of what an apply did."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from rsrl.pipeline.cache import Status, manifest_problem, stage_status
from rsrl.pipeline.plan import Plan
from rsrl.pipeline.progress import duration

if TYPE_CHECKING:  # apply.py imports Ray; showing a plan must not
    from rsrl.pipeline.apply import StageOutcome


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(r: Sequence[str]) -> str:
        return "  " + "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()

    return "\n".join([line(header), *map(line, rows)])


def format_plan(plan: Plan) -> str:
    rows = [
        (
            s.name,
            s.key,
            stage_status(s, plan.workdir).value,
            s.resources.describe(),
            ", ".join(s.inputs) or "-",
        )
        for s in plan.stages
    ]
    title = f"plan for '{plan.spec.name}' in {plan.workdir}"
    notes = [
        f"{s.name} is broken: {manifest_problem(s, s.out_dir(plan.workdir))}; `rsrl apply` "
        "runs it again, keeping what its directory holds"
        for s in plan.stages
        if stage_status(s, plan.workdir) is Status.BROKEN
    ]
    table = _table(("stage", "key", "status", "resources", "needs"), rows)
    return "\n".join([title, table, *notes])


def format_outcomes(outcomes: list[StageOutcome], seconds: float) -> str:
    """One line of what ran, then a row per cached stage: those that ran have had their end
    lines already."""
    cached = [o for o in outcomes if o.seconds == 0.0]
    ran = len(outcomes) - len(cached)
    title = f"done in {duration(seconds)}: {ran} stage(s) ran, {len(cached)} cached"
    if not cached:
        return title
    rows = [(o.stage, "cached", str(o.out_dir)) for o in cached]
    return f"{title}\n" + _table(("stage", "", "output"), rows)
