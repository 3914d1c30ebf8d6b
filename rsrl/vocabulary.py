"""The named choices that the spec validator and the code acting on them share, each defined once.

Plain strings and numbers, no imports: the spec is checked with them before torch is
loaded (which is why the objective's names are not in rsrl/objective, whose package
imports torch).
"""

from __future__ import annotations

from typing import Literal

# The objective (docs/objective.md section 2; rsrl.objective).
IMPLS = ("auto", "reference", "triton")  # auto: Triton on CUDA, the reference elsewhere
POSITIVE_FORMS = ("product", "exponent")
REDUCTIONS = ("mean", "sum", "none")
# The diagnostics of one pass (rsrl.objective.LossStats), in the order of its stats tensor.
StatName = Literal["nll", "entropy", "local_entropy", "topk_mass", "tail_mass", "p_target"]
STAT_NAMES: tuple[StatName, ...] = (
    "nll",
    "entropy",
    "local_entropy",
    "topk_mass",
    "tail_mass",
    "p_target",
)

# The RL stage.
ROLLOUT_ENGINES = ("vllm", "hf")
# auto: collective wherever torch.distributed can build the group (rsrl.rl.rollout.weight_sync)
WEIGHT_SYNCS = ("auto", "object_store", "collective")
OFF_POLICY_CORRECTIONS = ("none", "tis", "mis")  # rsrl.rl.grpo.off_policy_weights
OFF_POLICY_LEVELS = ("token", "sequence")
ROLLOUT_DTYPES = ("auto", "float32", "bfloat16")  # auto: the trainer's precision
ENGINE_DTYPES = {"fp32": "float32", "bf16": "bfloat16"}  # resources.deepspeed.precision ->


def rollout_dtype(dtype: str, precision: str) -> str:
    """The rollout engines' dtype: `rl.rollout.dtype`, with auto following the trainer's
    `precision` (so a bf16 trainer samples from a bf16 engine, as on GPUs)."""
    return ENGINE_DTYPES[precision] if dtype == "auto" else dtype


def beta_bound(positive_form: str, beta: float) -> str | None:
    """The bound `beta` breaks for `positive_form` (its gradient would be unbounded), or None."""
    if positive_form == "product" and beta <= -1:
        return (
            "must be > -1 with positive_form product (the gradient scales like "
            "(1 - p)^(1 + beta), unbounded at beta <= -1)"
        )
    if positive_form == "exponent" and beta < -1:
        return (
            "must be >= -1 with positive_form exponent (w_x grows like "
            "exp((1 - p)^(1 + beta)) as p -> 1, unbounded at beta < -1)"
        )
    return None
