"""The reference implementation against float64 autograd of the naively written loss."""

import pytest
import torch
import torch.nn.functional as F

from rsrl.objective.loss import reward_shaped_loss

from .helpers import IGNORE, assert_stats_close, loss_and_grad, make_batch, random_shaping
from .naive import naive_loss, naive_stats

N, V = 12, 40
KS = [1, 7, V - 1, V, 2 * V]


def check_against_naive(logits, targets, kw, *, atol=1e-6, reduction="mean"):
    loss, grad, stats = loss_and_grad(
        logits, targets, impl="reference", return_stats=True, reduction=reduction, **kw
    )
    z64 = logits.detach().double().requires_grad_()
    want = naive_loss(z64, targets, reduction=reduction, **kw)
    want.backward(torch.ones_like(want))
    torch.testing.assert_close(loss.double(), want.detach(), atol=atol, rtol=1e-5)
    torch.testing.assert_close(grad.double(), z64.grad, atol=atol, rtol=1e-4)
    assert_stats_close(stats, naive_stats(logits.double(), targets, **kw))


@pytest.mark.parametrize("ties", [False, True], ids=["distinct", "ties"])
@pytest.mark.parametrize("k", KS)
@pytest.mark.parametrize("positive_form", ["product", "exponent"])
def test_gradient_matches_float64_autograd(positive_form, k, ties):
    for seed in range(3):
        logits, targets = make_batch(N, V, seed, ties=ties)
        check_against_naive(logits, targets, random_shaping(100 * k + seed, positive_form, k))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_reductions_match_naive(reduction):
    logits, targets = make_batch(N, V, seed=5)
    kw = dict(beta=-0.25, lam_top=0.1, lam_tail=-0.1, k=5)
    check_against_naive(logits, targets, kw, reduction=reduction)


def test_extreme_beta_edges():
    logits, targets = make_batch(N, V, seed=9)
    for kw in (dict(beta=-0.999), dict(beta=-1.0, positive_form="exponent"), dict(beta=5.0)):
        check_against_naive(logits, targets, dict(kw, lam_tail=-0.3, k=3), atol=1e-5)


def test_bf16_logits_accumulate_in_fp32():
    logits, targets = make_batch(N, V, seed=3)
    logits = logits.bfloat16()
    kw = dict(beta=0.5, lam_top=0.2, lam_tail=-0.1, k=7)
    loss, grad, _ = loss_and_grad(logits, targets, impl="reference", **kw)
    assert loss.dtype == torch.float32 and grad.dtype == torch.bfloat16
    z64 = logits.double().requires_grad_()
    naive_loss(z64, targets, **kw).backward()
    torch.testing.assert_close(
        loss.double(), naive_loss(logits.double(), targets, **kw), atol=1e-6, rtol=1e-5
    )
    torch.testing.assert_close(grad.double(), z64.grad, atol=2e-4, rtol=1e-2)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_zero_shaping_is_cross_entropy(reduction):
    logits, targets = make_batch(64, 500, seed=1, scale=4.0)
    loss, grad, _ = loss_and_grad(logits, targets, impl="reference", reduction=reduction, k=7)
    z = logits.clone().requires_grad_()
    want = F.cross_entropy(z, targets, ignore_index=IGNORE, reduction=reduction)
    want.backward(torch.ones_like(want))
    # Per-token losses reach ~20, where one float32 ulp is 1.9e-6: allow 1e-6 relative too.
    torch.testing.assert_close(loss, want.detach(), atol=1e-6, rtol=1e-6 if loss.dim() else 0)
    torch.testing.assert_close(grad, z.grad, atol=1e-6, rtol=0)


def test_three_dimensional_logits():
    logits, targets = make_batch(12, V, seed=4)
    kw = dict(beta=-0.25, lam_tail=-0.1, k=5, impl="reference")
    flat, flat_grad, _ = loss_and_grad(logits, targets, reduction="none", **kw)
    loss, grad, _ = loss_and_grad(logits.view(3, 4, V), targets.view(3, 4), reduction="none", **kw)
    assert loss.shape == (3, 4) and grad.shape == (3, 4, V)
    torch.testing.assert_close(loss.view(-1), flat)
    torch.testing.assert_close(grad.view(-1, V), flat_grad)


CONFIDENT = dict(beta=-0.9, lam_top=0.2, lam_tail=-0.3, k=4)


def confident_batch(gaps: list[float]):
    """Rows whose target logit stands `gap` above N(0, 4) logits: pi_x near 1."""
    logits, targets = make_batch(len(gaps), V, seed=6, n_ignored=0)
    logits[torch.arange(len(gaps)), targets] = torch.tensor(gaps)
    return logits, targets


def test_confident_model_matches_float64():
    """From a gap of ~17 pi_x rounds to 1 in float32, but 1 - pi_x must stay accurate."""
    logits, targets = confident_batch([12.0, 16.0, 18.0, 20.0, 22.0, 25.0])
    loss, grad, _ = loss_and_grad(logits, targets, impl="reference", reduction="none", **CONFIDENT)
    z64 = logits.double().requires_grad_()
    want = naive_loss(z64, targets, reduction="none", **CONFIDENT)
    want.sum().backward()
    torch.testing.assert_close(loss.double(), want.detach(), atol=1e-12, rtol=1e-4)
    torch.testing.assert_close(grad.double(), z64.grad, atol=1e-12, rtol=1e-4)


def test_overconfident_model_stays_finite():
    """Gaps where even float64 rounds pi_x to 1 (there the naive loss is nan)."""
    logits, targets = confident_batch([60.0, 90.0, 120.0, 200.0])
    loss, grad, _ = loss_and_grad(logits, targets, impl="reference", reduction="none", **CONFIDENT)
    assert torch.isfinite(loss).all() and torch.isfinite(grad).all()
    assert (loss >= 0).all() and (loss < 0.05).all()


def test_no_grad_and_repeated_backward():
    logits, targets = make_batch(N, V, seed=8)
    kw = dict(beta=-0.25, lam_top=0.1, lam_tail=-0.1, k=5, impl="reference")
    with torch.no_grad():
        plain = reward_shaped_loss(logits, targets, **kw)
    z = logits.clone().requires_grad_()
    loss = reward_shaped_loss(z, targets, **kw)
    loss.backward(retain_graph=True)
    first = z.grad.clone()
    (2 * loss).backward()
    torch.testing.assert_close(plain, loss.detach())
    torch.testing.assert_close(z.grad, 3 * first)


def test_stats_are_detached_scalars():
    logits, targets = make_batch(N, V, seed=7)
    _, stats = reward_shaped_loss(
        logits.requires_grad_(), targets, k=3, return_stats=True, impl="reference"
    )
    assert list(stats) == ["nll", "entropy", "local_entropy", "topk_mass", "tail_mass", "p_target"]
    for value in stats.values():
        assert value.shape == () and value.dtype == torch.float32 and not value.requires_grad
    torch.testing.assert_close(stats["topk_mass"] + stats["tail_mass"], torch.tensor(1.0))
