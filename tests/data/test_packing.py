"""Mixture shares, interleaving, packing, position ids, sharding and the checkpointable loader."""

import json

import numpy as np
import pytest

from rsrl.data.loader import PackedLoader
from rsrl.data.mixture import blend_order, rank_within_source, rows_for_budget, split_rows
from rsrl.data.packed import META, PackedDataset, position_ids, shard_indices, write_rows

EOS = 0


def test_budget_and_shares_add_up_exactly():
    assert rows_for_budget(1000, 64) == 16
    assert split_rows(16, [3, 1]) == [12, 4]
    assert split_rows(10, [1, 1, 1]) in ([4, 3, 3], [3, 4, 3], [3, 3, 4])
    assert sum(split_rows(1001, [0.3, 0.5, 0.2])) == 1001
    assert split_rows(7, [1.0]) == [7]


def test_blend_order_is_seeded_and_proportional_in_every_stretch():
    order = blend_order([7500, 2500], seed=0)
    assert np.array_equal(order, blend_order([7500, 2500], seed=0))
    assert not np.array_equal(order, blend_order([7500, 2500], seed=1))
    assert np.bincount(order).tolist() == [7500, 2500]
    for stretch in np.split(order, 10):
        assert 0.70 < np.mean(stretch == 0) < 0.80
    assert rank_within_source(np.array([1, 0, 1, 1, 0]), 2).tolist() == [0, 0, 1, 2, 1]


def test_position_ids_restart_after_each_eos():
    tokens = np.array([[5, 6, EOS, 7, 8, 9, EOS, 4], [EOS, 1, 2, 3, 4, 5, 6, 7]])
    assert position_ids(tokens, EOS).tolist() == [
        [0, 1, 2, 0, 1, 2, 3, 0],
        [0, 0, 1, 2, 3, 4, 5, 6],
    ]


@pytest.mark.parametrize("world_size,block", [(1, 1), (2, 1), (3, 2), (4, 4)])
def test_shards_never_overlap_and_cover_whole_steps(world_size, block):
    num_rows = 103
    shards = [shard_indices(num_rows, r, world_size, block) for r in range(world_size)]
    every = np.concatenate(shards)
    assert len(set(every.tolist())) == len(every)  # no row read by two ranks
    assert len({len(s) for s in shards}) == 1  # same count each
    assert len(every) == num_rows // (world_size * block) * world_size * block
    # rank r's first block is the r-th block of step 0
    assert [s[:block].tolist() for s in shards] == [
        list(range(r * block, (r + 1) * block)) for r in range(world_size)
    ]
    assert sorted(every.tolist()) == list(range(len(every)))


def write_stage(tmp_path, streams, order, seq_len, rows_per_shard, reset=False):
    shards = write_rows(tmp_path, streams, order, seq_len, rows_per_shard)
    (tmp_path / META).write_text(
        json.dumps(
            {
                "seq_len": seq_len,
                "num_rows": len(order),
                "rows_per_shard": rows_per_shard,
                "shards": shards,
                "eos_id": EOS,
                "pad_id": 2,
                "reset_position_ids": reset,
            }
        )
    )
    return PackedDataset(tmp_path)


def test_rows_are_consecutive_stream_slices_and_cycle(tmp_path):
    a = np.arange(100, 110, dtype=np.int32)  # 10 tokens: rows of 4 wrap after 2.5 rows
    b = np.arange(200, 240, dtype=np.int32)
    order = np.array([0, 1, 0, 0, 1])
    data = write_stage(tmp_path, [a, b], order, seq_len=3, rows_per_shard=2)
    assert len(data) == 5 and data.seq_len == 3
    assert sorted(p.name for p in tmp_path.glob("rows-*.npy")) == [
        "rows-00000.npy",
        "rows-00001.npy",
        "rows-00002.npy",
    ]
    assert data.rows(0, 5).tolist() == [
        [100, 101, 102, 103],
        [200, 201, 202, 203],
        [104, 105, 106, 107],
        [108, 109, 100, 101],
        [204, 205, 206, 207],
    ]
    assert data.rows(0, 5).dtype == np.int32
    assert data.take(np.array([4, 0])).tolist() == [[204, 205, 206, 207], [100, 101, 102, 103]]
    with pytest.raises(IndexError):
        data.rows(3, 6)


def test_loader_resumes_where_it_stopped_even_with_another_layout(tmp_path):
    stream = np.arange(1, 1 + 24 * 9, dtype=np.int32)
    stream[::5] = EOS
    data = write_stage(
        tmp_path, [stream], np.zeros(24, dtype=np.int32), seq_len=8, rows_per_shard=5, reset=True
    )
    first = PackedLoader(data, micro_batch_size=2, rank=1, world_size=2)
    assert len(first) == 6
    batch = next(iter(first))
    assert batch["input_ids"].tolist() == data.rows(2, 4)[:, :-1].tolist()
    assert batch["labels"].tolist() == data.rows(2, 4)[:, 1:].tolist()
    assert batch["position_ids"].tolist() == position_ids(data.rows(2, 4)[:, :-1], EOS).tolist()
    next(iter(first))
    state = first.state_dict()
    assert state == {"rows_consumed": 8}

    resumed = PackedLoader(data, micro_batch_size=4, rank=0, world_size=1)
    resumed.load_state_dict(state)
    rest = [b["input_ids"] for b in resumed]
    assert len(rest) == 4 and rest[0].tolist() == data.rows(8, 12)[:, :-1].tolist()
    with pytest.raises(ValueError, match="not a whole number of steps"):
        PackedLoader(data, micro_batch_size=3).load_state_dict(state)
    with pytest.raises(IndexError, match="used up"):
        resumed.next_batch()


def test_loader_leaves_position_ids_out_unless_asked(tmp_path):
    stream = np.arange(1, 100, dtype=np.int32)
    data = write_stage(tmp_path, [stream], np.zeros(4, dtype=np.int32), seq_len=8, rows_per_shard=4)
    assert set(next(iter(PackedLoader(data, 2)))) == {"input_ids", "labels"}
