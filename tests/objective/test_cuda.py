"""Checks at real vocabulary sizes on a GPU (skipped without CUDA; benchmarks/gpu_check.sh)."""

import pytest
import torch

from rsrl.objective.loss import fused_linear_reward_shaped_loss

from .helpers import assert_stats_close, loss_and_grad, make_batch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
VOCAB = 151936  # Qwen's vocabulary: not a power of two, ~37 chunks of 4096
PAPER = dict(beta=-0.25, lam_tail=-0.1, k=100)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize(
    "kw",
    [
        PAPER,
        dict(beta=0.5, lam_top=0.1, lam_tail=-0.2, k=1000),
        dict(positive_form="exponent", beta=-0.5, lam_top=0.3, k=1),
    ],
)
def test_triton_matches_reference_at_full_vocab(dtype, kw):
    logits, targets = make_batch(64, VOCAB, seed=0, n_ignored=5, scale=3.0, device="cuda")
    logits = logits.to(dtype)
    got = loss_and_grad(logits, targets, impl="triton", return_stats=True, **kw)
    want = loss_and_grad(logits, targets, impl="reference", return_stats=True, **kw)
    torch.testing.assert_close(got[0], want[0], atol=1e-5, rtol=1e-5)
    grad_atol = 1e-7 if dtype == torch.float32 else 1e-4
    torch.testing.assert_close(got[1].float(), want[1].float(), atol=grad_atol, rtol=1e-2)
    assert_stats_close(got[2], want[2], atol=1e-4)


def test_zero_shaping_matches_liger_cross_entropy():
    liger = pytest.importorskip("liger_kernel.transformers.functional")
    logits, targets = make_batch(256, VOCAB, seed=1, n_ignored=9, scale=3.0, device="cuda")
    ours = loss_and_grad(logits, targets, impl="triton")
    z = logits.clone().requires_grad_()
    theirs = liger.liger_cross_entropy(z, targets)
    theirs.backward()
    torch.testing.assert_close(ours[0], theirs.detach(), atol=1e-5, rtol=1e-6)
    torch.testing.assert_close(ours[1], z.grad, atol=1e-7, rtol=1e-4)


def test_fused_linear_triton_matches_reference():
    gen = torch.Generator(device="cuda").manual_seed(2)
    hidden = torch.randn(600, 256, device="cuda", generator=gen)
    weight = torch.randn(VOCAB, 256, device="cuda", generator=gen) / 8
    targets = torch.randint(0, VOCAB, (600,), device="cuda", generator=gen)
    results = []
    for impl in ("triton", "reference"):
        h, w = hidden.clone().requires_grad_(), weight.clone().requires_grad_()
        loss = fused_linear_reward_shaped_loss(h, w, targets, impl=impl, chunk_size=256, **PAPER)
        loss.backward()
        results.append((loss.detach(), h.grad, w.grad))
    for got, want in zip(*results):
        torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-4)
