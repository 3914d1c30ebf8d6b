"""A full disk, for real: files rsrl writes are symlinks to /dev/full (every write there fails
with ENOSPC, as on a full disk). rsrl names the file and says the disk is full."""

import json
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist

from rsrl.data.packed import write_rows
from rsrl.files import DiskFull
from rsrl.layout import STEP_METRICS
from rsrl.train.checkpoint import LATEST, latest_checkpoint, save_checkpoint
from rsrl.train.metrics import MetricsWriter

pytestmark = pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")


def full(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to("/dev/full")
    return path


def assert_names(err: pytest.ExceptionInfo, path: Path) -> None:
    message = str(err.value)
    assert f"could not write {path}: no space left on device" in message, message
    assert "free space" in message and "workdir" in message


def test_metrics_on_a_full_disk_name_the_file(tmp_path):
    writer = MetricsWriter(tmp_path, 0, "pretrain", 10, ("nll",))
    path = full(tmp_path / STEP_METRICS)  # after: reading /dev/full never ends
    with pytest.raises(DiskFull) as err:
        writer.write({"step": 1, "nll": 2.0})
    assert_names(err, path)


def test_packed_rows_on_a_full_disk_name_the_shard(tmp_path):
    shard = full(tmp_path / "rows-00000.npy")
    with pytest.raises(DiskFull) as err:
        write_rows(
            tmp_path,
            [np.arange(1000, dtype=np.int32)],
            np.zeros(4, dtype=np.int64),
            seq_len=15,
            rows_per_shard=8,
        )
    assert_names(err, shard)


class TorchSaveEngine:
    """What DeepSpeed's save_checkpoint does on disk for one rank: torch.save of the model
    state into DIR/TAG/mp_rank_00_model_states.pt."""

    def save_checkpoint(self, save_dir, tag, client_state, save_latest):
        path = Path(save_dir) / tag / "mp_rank_00_model_states.pt"
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"module": {"w": torch.zeros(4096)}, **client_state}, path)


@pytest.fixture
def process_group():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def test_a_checkpoint_on_a_full_disk_names_it_and_keeps_the_previous(tmp_path, process_group):
    engine = TorchSaveEngine()
    save_checkpoint(engine, tmp_path, 10, keep=2, rank=0)
    # The next save's file is on the full disk.
    target = full(tmp_path / "checkpoints" / ".tmp-step-000020" / "mp_rank_00_model_states.pt")
    with pytest.raises(DiskFull) as err:
        save_checkpoint(engine, tmp_path, 20, keep=2, rank=0)
    assert_names(err, target.parent)
    assert latest_checkpoint(tmp_path) == (10, tmp_path / "checkpoints" / "step-000010")
    assert json.loads((tmp_path / "checkpoints" / LATEST).read_text())["step"] == 10
    assert not target.parent.exists()  # the half-written one is gone


def fill_the_disk(job, rank, report=None):
    with open(job.stage_dir / "attempts", "a") as f:
        f.write("attempt\n")
    raise DiskFull(job.stage_dir / "checkpoints" / ".tmp-step-000020")


def test_a_full_disk_is_not_retried(ray_session, tmp_path):
    from types import SimpleNamespace

    from rsrl.train.config import ResourcesSpec
    from rsrl.train.fit import fit

    resources = ResourcesSpec(num_workers=1, gpus_per_worker=0, cpus_per_worker=1, max_failures=2)
    with pytest.raises(DiskFull, match="no space left on device"):
        fit(SimpleNamespace(stage_dir=tmp_path), resources, "full", worker=fill_the_disk)
    assert (tmp_path / "attempts").read_text() == "attempt\n"  # once, not max_failures + 1
