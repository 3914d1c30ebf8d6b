"""The training stages' sections (`stages.pretrain`, `stages.midtrain`) and `resources:`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from rsrl.config import NOT_IN_KEY, Problems, check_choices
from rsrl.data.config import DataSourceSpec, check_sources
from rsrl.objective.config import ObjectiveSpec

Schedule = Literal["wsd"]  # warmup-stable-decay
Precision = Literal["fp32", "bf16"]
TORCH_DTYPES: dict[str, str] = {"fp32": "float32", "bf16": "bfloat16"}  # Precision -> dtype


@dataclass
class LRSpec:
    peak: float = 3.0e-4
    final: float = 3.0e-4
    warmup_steps: int = 0
    schedule: Schedule = "wsd"
    decay_fraction: float = 0.0  # share of the steps spent decaying from peak to final

    def check(self, path: str) -> list[str]:
        p = Problems(path)
        check_choices(self, p)
        p.need(self.peak > 0, "peak", self.peak, "must be > 0")
        p.need(
            0 <= self.final <= self.peak, "final", self.final, f"must be in [0, peak={self.peak}]"
        )
        p.need(self.warmup_steps >= 0, "warmup_steps", self.warmup_steps, "must be >= 0")
        p.need(
            0 <= self.decay_fraction <= 1,
            "decay_fraction",
            self.decay_fraction,
            "must be in [0, 1]",
        )
        return p.lines


@dataclass
class TrainStageSpec:
    # Not in the stage's key: the data stage it reads is, through its own key.
    data: list[DataSourceSpec] = field(default_factory=list, metadata=NOT_IN_KEY)
    tokens: int = 0  # token budget of the stage
    seq_len: int = 256
    batch_tokens: int = 8192  # tokens per optimizer step (across workers)
    micro_batch_size: int = field(default=4, metadata=NOT_IN_KEY)  # sequences per forward pass
    lr: LRSpec = field(default_factory=LRSpec)
    rope_theta: float = 10000.0
    reset_position_ids: bool = False  # restart positions at each document inside a packed row
    objective: dict[str, Any] | None = None  # keys of `objective:` this stage overrides
    # CPUs per training worker in this stage, instead of resources.cpus_per_worker: a
    # training stage may take every core while RL's trainer shares them with its rollout actors.
    cpus_per_worker: float | None = field(default=None, metadata=NOT_IN_KEY)
    log_every: int = field(default=10, metadata=NOT_IN_KEY)
    checkpoint_every: int = field(default=100, metadata=NOT_IN_KEY)  # optimizer steps
    keep_checkpoints: int = field(default=2, metadata=NOT_IN_KEY)

    def objective_over(self, top: ObjectiveSpec) -> ObjectiveSpec:
        """The objective this stage trains with: `top` with this stage's keys laid over it."""
        return top.overridden_by(self.objective)

    def check(self, path: str, top: ObjectiveSpec, num_workers: int) -> list[str]:
        p = Problems(path)
        p.lines += check_sources(self.data, f"{path}.data")
        p.at_least(self, ("tokens", "seq_len", "rope_theta"), 0, strict=True)
        p.need(
            self.batch_tokens >= self.seq_len,
            "batch_tokens",
            self.batch_tokens,
            f"must be >= seq_len ({self.seq_len})",
        )
        p.at_least(self, ("micro_batch_size",), 1, strict=False)
        p.need(
            self.cpus_per_worker is None or self.cpus_per_worker > 0,
            "cpus_per_worker",
            self.cpus_per_worker,
            "must be > 0 (or unset: resources.cpus_per_worker)",
        )
        p.lines += self.lr.check(f"{path}.lr")
        self._check_warmup_before_decay(num_workers, p)
        p.at_least(self, ("log_every", "checkpoint_every", "keep_checkpoints"), 1, strict=False)
        if self.objective:
            try:
                p.lines += self.objective_over(top).check(f"{path}.objective")
            except Exception as err:  # OmegaConf: unknown key or wrong type in the override
                p.add("objective", f"not a valid objective override: {err}".splitlines()[0])
        return p.lines

    def _check_warmup_before_decay(self, workers: int, p: Problems) -> None:
        """Warm-up running into the decay window would drop the rate from one line to the other."""
        from rsrl.data.mixture import rows_for_budget
        from rsrl.train.batches import BatchLayout
        from rsrl.train.schedule import decay_start

        if self.lr.decay_fraction <= 0 or not (
            self.tokens > 0
            and 0 < self.seq_len <= self.batch_tokens
            and self.micro_batch_size >= 1
            and workers >= 1
        ):
            return  # nothing to decay, or the step count is unknown (reported above)
        layout = BatchLayout.for_budget(
            self.batch_tokens, self.seq_len, self.micro_batch_size, workers
        )
        steps = rows_for_budget(self.tokens, self.seq_len) // layout.rows_per_step
        start = decay_start(steps, self.lr)
        p.need(
            self.lr.warmup_steps <= start,
            "lr.warmup_steps",
            self.lr.warmup_steps,
            f"must be <= {start}: the stage has {steps} steps (tokens / batch_tokens) and "
            f"decays over the last {steps - start} (lr.decay_fraction); lower "
            "lr.warmup_steps or lr.decay_fraction",
        )


@dataclass
class DeepSpeedSpec:
    zero_stage: int = 2
    precision: Precision = "fp32"
    offload_optimizer: bool = False
    grad_clip: float = 1.0
    weight_decay: float = 0.1
    # ZeRO-3 keeps parameters of at most this many elements whole on every worker (DeepSpeed's
    # stage3_param_persistence_threshold; unset: its default); 0 partitions every one.
    param_persistence_threshold: int | None = field(default=None, metadata=NOT_IN_KEY)

    def torch_dtype(self) -> str:
        return TORCH_DTYPES[self.precision]


@dataclass
class ResourcesSpec:
    num_workers: int = 1
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    max_failures: int = 1  # worker-group restarts (from the last checkpoint) before a stage fails
    deepspeed: DeepSpeedSpec = field(default_factory=DeepSpeedSpec)

    def check(self, path: str = "resources") -> list[str]:
        p = Problems(path)
        p.at_least(self, ("num_workers",), 1, strict=False)
        p.at_least(self, ("cpus_per_worker", "gpus_per_worker", "max_failures"), 0, strict=False)
        ds = self.deepspeed
        d = Problems(f"{path}.deepspeed")
        check_choices(ds, d)
        d.need(ds.zero_stage in (0, 1, 2, 3), "zero_stage", ds.zero_stage, "must be 0, 1, 2 or 3")
        d.at_least(ds, ("grad_clip",), 0, strict=True)
        d.at_least(ds, ("weight_decay",), 0, strict=False)
        threshold = ds.param_persistence_threshold
        d.need(
            threshold is None or threshold >= 0,
            "param_persistence_threshold",
            threshold,
            "must be >= 0 (or unset: DeepSpeed's default)",
        )
        return p.lines + d.lines
