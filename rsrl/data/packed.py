"""The packed rows a data stage writes, and how training reads them.

On disk, under the stage directory:
- `rows-00000.npy`, ...: int32 arrays [n, seq_len + 1], `rows_per_shard` rows each (the
  last may hold fewer). A row is seq_len + 1 consecutive tokens of the source's token
  stream, documents separated by EOS, so inputs = row[:-1] and targets = row[1:].
- `meta.json` (written last: its presence means the rows are complete): seq_len, num_rows,
  rows_per_shard, shards, eos_id, pad_id, vocab_size, reset_position_ids and, per source,
  its rows and how much of it was read (see `rsrl.data.prepare`).

Data-parallel workers split the rows with `shard_indices`, which never gives a row to two
ranks; `rsrl.data.loader.PackedLoader` adds micro-batches and a checkpointable position.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rsrl.data.encode import TOKEN_DTYPE
from rsrl.data.mixture import rank_within_source
from rsrl.files import names_full_disk

META = "meta.json"
SHARD_BYTES = 64 * 2**20


def shard_name(index: int) -> str:
    return f"rows-{index:05d}.npy"


def default_rows_per_shard(seq_len: int) -> int:
    return max(1, SHARD_BYTES // (np.dtype(TOKEN_DTYPE).itemsize * (seq_len + 1)))


def write_rows(
    out_dir: Path,
    streams: Sequence[np.ndarray],
    order: np.ndarray,
    seq_len: int,
    rows_per_shard: int,
) -> list[str]:
    """Write the rows `order` asks for (row k comes from source order[k]) as .npy shards.

    Source i's j-th row is tokens [j * (seq_len+1), (j+1) * (seq_len+1)) of streams[i];
    a stream shorter than its rows need wraps around (the source cycles).
    """
    width = seq_len + 1
    ranks = rank_within_source(order, len(streams))
    names = []
    for shard, start in enumerate(range(0, len(order), rows_per_shard)):
        part = slice(start, start + rows_per_shard)
        rows = np.empty((len(order[part]), width), dtype=TOKEN_DTYPE)
        for i, stream in enumerate(streams):
            mine = order[part] == i
            if mine.any():
                offsets = ranks[part][mine, None] * width + np.arange(width)
                rows[mine] = np.take(stream, offsets, mode="wrap")
        names.append(shard_name(shard))
        with names_full_disk(out_dir / names[-1]):
            np.save(out_dir / names[-1], rows)
    return names


def position_ids(tokens: np.ndarray, eos_id: int) -> np.ndarray:
    """Positions that restart at 0 after every EOS (and at the start of each row).

    `tokens` is [..., T], normally the inputs row[:-1]; the EOS ending a document keeps its
    document's position, the token after it starts the next at 0.
    """
    length = tokens.shape[-1]
    starts = np.zeros(tokens.shape, dtype=bool)
    starts[..., 0] = True
    starts[..., 1:] = tokens[..., :-1] == eos_id
    steps = np.arange(length)
    last_start = np.maximum.accumulate(np.where(starts, steps, 0), axis=-1)
    return steps - last_start


def shard_indices(num_rows: int, rank: int, world_size: int, block: int = 1) -> np.ndarray:
    """The rows data-parallel rank `rank` of `world_size` reads, in order.

    Rows are dealt in blocks of `block` (a micro-batch): global step s covers rows
    [s*world_size*block, (s+1)*world_size*block) and rank r gets its r-th block. The last
    rows that do not fill a whole step (fewer than world_size*block) are left out, so
    every rank gets the same number and no row goes to two ranks.
    """
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in [0, {world_size})")
    step = world_size * block
    usable = num_rows // step * step
    return np.arange(usable).reshape(-1, world_size, block)[:, rank, :].reshape(-1)


class PackedDataset:
    """Read-only view of a finished data stage's rows (memory-mapped, shard by shard)."""

    def __init__(self, stage_dir: str | Path):
        self.dir = Path(stage_dir)
        meta_path = self.dir / META
        if not meta_path.is_file():
            raise FileNotFoundError(f"{self.dir} holds no finished data stage (no {META})")
        self.meta: dict = json.loads(meta_path.read_text())
        self.seq_len: int = self.meta["seq_len"]
        self.eos_id: int = self.meta["eos_id"]
        self.pad_id: int | None = self.meta.get("pad_id")
        self.reset_position_ids: bool = self.meta.get("reset_position_ids", False)
        self._rows_per_shard: int = self.meta["rows_per_shard"]
        self._shards: list[str] = self.meta["shards"]
        self._open: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return self.meta["num_rows"]

    def __getstate__(self) -> dict:  # memory maps stay behind when sent to a Ray worker
        return {**self.__dict__, "_open": {}}

    def rows(self, start: int, stop: int) -> np.ndarray:
        """Rows [start, stop) as int32 [stop - start, seq_len + 1]."""
        return self.take(np.arange(start, stop))

    def take(self, indices: np.ndarray) -> np.ndarray:
        """Rows at `indices` (any order) as int32 [len(indices), seq_len + 1]."""
        indices = np.asarray(indices, dtype=np.int64)
        if len(indices) and (indices.min() < 0 or indices.max() >= len(self)):
            raise IndexError(f"rows {indices.min()}..{indices.max()} outside [0, {len(self)})")
        out = np.empty((len(indices), self.seq_len + 1), dtype=TOKEN_DTYPE)
        shard_of = indices // self._rows_per_shard
        for shard in np.unique(shard_of):
            mine = shard_of == shard
            out[mine] = self._shard(int(shard))[indices[mine] - shard * self._rows_per_shard]
        return out

    def position_ids(self, tokens: np.ndarray) -> np.ndarray:
        return position_ids(tokens, self.eos_id)

    def _shard(self, index: int) -> np.ndarray:
        if index not in self._open:
            self._open[index] = np.load(self.dir / self._shards[index], mmap_mode="r")
        return self._open[index]
