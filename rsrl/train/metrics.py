"""Training metrics as one component: JSONL and TensorBoard under the stage directory."""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from pathlib import Path

from rsrl.files import names_full_disk, read_jsonl, write_text_atomic
from rsrl.layout import STEP_METRICS, TENSORBOARD

log = logging.getLogger("rsrl")

# bf16 dense peak FLOP/s per GPU, for MFU; unknown devices report no MFU.
PEAK_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12}


def peak_flops(device_name: str) -> float | None:
    return next((flops for key, flops in PEAK_FLOPS.items() if key in device_name), None)


class MetricsWriter:
    """Appends one JSON line per logged step (with `total_steps`, so the driver can draw
    progress from the file, and `time`, the wall clock in seconds since the epoch) and
    prints a headline; a resume drops lines past its step. Each record also goes to the
    stage's experiment trackers when the spec has `logging:` (rsrl/tracking/stage.py)."""

    def __init__(
        self,
        stage_dir: Path,
        resume_step: int,
        label: str,
        total_steps: int,
        headline: tuple[str, ...],
    ):
        self.label, self.total_steps, self.headline = label, total_steps, headline
        self.path = stage_dir / STEP_METRICS
        self._truncate_after(resume_step)
        from torch.utils.tensorboard import SummaryWriter

        self.tb_dir = stage_dir / TENSORBOARD
        with names_full_disk(self.tb_dir):
            self.tb = SummaryWriter(log_dir=str(self.tb_dir), purge_step=resume_step + 1)
        from rsrl.tracking.stage import StepFeed

        self.trackers = StepFeed.find(stage_dir)

    def _truncate_after(self, step: int) -> None:
        """Keep the lines up to `step`; a line cut off by a kill mid-write is dropped."""
        if not self.path.exists():
            return
        kept = []
        for line in filter(None, self.path.read_text().splitlines()):
            try:
                logged = json.loads(line)["step"]
            except (ValueError, KeyError, TypeError):
                log.warning("%s: dropped a line cut off mid-write: %.80s", self.path, line)
                continue
            if logged <= step:
                kept.append(line)
        write_text_atomic(self.path, "".join(line + "\n" for line in kept))  # a full disk
        # leaves the old lines

    def write(self, record: dict) -> None:
        record = {**record, "total_steps": self.total_steps, "time": time.time()}
        with names_full_disk(self.path), open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        shown = " ".join(f"{k} {record[k]:.4g}" for k in self.headline if k in record)
        # The process's own stdout: Ray Train's patched print would log it and echo it.
        print(
            f"{self.label} step {record['step']}/{self.total_steps} {shown}",
            file=sys.__stdout__,
            flush=True,
        )
        with names_full_disk(self.tb_dir):  # its writer thread's error comes back here
            for name, value in record.items():
                if (
                    name not in ("step", "time")
                    and isinstance(value, (int, float))
                    and math.isfinite(value)
                ):
                    self.tb.add_scalar(name, value, record["step"])
            self.tb.flush()
        if self.trackers:
            self.trackers.send(record)

    def close(self) -> None:
        with names_full_disk(self.tb_dir):
            self.tb.close()
        if self.trackers:
            self.trackers.flush()


def sum_across_workers(values: dict[str, float]) -> dict[str, float]:
    """Each number summed over the data-parallel workers (identity outside a process group)."""
    import torch
    import torch.distributed as dist

    names = sorted(values)
    tensor = torch.tensor([values[n] for n in names], dtype=torch.float64)
    if dist.is_initialized():
        dist.all_reduce(tensor)
    return dict(zip(names, tensor.tolist()))


def read_metrics(stage_dir: Path) -> list[dict]:
    return read_jsonl(Path(stage_dir) / STEP_METRICS)
