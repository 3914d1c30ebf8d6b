"""Which checkpoint a resume picks when `checkpoints/latest.json` is damaged, on real files laid
out as rsrl.train.checkpoint writes them (DeepSpeed's files under checkpoints/step-NNNNNN/)."""

import json
import logging
from pathlib import Path

import pytest
import torch

from rsrl.train.checkpoint import LATEST, latest_checkpoint


def write_checkpoint(stage_dir: Path, step: int, tag: str | None = None) -> Path:
    """A checkpoint directory as DeepSpeed leaves it: model states and optimizer shards."""
    path = stage_dir / "checkpoints" / (tag or f"step-{step:06d}")
    path.mkdir(parents=True)
    torch.save({"module": {"w": torch.ones(2)}, "step": step}, path / "mp_rank_00_model_states.pt")
    torch.save({"optimizer": {}}, path / "zero_pp_rank_0_mp_rank_00_optim_states.pt")
    return path


def write_latest(stage_dir: Path, step: int) -> Path:
    path = stage_dir / "checkpoints" / LATEST
    path.write_text(json.dumps({"step": step, "tag": f"step-{step:06d}"}, indent=2))
    return path


@pytest.fixture
def stage_dir(tmp_path) -> Path:
    write_checkpoint(tmp_path, 4)
    write_checkpoint(tmp_path, 8)
    write_checkpoint(tmp_path, 12, tag=".tmp-step-000012")  # a crash mid-save
    (tmp_path / "checkpoints" / "step-000016").mkdir()  # no model states: not a checkpoint
    return tmp_path


def test_an_intact_latest_json_is_followed(stage_dir, caplog):
    write_latest(stage_dir, 4)
    with caplog.at_level(logging.WARNING, logger="rsrl"):
        assert latest_checkpoint(stage_dir) == (4, stage_dir / "checkpoints" / "step-000004")
    assert not caplog.records


def test_a_truncated_latest_json_falls_back_to_the_newest_intact_checkpoint(stage_dir, caplog):
    latest = write_latest(stage_dir, 8)
    latest.write_text(latest.read_text()[:9])  # '{\n  "step"'
    with caplog.at_level(logging.WARNING, logger="rsrl"):
        assert latest_checkpoint(stage_dir) == (8, stage_dir / "checkpoints" / "step-000008")
    assert "latest.json is unreadable" in caplog.text
    assert "resuming from the newest intact checkpoint, step-000008" in caplog.text


def test_latest_json_naming_a_missing_checkpoint_falls_back(stage_dir, caplog):
    write_latest(stage_dir, 16)  # step-000016 holds no model states
    with caplog.at_level(logging.WARNING, logger="rsrl"):
        assert latest_checkpoint(stage_dir) == (8, stage_dir / "checkpoints" / "step-000008")
    assert "'step-000016' at step 16, which is not an intact checkpoint" in caplog.text


def test_a_corrupt_latest_json_with_no_checkpoint_beside_it_starts_over(tmp_path, caplog):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / LATEST).write_bytes(b"\x00\x00\x00")
    with caplog.at_level(logging.WARNING, logger="rsrl"):
        assert latest_checkpoint(tmp_path) is None
    assert "training starts from step 0" in caplog.text


def test_no_latest_json_is_a_fresh_start(tmp_path):
    assert latest_checkpoint(tmp_path) is None
