"""Property tests over the parameter ranges of the objective (skipped without hypothesis)."""

import pytest
import torch

from .helpers import loss_and_grad, triton_devices
from .naive import naive_loss

hypothesis = pytest.importorskip("hypothesis")
st = hypothesis.strategies


@st.composite
def problems(draw):
    n, vocab = draw(st.integers(1, 6)), draw(st.integers(2, 40))
    seed = draw(st.integers(0, 2**31 - 1))
    gen = torch.Generator().manual_seed(seed)
    if draw(st.booleans()):  # integer logits: ties at the threshold
        logits = torch.randint(-2, 3, (n, vocab), generator=gen).float()
    else:
        logits = torch.randn(n, vocab, generator=gen) * draw(st.floats(0.1, 8.0))
    targets = torch.randint(0, vocab, (n,), generator=gen)
    targets[torch.rand(n, generator=gen) < 0.2] = -100
    kw = dict(
        beta=draw(st.floats(-0.9, 2.0)),
        lam_top=draw(st.floats(-0.5, 0.5)),
        lam_tail=draw(st.floats(-0.5, 0.5)),
        k=draw(st.integers(1, 2 * vocab)),
        positive_form=draw(st.sampled_from(["product", "exponent"])),
        reduction=draw(st.sampled_from(["mean", "sum", "none"])),
    )
    return logits, targets, kw


@hypothesis.settings(max_examples=60, deadline=None)
@hypothesis.given(problems())
def test_reference_matches_float64_autograd(problem):
    logits, targets, kw = problem
    hypothesis.assume(kw["reduction"] != "mean" or (targets != -100).any())
    loss, grad, _ = loss_and_grad(logits, targets, impl="reference", **kw)
    z64 = logits.double().requires_grad_()
    want = naive_loss(z64, targets, **kw)
    want.backward(torch.ones_like(want))
    torch.testing.assert_close(loss.double(), want.detach(), atol=2e-6, rtol=1e-5)
    torch.testing.assert_close(grad.double(), z64.grad, atol=2e-6, rtol=1e-4)


@pytest.mark.skipif(not triton_devices(), reason="no GPU and no Triton interpreter")
@hypothesis.settings(max_examples=12, deadline=None)
@hypothesis.given(problems())
def test_triton_matches_reference(problem):
    logits, targets, kw = problem
    hypothesis.assume(kw["reduction"] != "mean" or (targets != -100).any())
    device = triton_devices()[0]
    want = loss_and_grad(logits, targets, impl="reference", **kw)
    got = loss_and_grad(logits.to(device), targets.to(device), impl="triton", **kw)
    torch.testing.assert_close(got[0].cpu(), want[0], atol=2e-6, rtol=1e-5)
    torch.testing.assert_close(got[1].cpu(), want[1], atol=2e-6, rtol=1e-4)
