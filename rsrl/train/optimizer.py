"""AdamW with weight decay on matrices only (not on norms, biases or router gates' bias), and
the optimizer step after a micro-batch's backward, with the gradient norm it applied."""

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


def optimizer_step(engine) -> float:
    """engine.step() after a micro-batch's backward, and the global gradient norm of the
    update it made at the accumulation boundary (nan before it). DeepSpeed keeps that norm,
    except for fp32 at ZeRO stage 0, which it clips with a plain clip_grad_norm_ and keeps
    none: there it is read from the gradients (all-reduced by then) before the step."""
    import torch

    if not engine.is_gradient_accumulation_boundary():
        engine.step()
        return float("nan")
    keeps_norm = engine.zero_optimization() or engine.fp16_enabled() or engine.bfloat16_enabled()
    if keeps_norm:
        engine.step()
        norm = engine.get_global_grad_norm()
        return float(norm) if norm is not None else float("nan")
    grads = [p.grad for p in engine.module.parameters() if p.grad is not None]
    norm = float(torch.nn.utils.get_total_norm(grads)) if grads else 0.0
    engine.step()
    return norm
