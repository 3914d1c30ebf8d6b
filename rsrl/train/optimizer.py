"""AdamW with weight decay on matrices only (not on norms, biases or router gates' bias)."""

from __future__ import annotations

import torch
from torch import nn

BETAS = (0.9, 0.95)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for param in model.parameters():
        if param.requires_grad:
            (decay if param.ndim >= 2 else no_decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def build_optimizer(
    model: nn.Module, weight_decay: float, *, offload: bool
) -> torch.optim.Optimizer:
    """torch AdamW on CPU; DeepSpeed's fused Adam on GPU, its CPU Adam when offloading
    (those two JIT-compile on first use)."""
    groups = param_groups(model, weight_decay)
    if offload:
        from deepspeed.ops.adam import DeepSpeedCPUAdam

        return DeepSpeedCPUAdam(groups, lr=0.0, betas=BETAS, adamw_mode=True)
    if torch.cuda.is_available():
        from deepspeed.ops.adam import FusedAdam

        return FusedAdam(groups, lr=0.0, betas=BETAS, adam_w_mode=True)
    return torch.optim.AdamW(groups, lr=0.0, betas=BETAS)
