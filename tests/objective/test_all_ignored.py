"""A batch whose targets are all ignored (e.g. a packed row of padding) must not poison a step:
every implementation gives loss 0 and zero gradients, where 0/0 would give nan."""

import pytest
import torch
import torch.nn.functional as F

from rsrl.objective.loss import fused_linear_reward_shaped_loss, reward_shaped_loss

from .helpers import make_batch, triton_devices

N, D, V = 6, 8, 32
SHAPING = dict(beta=-0.25, lam_top=0.2, lam_tail=-0.1, k=5)
pytestmark = pytest.mark.usefixtures("small_tiles")

# (function, impl, device): the implementations the other objective tests run.
CASES = [("logits", "reference", "cpu"), ("fused_linear", "reference", "cpu")]
CASES += [(fn, "triton", d) for d in triton_devices() for fn in ("logits", "fused_linear")]


def loss_and_grads(fn: str, impl: str, device: str, reduction: str):
    logits, targets = make_batch(N, V, seed=3, n_ignored=N, device=device)
    gen = torch.Generator().manual_seed(4)
    hidden = torch.randn(N, D, generator=gen).to(device).requires_grad_()
    weight = torch.randn(V, D, generator=gen).to(device).requires_grad_()
    kw = dict(SHAPING, impl=impl, reduction=reduction, return_stats=True)
    if fn == "logits":
        inputs = [logits.requires_grad_()]
        loss, stats = reward_shaped_loss(logits, targets, **kw)
    else:
        inputs = [hidden, weight]
        loss, stats = fused_linear_reward_shaped_loss(hidden, weight, targets, chunk_size=4, **kw)
    loss.backward()
    return loss, [t.grad for t in inputs], stats


@pytest.mark.parametrize("fn,impl,device", CASES)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_all_ignored_gives_zero_loss_and_zero_gradients(fn, impl, device, reduction):
    loss, grads, stats = loss_and_grads(fn, impl, device, reduction)
    assert loss.item() == 0.0
    for grad in grads:
        assert torch.equal(grad, torch.zeros_like(grad))
    assert all(torch.isfinite(value) for value in stats.values())


def test_cross_entropy_gradient_is_zero_there_too():
    """The reference point: F.cross_entropy's gradient is zeros (its loss is nan)."""
    logits, targets = make_batch(N, V, seed=3, n_ignored=N)
    logits.requires_grad_()
    F.cross_entropy(logits, targets).backward()
    assert torch.equal(logits.grad, torch.zeros_like(logits))
