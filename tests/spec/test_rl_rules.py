"""RL settings of its own, checked by the spec."""

from pathlib import Path

import pytest

from rsrl.spec import SpecError, load_spec

BASE = Path(__file__).parent / "base.yaml"


def test_rl_has_its_own_weight_decay_default_zero():
    spec = load_spec(BASE)
    assert spec.rl.weight_decay == 0.0 and spec.resources.deepspeed.weight_decay == 0.1
    assert load_spec(BASE, ["rl.weight_decay=0.01"]).rl.weight_decay == 0.01


@pytest.mark.parametrize(
    "override, message",
    [
        ("rl.weight_decay=-0.1", "rl.weight_decay: must be >= 0"),
        ("rl.keep_checkpoints=0", "rl.keep_checkpoints: must be >= 1"),
        ("rl.rollout.sync_bucket_mb=0", "rl.rollout.sync_bucket_mb: must be >= 1"),
        ("rl.rollout.sync_timeout_s=0", "rl.rollout.sync_timeout_s: must be > 0"),
    ],
)
def test_rl_values_out_of_range_are_rejected(override, message):
    with pytest.raises(SpecError, match=message):
        load_spec(BASE, [override])
