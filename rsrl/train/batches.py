"""How one optimizer step's rows split into workers and micro-batches."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BatchLayout:
    micro_batch_size: int  # rows per worker per forward pass
    grad_accum: int  # micro-batches per worker per optimizer step
    world_size: int

    @property
    def rows_per_step(self) -> int:
        return self.micro_batch_size * self.grad_accum * self.world_size

    @classmethod
    def for_budget(
        cls, batch_tokens: int, seq_len: int, micro_batch_size: int, world_size: int
    ) -> BatchLayout:
        """The layout closest to `batch_tokens` per step (at least one micro-batch per worker)."""
        micro = min(micro_batch_size, max(1, batch_tokens // (seq_len * world_size)))
        accum = max(1, round(batch_tokens / (seq_len * micro * world_size)))
        return cls(micro_batch_size=micro, grad_accum=accum, world_size=world_size)
