"""Shared inputs and comparisons for the objective tests."""

from __future__ import annotations

import os

import pytest
import torch
from torch import Tensor

from rsrl.objective.loss import reward_shaped_loss

IGNORE = -100


def triton_devices() -> list[str]:
    """Where the Triton kernels can run here: CUDA, or CPU through the interpreter."""
    devices = ["cuda"] if torch.cuda.is_available() else []
    if os.environ.get("TRITON_INTERPRET") == "1":
        devices.append("cpu")
    return devices


TRITON_DEVICES = pytest.mark.parametrize("device", triton_devices())


def make_batch(
    n: int,
    vocab: int,
    seed: int,
    *,
    ties: bool = False,
    n_ignored: int = 2,
    scale: float = 2.0,
    device: str = "cpu",
) -> tuple[Tensor, Tensor]:
    """Random logits and targets; ties=True draws integer logits so thresholds are shared."""
    gen = torch.Generator().manual_seed(seed)
    if ties:
        logits = torch.randint(-3, 4, (n, vocab), generator=gen).float()
    else:
        logits = torch.randn(n, vocab, generator=gen) * scale
    targets = torch.randint(0, vocab, (n,), generator=gen)
    targets[torch.randperm(n, generator=gen)[:n_ignored]] = IGNORE
    return logits.to(device), targets.to(device)


def random_shaping(seed: int, positive_form: str, k: int) -> dict:
    """beta in (-0.9, 2), lams in [-0.5, 0.5], from a seed."""
    gen = torch.Generator().manual_seed(seed)
    beta, lam_top, lam_tail = (torch.rand(3, generator=gen, dtype=torch.float64)).tolist()
    return dict(
        beta=-0.9 + 2.9 * beta,
        lam_top=lam_top - 0.5,
        lam_tail=lam_tail - 0.5,
        k=k,
        positive_form=positive_form,
    )


def loss_and_grad(logits: Tensor, targets: Tensor, **kw) -> tuple[Tensor, Tensor, dict]:
    """Loss, dL/dlogits and stats through the public function (stats only when asked)."""
    z = logits.detach().clone().requires_grad_()
    out = reward_shaped_loss(z, targets, **kw)
    loss, stats = out if kw.get("return_stats") else (out, {})
    loss.backward(torch.ones_like(loss))
    return loss.detach(), z.grad, stats


def assert_stats_close(got: dict, want: dict, atol: float = 2e-5) -> None:
    assert set(got) == set(want)
    for name in want:
        torch.testing.assert_close(
            got[name].double().cpu(), want[name].double().cpu(), atol=atol, rtol=1e-4, msg=name
        )
