"""Weight fingerprints: after every sync each engine reports one per tensor, and the trainer
compares them with its own, so a stale, partial or corrupted engine is an error, not a
silent state.

A fingerprint is a position-weighted float64 sum over a fixed strided sample of the tensor
(at most ~2 * SAMPLE elements), with the sum of the absolute terms as its scale. It is cheap
next to moving the tensor, and every element a policy update moves shifts it; corruption
of elements outside the sample goes unseen. The engine-side values are those of the
tensors the engine holds after its reload (transformers) or the tensors its reload consumed
(vLLM, whose CPU linear layers keep their weights only in opaque oneDNN packs).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

SAMPLE = 4096
# Relative to a fingerprint's scale: float64 rounding differs by ~1e-16 between reduction
# orders (another CPU, another device); a moved weight shifts it by far more.
RTOL = 1e-9

Fingerprint = tuple[float, float]  # (weighted sum, its scale)


class WeightSyncError(RuntimeError):
    """A weight sync that failed, timed out or left an engine with other weights."""


def fingerprint(tensor: torch.Tensor) -> Fingerprint:
    flat = tensor.detach().reshape(-1)
    sample = flat[:: max(1, flat.numel() // SAMPLE)].to(torch.float64)
    terms = sample * torch.linspace(
        1.0, 2.0, sample.numel(), dtype=torch.float64, device=sample.device
    )
    return float(terms.sum()), float(terms.abs().sum())


def check_fingerprints(
    expected: Mapping[str, Fingerprint], reported: Mapping[str, Fingerprint], engine: str
) -> None:
    """Raise WeightSyncError naming the first tensor whose `reported` fingerprint (from
    `engine`) is missing or differs from the trainer's `expected` one."""
    for name, (value, scale) in expected.items():
        if name not in reported:
            raise WeightSyncError(f"{engine} did not load '{name}' in the weight sync")
        got = reported[name][0]
        if abs(got - value) > RTOL * max(scale, 1e-30):
            raise WeightSyncError(
                f"{engine} holds other weights than the trainer for '{name}' after the "
                f"weight sync (fingerprint {got!r}, trainer {value!r}): stale or corrupted"
            )
