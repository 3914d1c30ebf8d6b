"""Warmup-stable-decay learning rate: linear warmup, flat at peak, linear decay to final."""

from __future__ import annotations

from rsrl.spec.schema import LRSpec


def wsd_lr(step: int, total_steps: int, lr: LRSpec) -> float:
    """The learning rate for optimizer step `step` (0-based) of `total_steps`."""
    if step < lr.warmup_steps:
        return lr.peak * (step + 1) / lr.warmup_steps
    decay_steps = round(lr.decay_fraction * total_steps)
    decay_start = total_steps - decay_steps
    if decay_steps == 0 or step < decay_start:
        return lr.peak
    progress = (step - decay_start + 1) / decay_steps
    return lr.peak + (lr.final - lr.peak) * min(progress, 1.0)
