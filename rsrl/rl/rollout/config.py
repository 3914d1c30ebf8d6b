"""`rl.rollout`: the engines that sample RL's groups, and how new weights reach them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from rsrl.config import NOT_IN_KEY, Problems, check_choices

Engine = Literal["vllm", "hf"]
# auto: collective wherever torch.distributed can build the group (rl.rollout.weight_sync)
WeightSync = Literal["auto", "object_store", "collective"]
RolloutDtype = Literal["auto", "float32", "bfloat16"]  # auto: the trainer's precision


@dataclass
class RolloutSpec:
    engine: Engine = "vllm"
    actors: int = 1
    cpus_per_actor: float = 1.0
    gpus_per_actor: float = 0.0
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 64
    # The engines' precision (auto: resources.deepspeed.precision). A bf16 engine does not
    # sample from the fp32 trainer's policy: see rl.off_policy.
    dtype: RolloutDtype = "auto"
    # New weights go to the engines after every update (not in the stage key: every sync is
    # verified by weight fingerprints): collective streams buckets over a process group of
    # trainer rank 0 and the engines, object_store puts the full state dict into Ray's
    # object store; auto is collective wherever it works.
    weight_sync: WeightSync = field(default="auto", metadata=NOT_IN_KEY)
    # collective: the bytes gathered and broadcast at a time
    sync_bucket_mb: int = field(default=512, metadata=NOT_IN_KEY)
    # a sync (or forming its group) running longer fails the stage
    sync_timeout_s: float = field(default=600.0, metadata=NOT_IN_KEY)

    def engine_dtype(self, trainer_dtype: str) -> str:
        """The engines' dtype: `dtype`, with auto following the trainer's (so a bf16 trainer
        samples from a bf16 engine, as on GPUs)."""
        return trainer_dtype if self.dtype == "auto" else self.dtype

    def check(self, path: str = "rl.rollout") -> list[str]:
        p = Problems(path)
        check_choices(self, p)
        p.at_least(self, ("actors", "sync_bucket_mb"), 1, strict=False)
        p.at_least(self, ("sync_timeout_s",), 0, strict=True)
        p.lines += check_sampling(self, path)
        return p.lines


def check_sampling(section: Any, path: str) -> list[str]:
    """temperature, top_p and max_new_tokens of a section that samples (rollouts, eval suites)."""
    p = Problems(path)
    p.need(section.temperature > 0, "temperature", section.temperature, "must be > 0")
    p.need(0 < section.top_p <= 1, "top_p", section.top_p, "must be in (0, 1]")
    p.need(section.max_new_tokens >= 1, "max_new_tokens", section.max_new_tokens, "must be >= 1")
    return p.lines
