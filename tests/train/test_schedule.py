"""The warmup-stable-decay learning rate."""

import pytest

from rsrl.train.config import LRSpec
from rsrl.train.schedule import wsd_lr


def rates(total: int, **lr) -> list[float]:
    return [wsd_lr(step, total, LRSpec(**lr)) for step in range(total)]


def test_warmup_then_stable_then_decay():
    got = rates(10, peak=1.0, final=0.5, warmup_steps=2, decay_fraction=0.4)
    assert got[:2] == [0.5, 1.0] and got[2:6] == [1.0] * 4
    assert all(a > b for a, b in zip(got[5:], got[6:])) and got[-1] > 0.5


def test_decay_to_zero_keeps_the_last_step_above_zero():
    """With final 0 the last step used to get lr 0: a whole step that changed nothing."""
    got = rates(4, peak=1.0, final=0.0, decay_fraction=1.0)
    assert got == pytest.approx([0.8, 0.6, 0.4, 0.2])


def test_no_decay_stays_at_peak():
    assert rates(5, peak=2.0, final=0.1, warmup_steps=1) == [2.0] * 5
