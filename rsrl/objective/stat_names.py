"""The diagnostics of one pass of the loss, in the order of its stats tensor.

Torch-free, so the report and the held-out tables name them without loading the kernels.
"""

from __future__ import annotations

from typing import Literal

StatName = Literal["nll", "entropy", "local_entropy", "topk_mass", "tail_mass", "p_target"]
STAT_NAMES: tuple[StatName, ...] = (
    "nll",
    "entropy",
    "local_entropy",
    "topk_mass",
    "tail_mass",
    "p_target",
)
