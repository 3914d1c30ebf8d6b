"""Progress bars on the driver, drawn from the metrics file each running stage appends to.

Stages run in Ray workers; rather than piping bars through worker logs, the driver reads the
last line of `<stage dir>/metrics.jsonl` (it carries `step` and `total_steps`) about once a
second. Bars appear only on a terminal; logs get the stages' own printed lines instead.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tqdm import tqdm

from rsrl.layout import STEP_METRICS


def last_record(stage_dir: Path) -> dict | None:
    path = stage_dir / STEP_METRICS
    try:
        with open(path, "rb") as f:
            f.seek(max(0, path.stat().st_size - 65536))
            lines = f.read().decode(errors="replace").strip().splitlines()
        return json.loads(lines[-1]) if lines else None
    except (OSError, ValueError):  # not started yet, or a line being written
        return None


class StageProgress:
    def __init__(self, running: dict[str, Path], enabled: bool | None = None):
        self.running = dict(running)
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.bars: dict[str, tqdm] = {}

    def refresh(self) -> None:
        if not self.enabled:
            return
        for name, stage_dir in self.running.items():
            record = last_record(stage_dir)
            if not record or "total_steps" not in record:
                continue
            bar = self.bars.get(name)
            if bar is None:
                bar = self.bars[name] = tqdm(
                    total=record["total_steps"], desc=name, unit="step", leave=True
                )
            bar.update(record["step"] - bar.n)

    def finish(self, name: str) -> None:
        self.refresh()
        self.running.pop(name, None)
        bar = self.bars.pop(name, None)
        if bar is not None:
            bar.close()

    def close(self) -> None:
        for name in list(self.bars):
            self.finish(name)
