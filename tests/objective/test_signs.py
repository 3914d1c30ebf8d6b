"""The shaping moves the distribution the way docs/objective.md says, against cross-entropy."""

import pytest
import torch

from rsrl.objective.loss import reward_shaped_loss

V, TARGET = 32, 3


def after_sgd(steps: int = 5, lr: float = 2.0, **kw) -> dict:
    """Stats of one fixed logit vector after a few SGD steps on the loss."""
    z = torch.randn(V, generator=torch.Generator().manual_seed(0))
    z[TARGET] += 1.5  # the target leads, so sharpening means moving mass onto it
    x = torch.tensor([TARGET])
    for _ in range(steps):
        z.requires_grad_()
        (grad,) = torch.autograd.grad(reward_shaped_loss(z[None], x, impl="reference", **kw), z)
        z = (z - lr * grad).detach()
    _, stats = reward_shaped_loss(z[None], x, return_stats=True, impl="reference", **kw)
    return {name: float(value) for name, value in stats.items()}


@pytest.mark.parametrize("positive_form", ["product", "exponent"])
def test_beta_sharpens_below_zero_and_flattens_above(positive_form):
    entropy = {
        beta: after_sgd(beta=beta, positive_form=positive_form)["entropy"]
        for beta in (-0.5, 0.0, 1.0)
    }
    assert entropy[-0.5] < entropy[0.0] < entropy[1.0]


def test_negative_tail_reward_lowers_tail_mass():
    assert after_sgd(lam_tail=-0.3, k=5)["tail_mass"] < after_sgd(k=5)["tail_mass"]


def test_positive_top_reward_keeps_alternatives_alive():
    shaped, plain = after_sgd(lam_top=0.3, k=5), after_sgd(k=5)
    assert shaped["local_entropy"] > plain["local_entropy"]
