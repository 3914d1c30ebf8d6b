"""The reward-shaped objective of one token, from a handful of per-row sums.

For a row of logits z with target x and pi = softmax(z) (docs/objective.md section 2):

    L = -sum_a w_a log pi_a,   w_x = (1 - pi_x)^beta            (product)
                                   or pi_x^(1 - (1 - pi_x)^beta)  (exponent)
                               w_a = lam_top * pi_a   for a in K, a != x
                               w_a = lam_tail * pi_a  for a not in K, a != x
    dL/dz_j = pi_j * W - w_j,  W = sum_a w_a

where K is every token whose logit is >= the k-th largest logit of the row. Every
implementation (reference, Triton) only has to produce the sums in `RowSums`;
`row_terms` turns them into the loss, W, the target's gradient and the diagnostics, so
all implementations share this arithmetic.

Sums are taken over the non-target tokens ("others") so that 1 - pi_x, which drives the
gradient when the model is confident, is a sum of small numbers rather than a difference
of two numbers near 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

# Smallest normal float32: keeps (1 - pi_x)^beta finite for beta >= -1 when pi_x rounds to 1.
_TINY = torch.finfo(torch.float32).tiny


@dataclass(frozen=True)
class Shaping:
    """The knobs of the objective; beta = lam_top = lam_tail = 0 is cross-entropy."""

    beta: float = 0.0
    lam_top: float = 0.0
    lam_tail: float = 0.0
    k: int = 100
    positive_form: str = "product"

    @property
    def ranks_matter(self) -> bool:
        """Whether the loss depends on which tokens are in K (not only on their number)."""
        return self.lam_top != self.lam_tail

    def all_top(self, vocab: int) -> bool:
        return self.k >= vocab

    def base_lam(self, vocab: int) -> float:
        """The negative reward of a token outside K, or of every token when K is the vocabulary."""
        return self.lam_top if self.all_top(vocab) else self.lam_tail


class RowSums(NamedTuple):
    """Per-row float32 sums that determine the loss; "others" means every token but x."""

    z_max: Tensor  # max_a z_a
    log_z: Tensor  # log sum_a exp(z_a - z_max); lse = z_max + log_z
    z_x: Tensor  # the target's logit
    u: Tensor  # 1 - pi_x = sum of pi over the others
    plogp_rest: Tensor  # sum of pi log pi over the others
    s_top: Tensor  # sum of pi over the others in K
    plogp_top: Tensor  # sum of pi log pi over the others in K
    x_in_top: Tensor  # bool: x is in K


class RowTerms(NamedTuple):
    loss: Tensor  # per row, 0 at ignored rows
    W: Tensor  # sum_a w_a
    g_x: Tensor  # dL/dz_x = pi_x * W - w_x
    stats: Tensor | None  # [len(STAT_NAMES), N], rows in rsrl.objective.stat_names.STAT_NAMES order


def target_nll(s: RowSums) -> Tensor:
    """-log pi_x: from 1 - pi_x where pi_x is near 1 (lse - z_x has lost its digits there),
    else (z_max - z_x) + log_z, rounded like F.cross_entropy."""
    return torch.where(s.u < 0.5, -torch.log1p(-s.u), (s.z_max - s.z_x) + s.log_z)


def target_weight(nll: Tensor, u: Tensor, sh: Shaping) -> Tensor:
    """w_x; u is clamped so that negative beta gives a finite weight when pi_x rounds to 1."""
    u_beta = u.clamp_min(_TINY).pow(sh.beta)
    if sh.positive_form == "product":
        return u_beta
    return torch.exp(-nll * (1.0 - u_beta))


def row_terms(s: RowSums, sh: Shaping, valid: Tensor, with_stats: bool) -> RowTerms:
    nll = target_nll(s)
    p_x = torch.exp(-nll)
    w_x = target_weight(nll, s.u, sh)
    s_tail = s.u - s.s_top
    plogp_tail = s.plogp_rest - s.plogp_top
    r_others = sh.lam_top * s.s_top + sh.lam_tail * s_tail  # sum of w_a over the others
    loss = w_x * nll - sh.lam_top * s.plogp_top - sh.lam_tail * plogp_tail
    # pi_x * W - w_x, with w_x * (pi_x - 1) written so that it never forms inf * 0.
    g_x = p_x * r_others - w_x * s.u
    stats = _row_stats(s, nll, p_x, s_tail) if with_stats else None
    return RowTerms(torch.where(valid, loss, 0.0), w_x + r_others, g_x, stats)


def _row_stats(s: RowSums, nll: Tensor, p_x: Tensor, s_tail: Tensor) -> Tensor:
    plogp_x = -p_x * nll
    x_top = s.x_in_top.float()
    mass_top = s.s_top + x_top * p_x
    plogp_in_top = s.plogp_top + x_top * plogp_x
    local_entropy = torch.log(mass_top) - plogp_in_top / mass_top
    entropy = -(s.plogp_rest + plogp_x)
    tail_mass = s_tail + (1.0 - x_top) * p_x
    return torch.stack([nll, entropy, local_entropy, mass_top, tail_mass, p_x])


def _count(valid: Tensor) -> Tensor:
    """Non-ignored rows, at least 1: with none, means are 0 and gradients zeros, not 0/0."""
    return valid.sum().clamp(min=1)


def row_scale(valid: Tensor, reduction: str) -> Tensor:
    """d(reduced loss)/d(row loss): 1/n_valid for mean, 1 otherwise; 0 at ignored rows."""
    if reduction == "mean":
        return valid.float() / _count(valid)
    return valid.float()


def scale_grad(grad: Tensor, rows_grad: Tensor, reduction: str) -> Tensor:
    """grad * the incoming gradient, skipping the [N, V] multiply for the usual loss.backward()."""
    if reduction != "none" and bool(rows_grad == 1):
        return grad
    return (grad * rows_grad).to(grad.dtype)


def reduce_rows(loss: Tensor, valid: Tensor, reduction: str) -> Tensor:
    """Mean (or sum) over non-ignored rows; 0 when there are none (F.cross_entropy: nan)."""
    if reduction == "none":
        return loss
    total = loss.sum()
    return total / _count(valid) if reduction == "mean" else total


def stat_means(stats: Tensor, valid: Tensor) -> Tensor:
    """Means of each diagnostic over the non-ignored rows (0 with none): [len(STAT_NAMES)]."""
    return torch.where(valid, stats, 0.0).sum(dim=1) / _count(valid)
