"""The objective written the obvious way, in float64 autograd: the oracle of the tests.

L = -sum_a stopgrad(w_a) log pi_a with w_a taken straight from docs/objective.md section 2.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def naive_rows(
    logits: Tensor,
    targets: Tensor,
    *,
    beta: float = 0.0,
    lam_top: float = 0.0,
    lam_tail: float = 0.0,
    k: int = 100,
    positive_form: str = "product",
    ignore_index: int = -100,
) -> tuple[Tensor, dict[str, Tensor], Tensor]:
    """Per-row loss (0 at ignored rows), per-row stats, and the validity mask, for [N, V]."""
    logp = F.log_softmax(logits.double(), dim=-1)
    pi = logp.exp()
    vocab = logits.shape[-1]
    kth = torch.topk(logits.double(), min(k, vocab), dim=-1).values[:, -1:]
    in_k = logits.double() >= kth
    valid = targets != ignore_index
    x = torch.where(valid, targets, 0)
    is_x = F.one_hot(x, vocab).bool()
    logp_x = logp.gather(1, x[:, None]).squeeze(1)
    pi_x = logp_x.exp()
    u = -torch.expm1(logp_x)
    if positive_form == "product":
        w_x = u**beta
    else:
        w_x = pi_x ** (1 - u**beta)
    w_neg = torch.where(in_k, lam_top, lam_tail) * pi
    w = torch.where(is_x, w_x[:, None], w_neg).detach()
    loss = torch.where(valid, -(w * logp).sum(-1), 0.0)
    pi_d, logp_d = pi.detach(), logp.detach()
    mass = (pi_d * in_k).sum(-1)
    q = pi_d / mass[:, None]
    stats = {
        "nll": -logp_x.detach(),
        "entropy": -(pi_d * logp_d).sum(-1),
        "local_entropy": -(torch.where(in_k, q * q.log(), 0.0)).sum(-1),
        "topk_mass": mass,
        "tail_mass": 1 - mass,
        "p_target": pi_x.detach(),
    }
    return loss, stats, valid


def naive_loss(logits: Tensor, targets: Tensor, reduction: str = "mean", **kw) -> Tensor:
    loss, _, valid = naive_rows(logits, targets, **kw)
    if reduction == "none":
        return loss
    return loss.sum() / valid.sum() if reduction == "mean" else loss.sum()


def naive_stats(logits: Tensor, targets: Tensor, **kw) -> dict[str, Tensor]:
    _, stats, valid = naive_rows(logits, targets, **kw)
    return {name: v[valid].mean() for name, v in stats.items()}
