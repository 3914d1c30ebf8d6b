"""Reference implementation in plain PyTorch: the row sums of `shaping` and dL/dz.

It is also the CPU path, so it avoids a full sort and extra [N, V] temporaries: K comes
from `torch.topk` (a partial selection), and the softmax tensor computed for the sums is
turned into the gradient in place, the way cross-entropy keeps its log-softmax.
The tests check it against float64 autograd of the loss written naively.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from .shaping import RowSums, RowTerms, Shaping

GRAD_IN_FORWARD = True  # reusing the softmax beats recomputing it in backward on CPU


class TopSet(NamedTuple):
    """K of each row as top-k indices, plus the tokens tied with the k-th logit beyond them."""

    idx: Tensor  # [N, k] indices of the k largest logits
    p_others: Tensor  # [N, k] their pi, 0 where the index is x
    tie_rows: Tensor  # rows where the (k+1)-th logit equals the k-th
    tie_extra: Tensor  # [len(tie_rows), V] bool: further tokens tied with the k-th, not x
    tie_p: Tensor  # pi of the tied value in those rows


class GradState(NamedTuple):
    p: Tensor  # [N, V] float32 pi of the others (0 at x); becomes the gradient
    x: Tensor
    top: TopSet | None  # None when every token shares one negative reward


def _dot(a: Tensor, b: Tensor) -> Tensor:
    """Row-wise dot product through BLAS, without an [N, V] product temporary."""
    return torch.bmm(a.unsqueeze(1), b.unsqueeze(2)).view(-1)


def row_sums(logits: Tensor, x: Tensor, sh: Shaping, need_top: bool) -> tuple[RowSums, GradState]:
    """Sums of `shaping.RowSums` for [N, V] logits; x must be a column in every row.

    Logits must be finite (mask a vocabulary with a large negative number, not -inf).
    """
    z = logits.float()
    z_max, argmax = z.max(dim=-1)
    p = torch.softmax(z, dim=-1)
    # p at the argmax is 1 / sum exp(z - z_max): it never underflows, so its log is accurate.
    log_z = -p.gather(1, argmax[:, None]).squeeze(1).log()
    lse = z_max + log_z
    z_x = z.gather(1, x[:, None]).squeeze(1)
    p.scatter_(1, x[:, None], 0.0)  # from here on p holds the others only
    u = p.sum(dim=-1)
    plogp_rest = _dot(p, z) - lse * u
    everything = torch.ones_like(u, dtype=torch.bool)
    top = None
    if not need_top:  # K is needed when its tokens get their own reward, or for the stats
        zero = torch.zeros_like(u)
        sums = RowSums(z_max, log_z, z_x, u, plogp_rest, zero, zero, everything)
    elif sh.all_top(z.shape[1]):
        sums = RowSums(z_max, log_z, z_x, u, plogp_rest, u, plogp_rest, everything)
    else:
        top, thr, s_top, plogp_top = _top_set(z, x, lse, sh.k)
        sums = RowSums(z_max, log_z, z_x, u, plogp_rest, s_top, plogp_top, z_x >= thr)
    return sums, GradState(p, x, top if sh.ranks_matter else None)


def _top_set(z: Tensor, x: Tensor, lse: Tensor, k: int) -> tuple[TopSet, Tensor, Tensor, Tensor]:
    """K for k < V, its threshold, and the sums of pi and pi log pi over its others."""
    # One place more than k shows whether ties with the k-th logit reach beyond the top k.
    vals, idx = torch.topk(z, k + 1, dim=-1)
    thr = vals[:, k - 1]
    tie_rows = torch.nonzero(vals[:, k] == thr).squeeze(1)
    vals, idx = vals[:, :k], idx[:, :k]
    log_p = vals - lse[:, None]
    p_others = torch.exp(log_p).masked_fill_(idx == x[:, None], 0.0)
    s_top = p_others.sum(dim=-1)
    plogp_top = (p_others * log_p).sum(dim=-1)

    tie_extra = z[tie_rows] == thr[tie_rows, None]
    tie_extra.scatter_(1, idx[tie_rows], False)
    tie_extra.scatter_(1, x[tie_rows, None], False)
    tie_logp = thr[tie_rows] - lse[tie_rows]
    tie_p = torch.exp(tie_logp)
    n_extra = tie_extra.sum(dim=-1)
    s_top.index_add_(0, tie_rows, n_extra * tie_p)
    plogp_top.index_add_(0, tie_rows, n_extra * tie_p * tie_logp)
    return TopSet(idx, p_others, tie_rows, tie_extra, tie_p), thr, s_top, plogp_top


def gradient(
    state: GradState, terms: RowTerms, sh: Shaping, scale: Tensor, overwrite_logits: bool = False
) -> Tensor:
    """scale * dL/dz as float32 [N, V], written over state.p: pi_j (W - c_j), then column x.

    It never touches the logits, so overwrite_logits (allowed, not required) is moot here.
    """
    p, x, top = state
    g = p.mul_(((terms.W - sh.base_lam(p.shape[1])) * scale)[:, None])
    if top is not None:  # tokens of K have c_j = lam_top instead of lam_tail
        shift = (sh.lam_tail - sh.lam_top) * scale
        g.scatter_add_(1, top.idx, top.p_others * shift[:, None])
        if top.tie_rows.numel():
            g[top.tie_rows] += top.tie_extra * (top.tie_p * shift[top.tie_rows])[:, None]
    return g.scatter_(1, x[:, None], (terms.g_x * scale)[:, None])
