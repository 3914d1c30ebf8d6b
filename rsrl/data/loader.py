"""Micro-batches of packed rows for one data-parallel rank, with a checkpointable position.

The position is counted in global rows consumed (all ranks together), so a resume may
even change the world size or micro-batch size, as long as the rows consumed so far fill
whole steps of the new layout.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from rsrl.data.packed import PackedDataset, shard_indices


class PackedLoader:
    """Yields {"input_ids", "labels"[, "position_ids"]} int64 tensors [micro_batch, seq_len].

    Global step s reads rows [s * world_size * micro_batch_size, ...) and this rank its
    own micro-batch of them (`shard_indices`). Iteration ends after the last whole step.
    """

    def __init__(
        self,
        dataset: PackedDataset,
        micro_batch_size: int,
        rank: int = 0,
        world_size: int = 1,
        reset_position_ids: bool | None = None,
    ):
        self.dataset = dataset
        self.micro_batch_size = micro_batch_size
        self.world_size = world_size
        self.reset_position_ids = (
            dataset.reset_position_ids if reset_position_ids is None else reset_position_ids
        )
        self._indices = shard_indices(len(dataset), rank, world_size, micro_batch_size)
        self.step = 0  # micro-batches this rank has consumed

    def __len__(self) -> int:
        """Micro-batches per rank in one pass."""
        return len(self._indices) // self.micro_batch_size

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        while self.step < len(self):
            yield self.next_batch()

    def next_batch(self) -> dict[str, torch.Tensor]:
        if self.step >= len(self):
            raise IndexError(f"all {len(self)} micro-batches of this rank are used up")
        m = self.micro_batch_size
        rows = self.dataset.take(self._indices[self.step * m : (self.step + 1) * m])
        self.step += 1
        batch = {
            "input_ids": torch.from_numpy(rows[:, :-1].astype("int64")),
            "labels": torch.from_numpy(rows[:, 1:].astype("int64")),
        }
        if self.reset_position_ids:
            positions = self.dataset.position_ids(rows[:, :-1])
            batch["position_ids"] = torch.from_numpy(positions.astype("int64"))
        return batch

    @property
    def rows_consumed(self) -> int:
        """Global rows consumed by all ranks together."""
        return self.step * self.micro_batch_size * self.world_size

    def state_dict(self) -> dict:
        return {"rows_consumed": self.rows_consumed}

    def load_state_dict(self, state: dict) -> None:
        per_step = self.micro_batch_size * self.world_size
        rows = int(state["rows_consumed"])
        if rows % per_step:
            raise ValueError(
                f"cannot resume at row {rows}: not a whole number of steps of "
                f"{per_step} rows (micro_batch_size x world_size)"
            )
        self.step = rows // per_step
