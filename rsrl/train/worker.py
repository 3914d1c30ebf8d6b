"""What every stage's worker function does around its algorithm (training and RL alike).

    worker = StageWorker(stage_dir, rank, report, ...)  # seeds torch, starts the set-up clock
    engine, state = worker.start_engine(module, ...)    # DeepSpeed, resumed from a checkpoint
    while step < total_steps:
        ...one step of the algorithm...
        worker.log(record)                              # steps.jsonl (rank 0) and Ray
        worker.maybe_checkpoint(step, client_state)     # every `checkpoint_every` steps
    worker.finish(step, tokenizer, client_state)        # last checkpoint, HF export, timings

Rank 0 records in timings.json the set-up (model, optimizer, DeepSpeed engine and resume,
before the first step) and the final checkpoint + export; benchmarks/ read those keys.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from rsrl.layout import HF_EXPORT
from rsrl.runtime import Report, Timings, import_deepspeed
from rsrl.train.batches import BatchLayout
from rsrl.train.checkpoint import export_hf, load_checkpoint, save_checkpoint
from rsrl.train.config import DeepSpeedSpec
from rsrl.train.metrics import MetricsWriter

if TYPE_CHECKING:  # the driver imports this module too: no DeepSpeed or transformers there
    from deepspeed import DeepSpeedEngine
    from transformers import PreTrainedTokenizerBase


class StageWorker:
    """One worker's run of a stage: its DeepSpeed engine, metrics and checkpoints.

    Made first thing in the worker, so that the seed comes before anything random and the
    set-up clock covers building the model; `start_engine` then makes the engine."""

    def __init__(
        self,
        stage_dir: Path,
        rank: int,
        report: Report | None,
        *,
        label: str,
        total_steps: int,
        checkpoint_every: int,
        keep_checkpoints: int,
        headline: tuple[str, ...],
        seed: int,
    ) -> None:
        self.setup_started = time.time()
        torch.manual_seed(seed)
        self.stage_dir, self.rank, self.report = stage_dir, rank, report
        self.label, self.total_steps, self.headline = label, total_steps, headline
        self.checkpoint_every, self.keep_checkpoints = checkpoint_every, keep_checkpoints
        self.metrics: MetricsWriter | None = None

    def start_engine(
        self,
        module: nn.Module,
        weight_decay: float,
        ds: DeepSpeedSpec,
        layout: BatchLayout,
    ) -> tuple[DeepSpeedEngine, dict[str, Any]]:
        """The DeepSpeed engine over `module`, restored from the stage's newest checkpoint,
        and that checkpoint's client state (`{"step": 0}` when there is none)."""
        deepspeed = import_deepspeed()

        from rsrl.models.moe import bias_kept_fp32
        from rsrl.train.ds_config import deepspeed_config
        from rsrl.train.optimizer import build_optimizer

        optimizer = build_optimizer(module, weight_decay, offload=ds.offload_optimizer)
        config = deepspeed_config(ds, layout)
        ds_started = time.time()
        with bias_kept_fp32(module):  # a bf16 engine casts every buffer
            self.engine, *_ = deepspeed.initialize(model=module, optimizer=optimizer, config=config)
        ds_seconds = time.time() - ds_started
        state = load_checkpoint(self.engine, self.stage_dir)
        if self.rank == 0:
            Timings(self.stage_dir).record(
                setup_seconds=time.time() - self.setup_started,
                deepspeed_init_seconds=ds_seconds,
                resumed_at_step=state["step"],
            )
            # Opened at the resumed step: it drops the lines a killed run logged past it.
            self.metrics = MetricsWriter(
                self.stage_dir, state["step"], self.label, self.total_steps, self.headline
            )
        return self.engine, state

    def log(self, record: dict) -> None:
        """One step's record: a line of steps.jsonl (rank 0) and a Ray Train report."""
        if self.metrics:
            self.metrics.write(record)
        if self.report:
            self.report(record)

    def checkpoints_at(self, step: int) -> bool:
        """A checkpoint every `checkpoint_every` steps; the last step's is `finish`'s."""
        return step % self.checkpoint_every == 0 and step < self.total_steps

    def maybe_checkpoint(self, step: int, client_state: dict | None = None) -> None:
        """Collective. `checkpoint(step, client_state)` where `checkpoints_at(step)`."""
        if self.checkpoints_at(step):
            self.checkpoint(step, client_state)

    def checkpoint(self, step: int, client_state: dict | None = None) -> None:
        """Collective. `client_state` comes back from `start_engine` on a resume."""
        save_checkpoint(
            self.engine, self.stage_dir, step, self.keep_checkpoints, self.rank, client_state
        )

    def finish(
        self, step: int, tokenizer: PreTrainedTokenizerBase, client_state: dict | None = None
    ) -> None:
        """Collective. The last checkpoint and the HF export (the stage's output)."""
        steps_finished = time.time()
        self.checkpoint(step, client_state)
        export_hf(self.engine, tokenizer, self.stage_dir / HF_EXPORT, self.rank)
        if self.metrics:
            self.metrics.close()
        if self.rank == 0:
            Timings(self.stage_dir).record(
                steps_finished=steps_finished,
                checkpoint_export_seconds=time.time() - steps_finished,
            )
