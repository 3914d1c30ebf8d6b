"""`rsrl report WORKDIR [WORKDIR ...]`: one report over several runs, whatever state they are in."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from rsrl.report.workdir import load_workdirs
from rsrl.report.write import write_report

MULTI_RUN_OUT = Path("rsrl-report")  # where a report over several workdirs goes by default


def report_command(workdirs: Sequence[Path], out_dir: Path | None) -> int:
    """Write the report, print its path and every note; 1 when no run has anything to show."""
    runs = load_workdirs(workdirs)
    for run in runs:
        for note in run.notes:
            print(f"rsrl: {run.where} ({run.label}): {note}", file=sys.stderr)
    if all(run.empty for run in runs):
        print(
            "rsrl: nothing to report: no run has logged metrics or eval results yet",
            file=sys.stderr,
        )
        return 1
    out_dir = out_dir or (workdirs[0] / "report" if len(workdirs) == 1 else MULTI_RUN_OUT)
    print(f"report: {write_report(runs, out_dir)}")
    return 0
