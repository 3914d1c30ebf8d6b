"""Warmup-stable-decay learning rate: linear warmup, flat at peak, linear decay to final."""

from __future__ import annotations

from rsrl.train.config import LRSpec


def decay_start(total_steps: int, lr: LRSpec) -> int:
    """The first step of the decay window (total_steps when there is none)."""
    return total_steps - round(lr.decay_fraction * total_steps)


def wsd_lr(step: int, total_steps: int, lr: LRSpec) -> float:
    """The learning rate for optimizer step `step` (0-based) of `total_steps`.

    Warm-up must end by `decay_start` (the spec validation checks it), else the rate would
    fall from the warm-up line onto the decay line.
    """
    if step < lr.warmup_steps:
        return lr.peak * (step + 1) / lr.warmup_steps
    start = decay_start(total_steps, lr)
    decay_steps = total_steps - start
    if decay_steps == 0 or step < start:
        return lr.peak
    # The line reaches `final` one step past the end: with final 0 the last step still learns.
    progress = (step - start + 1) / (decay_steps + 1)
    return lr.peak + (lr.final - lr.peak) * progress
