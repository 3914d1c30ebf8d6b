"""The DeepSpeed config of a training stage, from `resources.deepspeed` and the batch layout."""

from __future__ import annotations

from rsrl.train.batches import BatchLayout
from rsrl.train.config import DeepSpeedSpec


def deepspeed_config(ds: DeepSpeedSpec, layout: BatchLayout) -> dict:
    """The optimizer is built by the caller (`optimizer.py`), with its parameter groups."""
    zero: dict = {"stage": ds.zero_stage}
    if ds.offload_optimizer and ds.zero_stage > 0:
        zero["offload_optimizer"] = {"device": "cpu"}
    if ds.zero_stage == 3 and ds.param_persistence_threshold is not None:
        zero["stage3_param_persistence_threshold"] = ds.param_persistence_threshold
    return {
        "train_micro_batch_size_per_gpu": layout.micro_batch_size,
        "gradient_accumulation_steps": layout.grad_accum,
        "gradient_clipping": ds.grad_clip,
        "zero_optimization": zero,
        "bf16": {"enabled": ds.precision == "bf16"},
        "steps_per_print": 10**9,  # rsrl logs its own metrics
        "wall_clock_breakdown": False,
    }
