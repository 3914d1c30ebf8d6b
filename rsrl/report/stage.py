"""The report stage: the run's report.html and PNGs, from the stage directories it gets."""

from __future__ import annotations

from rsrl.pipeline.registry import StageContext
from rsrl.report.runs import load_run
from rsrl.report.write import write_report


def run_report_stage(ctx: StageContext) -> dict:
    run = load_run(ctx.spec.name, ctx.out_dir.parent, ctx.inputs)
    path = write_report([run], ctx.out_dir, title=f"rsrl report: {ctx.spec.name}")
    return {"report": str(path)}
