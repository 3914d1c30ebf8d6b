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
    "precision, dtype, engine_dtype",
    [("fp32", "auto", "float32"), ("bf16", "auto", "bfloat16"), ("fp32", "bfloat16", "bfloat16")],
)
def test_the_rollout_dtype_follows_the_trainers_precision_unless_set(
    precision, dtype, engine_dtype
):
    spec = load_spec(
        BASE, [f"resources.deepspeed.precision={precision}", f"rl.rollout.dtype={dtype}"]
    )
    assert spec.rl.rollout.engine_dtype(spec.resources.deepspeed.torch_dtype()) == engine_dtype


@pytest.mark.parametrize(
    "override, message",
    [
        ("rl.weight_decay=-0.1", "rl.weight_decay: must be >= 0"),
        ("rl.keep_checkpoints=0", "rl.keep_checkpoints: must be >= 1"),
        ("rl.rollout.sync_bucket_mb=0", "rl.rollout.sync_bucket_mb: must be >= 1"),
        ("rl.rollout.sync_timeout_s=0", "rl.rollout.sync_timeout_s: must be > 0"),
        ("rl.rollout.dtype=float16", "rl.rollout.dtype: unknown value 'float16'"),
        ("rl.off_policy.correction=is", "rl.off_policy.correction: unknown value 'is'"),
        ("rl.off_policy.level=group", "rl.off_policy.level: unknown value 'group'"),
        ("rl.off_policy.cap=1.0", "rl.off_policy.cap: must be > 1"),
        ("rl.off_policy.cap=0.5", "rl.off_policy.cap: must be > 1"),
        ("rl.micro_batch_tokens=0", "rl.micro_batch_tokens: must be >= 1"),
        ("rl.max_staleness=-1", "rl.max_staleness: must be >= 0"),
    ],
)
def test_rl_values_out_of_range_are_rejected(override, message):
    with pytest.raises(SpecError, match=message):
        load_spec(BASE, [override])


def test_a_correction_needs_the_engines_sampling_temperature_one():
    load_spec(BASE, ["rl.off_policy.correction=tis"])  # base samples at temperature 1
    with pytest.raises(SpecError, match="rl.off_policy.correction: needs rl.rollout.temperature"):
        load_spec(BASE, ["rl.off_policy.correction=mis", "rl.rollout.temperature=0.7"])
