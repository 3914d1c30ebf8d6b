"""The Triton kernels against the reference (through the interpreter when there is no GPU)."""

import pytest
import torch

from rsrl.objective.loss import reward_shaped_loss

from .helpers import TRITON_DEVICES, assert_stats_close, loss_and_grad, make_batch, random_shaping

N, V = 10, 96  # 12 groups of 8: k = 1 and 7 take the group-maximum selection, larger k not
KS = [1, 7, V - 1, V, 2 * V]
pytestmark = pytest.mark.usefixtures("small_tiles")


def compare(logits, targets, *, atol=2e-6, grad_atol=None, **kw):
    got = loss_and_grad(logits, targets, impl="triton", return_stats=True, **kw)
    want = loss_and_grad(logits.cpu(), targets.cpu(), impl="reference", return_stats=True, **kw)
    torch.testing.assert_close(got[0].cpu(), want[0], atol=atol, rtol=1e-5)
    torch.testing.assert_close(got[1].cpu(), want[1], atol=grad_atol or atol, rtol=1e-4)
    assert_stats_close(got[2], want[2])


@TRITON_DEVICES
@pytest.mark.parametrize("ties", [False, True], ids=["distinct", "ties"])
@pytest.mark.parametrize("k", KS)
@pytest.mark.parametrize("positive_form", ["product", "exponent"])
def test_triton_matches_reference(device, positive_form, k, ties):
    logits, targets = make_batch(N, V, seed=k, ties=ties, device=device)
    compare(logits, targets, **random_shaping(k + 7, positive_form, k))


@TRITON_DEVICES
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_reductions_and_incoming_gradient(device, reduction):
    logits, targets = make_batch(N, V, seed=11, device=device)
    kw = dict(beta=-0.25, lam_top=0.1, lam_tail=-0.1, k=5, reduction=reduction)
    weights = torch.rand(N, device=device) if reduction == "none" else torch.tensor(2.5)
    grads = []
    for impl, dev in (("triton", device), ("reference", "cpu")):
        z = logits.detach().to(dev).requires_grad_()
        loss = reward_shaped_loss(z, targets.to(dev), impl=impl, **kw)
        loss.backward(weights.to(dev))
        grads.append(z.grad.cpu())
    torch.testing.assert_close(grads[0], grads[1], atol=2e-6, rtol=1e-4)


@TRITON_DEVICES
def test_bf16_logits(device):
    logits, targets = make_batch(N, V, seed=12, device=device)
    compare(
        logits.bfloat16(),
        targets,
        atol=2e-6,
        grad_atol=1e-3,
        beta=0.5,
        lam_top=0.2,
        lam_tail=-0.1,
        k=7,
    )


@TRITON_DEVICES
def test_strided_logits_and_3d_input(device):
    wide, targets = make_batch(N, V + 5, seed=13, device=device)
    logits = wide[:, :V]  # row stride V + 5
    targets = targets.clamp(max=V - 1)
    kw = dict(beta=-0.25, lam_tail=-0.1, k=3)
    compare(logits, targets, **kw)
    compare(logits.t().contiguous().t(), targets, **kw)  # column stride != 1
    compare(logits.reshape(2, 5, V), targets.reshape(2, 5), **kw)


@TRITON_DEVICES
def test_every_logit_tied(device):
    logits = torch.zeros(4, V, device=device)
    logits[1, :40] = 1.0  # 40 tied for first place, k = 3 takes them all
    targets = torch.tensor([0, 1, 50, -100], device=device)
    compare(logits, targets, beta=0.3, lam_top=0.4, lam_tail=-0.2, k=3)


def test_triton_on_cpu_needs_the_interpreter(monkeypatch):
    logits, targets = make_batch(2, 8, seed=0)
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(ValueError, match="TRITON_INTERPRET=1"):
        reward_shaped_loss(logits, targets, impl="triton")


def test_kernels_imported_without_the_interpreter_refuse_cpu(monkeypatch):
    from rsrl.objective import kernels

    monkeypatch.setattr(kernels, "INTERPRETED", False)
    with pytest.raises(ValueError, match="TRITON_INTERPRET=1"):
        kernels.check_device(torch.device("cpu"))


def hard_rows(vocab: int) -> torch.Tensor:
    """Rows that stress the threshold search on the float bit patterns."""
    gen = torch.Generator().manual_seed(0)
    noise = torch.randn(vocab, generator=gen)
    signed_zeros = torch.where(noise > 0, 0.0, -0.0)
    signed_zeros[:3] = 1.0
    return torch.stack(
        [
            1.0 + 1e-6 * noise,  # a few ulps apart
            signed_zeros,  # -0.0 == 0.0 must tie
            noise * 1e30,  # huge magnitudes of both signs
            torch.where(noise > 1, noise, -1e-30 * noise.abs()),  # tiny negatives below
            torch.full((vocab,), -7.0),  # every value tied
            noise.round(decimals=1),  # many ties everywhere
        ]
    )


@TRITON_DEVICES
@pytest.mark.parametrize("k", [1, 5, 37, 100, 299])
def test_threshold_on_hard_rows(device, k):
    from rsrl.objective import kernels, reference
    from rsrl.objective.shaping import Shaping

    logits = hard_rows(300)
    x = torch.arange(len(logits)) * 7
    sh = Shaping(lam_top=1.0, k=k)
    want, _ = reference.row_sums(logits, x, sh, need_top=True)
    got, state = kernels.row_sums(logits.to(device), x.to(device), sh, need_top=True)
    assert torch.equal(state.thr.cpu(), torch.topk(logits, k).values[:, -1])
    torch.testing.assert_close(got.x_in_top.cpu(), want.x_in_top)
    torch.testing.assert_close(got.s_top.cpu(), want.s_top, atol=1e-6, rtol=1e-5)


@TRITON_DEVICES
def test_bad_rows_give_nan_not_a_crash_or_hang(device):
    logits, targets = make_batch(4, V, seed=14, n_ignored=0, device=device)
    targets[1] = V + 3  # out of range: no read outside the row
    logits[2, 5] = float("nan")  # the threshold search must still end
    loss = reward_shaped_loss(
        logits, targets, impl="triton", reduction="none", k=7, lam_top=0.1, return_stats=True
    )[0]
    assert torch.isnan(loss[1:3]).all() and torch.isfinite(loss[[0, 3]]).all()
