"""Learning-rate schedules the spec must refuse before anything runs."""

from pathlib import Path

import pytest

from rsrl.spec import SpecError, load_spec

BASE = Path(__file__).parent / "base.yaml"  # pretrain: 10000 tokens / 256 per step = 39 steps


def test_warmup_into_the_decay_window_is_rejected():
    with pytest.raises(
        SpecError,
        match=r"stages\.pretrain\.lr\.warmup_steps: must be <= 19: "
        r"the stage has 39 steps .* decays over the last 20",
    ):
        load_spec(
            BASE, ["stages.pretrain.lr.warmup_steps=20", "stages.pretrain.lr.decay_fraction=0.5"]
        )


def test_warmup_ending_where_decay_starts_is_fine():
    load_spec(BASE, ["stages.pretrain.lr.warmup_steps=19", "stages.pretrain.lr.decay_fraction=0.5"])
    load_spec(BASE, ["stages.pretrain.lr.warmup_steps=50"])  # no decay: nothing to overlap
