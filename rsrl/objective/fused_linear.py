"""The loss straight from hidden states and the LM-head weight, never holding [N, V] logits.

Tokens are processed in chunks: each chunk's logits are computed, reduced to the loss and
dL/dlogits by an `Impl` (Triton on CUDA, the reference elsewhere), and turned at once into
the chunk's rows of dL/dhidden and its share of dL/dweight. Peak extra memory is
O(chunk x V) plus the two gradients; the gradients are exact (nothing is filtered).
With reduction "mean" or "sum" the gradients are made in forward, when the scale of
every row is known; with "none" the per-row scale only arrives in backward, so backward
runs the chunks again (one more [chunk, D] x [D, V] product per chunk).
dL/dweight is accumulated over chunks in float32 and cast to the weight's dtype once at the
end: a bf16 running sum loses the small late chunks (7x the unfused error at 256 chunks).

ZeRO-3. DeepSpeed stage 3 partitions the head weight: outside its owning module's
forward, `head.weight` is an empty placeholder. To train, make the call inside a module's
forward and tell DeepSpeed that this module uses the weight, so that it gathers it for
the forward and backward of that module and reduces its gradient as usual:

    deepspeed.zero.register_external_parameter(model, model.lm_head.weight)  # once
    ...
    def forward(self, input_ids, targets):  # in `model`
        hidden = self.body(input_ids)
        return fused_linear_reward_shaped_loss(hidden, self.lm_head.weight, targets, ...)

For a call without gradients (evaluation), gathering around it is enough:

    with deepspeed.zero.GatheredParameters([head.weight], modifier_rank=None):
        loss = fused_linear_reward_shaped_loss(hidden, head.weight, targets, ...)
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor

from rsrl.objective.stat_names import STAT_NAMES

from .impl import Impl
from .shaping import Shaping, reduce_rows, row_scale, row_terms, scale_grad, stat_means

# Each chunk adds a rank-`chunk` update to the whole [V, D] dL/dweight, reading and writing
# it: below a few hundred rows that traffic, not the products, sets the time.
MIN_CHUNK = 256


def default_chunk(n_tokens: int, vocab: int, dim: int) -> int:
    """Tokens per chunk: logits about as large as the hidden states, but >= MIN_CHUNK rows."""
    return min(n_tokens, max(MIN_CHUNK, n_tokens * dim // vocab))


class _Chunked(NamedTuple):
    loss: Tensor  # [N] float32
    stats: Tensor | None  # [len(STAT_NAMES), N]
    grad_hidden: Tensor | None
    grad_weight: Tensor | None


def _run_chunks(
    hidden: Tensor,
    weight: Tensor,
    x: Tensor,
    valid: Tensor,
    sh: Shaping,
    impl: Impl,
    chunk: int,
    with_stats: bool,
    scale: Tensor | None,
    needs: tuple[bool, bool],
) -> _Chunked:
    """Loss rows (and, given the per-row scale, scaled gradients) chunk by chunk."""
    n = hidden.shape[0]
    need_top = sh.ranks_matter or with_stats
    loss = hidden.new_empty(n, dtype=torch.float32)
    stats = hidden.new_empty(len(STAT_NAMES), n, dtype=torch.float32) if with_stats else None
    grad_h = torch.empty_like(hidden) if scale is not None and needs[0] else None
    grad_w = _WeightGrad(weight) if scale is not None and needs[1] else None
    for start in range(0, n, chunk):
        rows = slice(start, start + chunk)
        h = hidden[rows]
        sums, state = impl.row_sums(h @ weight.T, x[rows], sh, need_top)
        terms = row_terms(sums, sh, valid[rows], with_stats)
        loss[rows] = terms.loss
        if stats is not None:
            assert terms.stats is not None  # row_terms gives stats when with_stats
            stats[:, rows] = terms.stats
        if scale is None:
            continue
        g = impl.gradient(state, terms, sh, scale[rows], overwrite_logits=True)
        g = g.to(weight.dtype)
        if grad_h is not None:
            torch.mm(g, weight, out=grad_h[rows])
        if grad_w is not None:
            grad_w.add(g, h)
    return _Chunked(loss, stats, grad_h, grad_w.result() if grad_w is not None else None)


class _WeightGrad:
    """sum over chunks of g.T @ h in float32; each product stays in the weight's dtype (the
    fast matmul; cuBLAS accumulates it in float32), only the running sum is widened."""

    def __init__(self, weight: Tensor) -> None:
        self.dtype = weight.dtype
        self.total = torch.zeros_like(weight, dtype=torch.float32)
        self.product = None if weight.dtype == torch.float32 else torch.empty_like(weight)

    def add(self, g: Tensor, h: Tensor) -> None:
        if self.product is None:
            self.total.addmm_(g.T, h)
        else:
            self.total += torch.mm(g.T, h, out=self.product)

    def result(self) -> Tensor:
        return self.total.to(self.dtype)


class FusedLinearLoss(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        hidden: Tensor,
        weight: Tensor,
        targets: Tensor,
        sh: Shaping,
        ignore_index: int,
        reduction: str,
        with_stats: bool,
        impl: Impl,
        chunk_size: int | None,
    ) -> tuple[Tensor, Tensor]:
        valid = targets != ignore_index
        x = torch.where(valid, targets, 0)
        needs = (ctx.needs_input_grad[0], ctx.needs_input_grad[1])
        chunk = chunk_size or default_chunk(hidden.shape[0], weight.shape[0], weight.shape[1])
        ctx.deferred = reduction == "none" and any(needs)
        scale = row_scale(valid, reduction) if any(needs) and not ctx.deferred else None
        out = _run_chunks(hidden, weight, x, valid, sh, impl, chunk, with_stats, scale, needs)
        loss = reduce_rows(out.loss, valid, reduction)
        if with_stats:
            assert out.stats is not None  # _run_chunks gives stats when with_stats
            stats = stat_means(out.stats, valid)
        else:
            stats = loss.new_empty(0)
        ctx.mark_non_differentiable(stats)
        ctx.reduction, ctx.needs = reduction, needs
        if ctx.deferred:
            ctx.run = (sh, impl, chunk)
            ctx.save_for_backward(hidden, weight, x, valid)
        else:
            ctx.save_for_backward(out.grad_hidden, out.grad_weight)
        return loss, stats

    @staticmethod
    def backward(ctx: Any, grad_loss: Tensor, _grad_stats: Tensor) -> tuple[Tensor | None, ...]:
        if ctx.deferred:
            hidden, weight, x, valid = ctx.saved_tensors
            sh, impl, chunk = ctx.run
            with torch.no_grad():
                out = _run_chunks(
                    hidden, weight, x, valid, sh, impl, chunk, False, grad_loss * valid, ctx.needs
                )
            grads: tuple[Tensor | None, ...] = (out.grad_hidden, out.grad_weight)
        else:
            grads = tuple(
                None if g is None else scale_grad(g, grad_loss, ctx.reduction)
                for g in ctx.saved_tensors
            )
        return grads + (None,) * 7
