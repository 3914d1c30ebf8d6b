"""The fused linear loss against the reference loss of the materialised logits."""

import pytest
import torch

from rsrl.objective.loss import fused_linear_reward_shaped_loss, reward_shaped_loss

from .helpers import IGNORE, assert_stats_close, triton_devices

N, D, V = 11, 8, 96
SHAPING = dict(beta=-0.25, lam_top=0.2, lam_tail=-0.1, k=5)
pytestmark = pytest.mark.usefixtures("small_tiles")


def make_inputs(seed: int, device: str = "cpu", dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    hidden = torch.randn(N, D, generator=gen)
    weight = torch.randn(V, D, generator=gen) / D**0.5 * 3
    targets = torch.randint(0, V, (N,), generator=gen)
    targets[[2, 7]] = IGNORE
    return hidden.to(device, dtype), weight.to(device, dtype), targets.to(device)


def run(fn, hidden, weight, targets, grad_out, needs=(True, True), **kw):
    h = hidden.detach().clone().requires_grad_(needs[0])
    w = weight.detach().clone().requires_grad_(needs[1])
    loss, stats = fn(h, w, targets, return_stats=True, **kw)
    loss.backward(grad_out)
    return loss.detach(), h.grad, w.grad, stats


def unfused(hidden, weight, targets, **kw):
    return reward_shaped_loss(hidden @ weight.T, targets, impl="reference", **kw)


def assert_same(got, want, atol=2e-6):
    for a, b in zip(got[:3], want[:3]):
        if b is None:
            assert a is None
        else:
            torch.testing.assert_close(a.cpu(), b, atol=atol, rtol=1e-4)
    assert_stats_close(got[3], want[3])


# (impl, device, chunk_size); chunks of one row are slow in the interpreter.
CASES = [("reference", "cpu", c) for c in (None, 4, 1)]
CASES += [("triton", d, c) for d in triton_devices() for c in (None, 4)]


@pytest.mark.parametrize("impl,device,chunk_size", CASES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_fused_matches_unfused(impl, device, chunk_size, reduction):
    hidden, weight, targets = make_inputs(seed=1)
    grad_out = torch.rand(N) if reduction == "none" else torch.tensor(1.5)
    kw = dict(SHAPING, reduction=reduction)
    want = run(unfused, hidden, weight, targets, grad_out, **kw)
    got = run(
        fused_linear_reward_shaped_loss,
        hidden.to(device),
        weight.to(device),
        targets.to(device),
        grad_out.to(device),
        impl=impl,
        chunk_size=chunk_size,
        **kw,
    )
    assert_same(got, want)


@pytest.mark.parametrize("needs", [(True, False), (False, True)], ids=["hidden", "weight"])
def test_gradient_of_one_input_only(needs):
    hidden, weight, targets = make_inputs(seed=2)
    for reduction in ("mean", "none"):
        grad_out = torch.ones(N) if reduction == "none" else torch.tensor(1.0)
        kw = dict(SHAPING, reduction=reduction, needs=needs)
        assert_same(
            run(
                fused_linear_reward_shaped_loss,
                hidden,
                weight,
                targets,
                grad_out,
                impl="reference",
                chunk_size=3,
                **kw,
            ),
            run(unfused, hidden, weight, targets, grad_out, **kw),
        )


def test_three_dimensional_hidden_and_bf16():
    hidden, weight, targets = make_inputs(seed=3, dtype=torch.bfloat16)
    kw = dict(SHAPING, reduction="none")
    grad_out = torch.ones(N)
    want = run(unfused, hidden, weight, targets, grad_out, **kw)
    got = run(
        fused_linear_reward_shaped_loss,
        hidden.view(1, N, D),
        weight,
        targets.view(1, N),
        grad_out.view(1, N),
        impl="reference",
        chunk_size=4,
        **kw,
    )
    assert got[0].shape == (1, N) and got[1].shape == (1, N, D)
    torch.testing.assert_close(got[0].view(N), want[0])
    torch.testing.assert_close(got[1].view(N, D), want[1])
    # Each chunk's share of dL/dweight is a bf16 product (summed in float32).
    torch.testing.assert_close(got[2], want[2], atol=1e-3, rtol=2e-2)


def relative_error(got, want):
    return ((got.double() - want).norm() / want.norm()).item()


def test_bf16_weight_gradient_over_many_chunks_is_as_accurate_as_unfused():
    """256 chunks: a bf16 running sum of dL/dweight was 5x the unfused error; float32 is not."""
    n, d, v = 1024, 16, 64
    gen = torch.Generator().manual_seed(5)
    hidden, weight = torch.randn(n, d, generator=gen), torch.randn(v, d, generator=gen) * 0.75
    targets = torch.randint(0, v, (n,), generator=gen)
    kw = dict(beta=-0.25, lam_tail=-0.1, k=10)

    def grad_weight(fn, dtype, **extra):
        w = weight.to(dtype).requires_grad_()
        fn(hidden.to(dtype), w, targets, **kw, **extra).backward()
        return w.grad

    exact = grad_weight(unfused, torch.float64).double()
    plain = relative_error(grad_weight(unfused, torch.bfloat16), exact)
    fused = relative_error(
        grad_weight(
            fused_linear_reward_shaped_loss, torch.bfloat16, impl="reference", chunk_size=4
        ),
        exact,
    )
    assert fused <= 1.25 * plain, (fused, plain)


def test_no_grad_call():
    hidden, weight, targets = make_inputs(seed=4)
    with torch.no_grad():
        loss = fused_linear_reward_shaped_loss(
            hidden, weight, targets, impl="reference", chunk_size=2, **SHAPING
        )
    torch.testing.assert_close(loss, unfused(hidden, weight, targets, **SHAPING))
