"""Public entry points: argument checks, choice of implementation, the autograd Function.

Both implementations reduce logits to `shaping.RowSums` and produce dL/dz through
`gradient` (see `impl`); they differ in when: the reference builds the gradient in forward (its
softmax is already there), the Triton one in backward from the logits and a few numbers per
row (no [N, V] tensor is kept between the passes).
"""

from __future__ import annotations

import math
from typing import Any, Literal, TypedDict, get_args

import torch
from torch import Tensor

from .config import ImplName, PositiveForm, beta_bound
from .fused_linear import FusedLinearLoss
from .impl import Impl, select_impl
from .shaping import RowTerms, Shaping, reduce_rows, row_scale, row_terms, scale_grad, stat_means
from .stat_names import STAT_NAMES

Reduction = Literal["mean", "sum", "none"]


class LossStats(TypedDict):
    """Means over non-ignored tokens, as detached 0-d float32 tensors (no device sync); the
    keys are rsrl.objective.stat_names.STAT_NAMES, in order."""

    nll: Tensor
    entropy: Tensor  # of pi over the vocabulary
    local_entropy: Tensor  # of pi renormalised on K_t
    topk_mass: Tensor  # pi(K_t)
    tail_mass: Tensor  # 1 - pi(K_t)
    p_target: Tensor


def reward_shaped_loss(
    logits: Tensor,
    targets: Tensor,
    *,
    beta: float = 0.0,
    lam_top: float = 0.0,
    lam_tail: float = 0.0,
    k: int = 100,
    positive_form: str = "product",
    ignore_index: int = -100,
    reduction: str = "mean",
    impl: str = "auto",
    return_stats: bool = False,
) -> Tensor | tuple[Tensor, LossStats]:
    """The reward-shaped loss of [N, V] or [B, T, V] logits (docs/objective.md section 2).

    K_t is every token whose logit is >= the k-th largest of its row (k >= V: all). The loss
    is float32 whatever the logits' dtype; reduction "none" gives one value per token (0 at
    ignored ones), "mean" averages over non-ignored tokens (0, with zero gradients, if there
    are none: `F.cross_entropy` gives a nan loss there). With return_stats, also returns
    `LossStats`.
    """
    sh = make_shaping(beta, lam_top, lam_tail, k, positive_form)
    check_call(ignore_index, reduction, impl, return_stats)
    _check_tensor("logits", logits, floating=True, ndims=(2, 3))
    _check_targets(targets, logits.shape[:-1])
    loss, stats = _RewardShapedLoss.apply(
        logits.reshape(-1, logits.shape[-1]),
        targets.reshape(-1).long(),
        sh,
        ignore_index,
        reduction,
        return_stats,
        select_impl(impl, logits.device),
    )
    return finish(loss, stats, targets.shape, reduction, return_stats)


def fused_linear_reward_shaped_loss(
    hidden: Tensor,
    weight: Tensor,
    targets: Tensor,
    *,
    beta: float = 0.0,
    lam_top: float = 0.0,
    lam_tail: float = 0.0,
    k: int = 100,
    positive_form: str = "product",
    ignore_index: int = -100,
    reduction: str = "mean",
    impl: str = "auto",
    return_stats: bool = False,
    chunk_size: int | None = None,
) -> Tensor | tuple[Tensor, LossStats]:
    """`reward_shaped_loss(hidden @ weight.T, targets, ...)` without the [N, V] logits.

    hidden is [N, D] or [B, T, D], weight the [V, D] head. See `fused_linear` for memory
    and for ZeRO-3 (the weight must be gathered around this call).
    """
    sh = make_shaping(beta, lam_top, lam_tail, k, positive_form)
    check_call(ignore_index, reduction, impl, return_stats)
    _check_tensor("hidden", hidden, floating=True, ndims=(2, 3))
    _check_tensor("weight", weight, floating=True, ndims=(2,))
    if weight.shape[1] != hidden.shape[-1]:
        raise ValueError(
            f"weight must be [V, D] with D = hidden.shape[-1] = {hidden.shape[-1]},"
            f" got {tuple(weight.shape)}"
        )
    if weight.dtype != hidden.dtype or weight.device != hidden.device:
        raise ValueError(
            f"weight must have hidden's dtype and device ({hidden.dtype}, "
            f"{hidden.device}), got {weight.dtype}, {weight.device}"
        )
    _check_targets(targets, hidden.shape[:-1])
    if chunk_size is not None and (not _is_int(chunk_size) or chunk_size < 1):
        raise ValueError(f"chunk_size must be None or an int >= 1, got {chunk_size!r}")
    loss, stats = FusedLinearLoss.apply(
        hidden.reshape(-1, hidden.shape[-1]),
        weight,
        targets.reshape(-1).long(),
        sh,
        ignore_index,
        reduction,
        return_stats,
        select_impl(impl, hidden.device),
        chunk_size,
    )
    return finish(loss, stats, targets.shape, reduction, return_stats)


def finish(
    loss: Tensor, stats: Tensor, shape: torch.Size, reduction: str, return_stats: bool
) -> Tensor | tuple[Tensor, LossStats]:
    if reduction == "none":
        loss = loss.view(shape)
    if not return_stats:
        return loss
    named: LossStats = dict(zip(STAT_NAMES, stats.detach().unbind()))  # type: ignore[assignment]
    return loss, named


class _RewardShapedLoss(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        logits: Tensor,
        targets: Tensor,
        sh: Shaping,
        ignore_index: int,
        reduction: str,
        with_stats: bool,
        impl: Impl,
    ) -> tuple[Tensor, Tensor]:
        valid = targets != ignore_index
        x = torch.where(valid, targets, 0)
        sums, state = impl.row_sums(logits, x, sh, sh.ranks_matter or with_stats)
        terms = row_terms(sums, sh, valid, with_stats)
        loss = reduce_rows(terms.loss, valid, reduction)
        if with_stats:
            assert terms.stats is not None  # row_terms gives stats when with_stats
            stats = stat_means(terms.stats, valid)
        else:
            stats = loss.new_empty(0)
        ctx.mark_non_differentiable(stats)
        ctx.reduction, ctx.sh, ctx.impl = reduction, sh, impl
        ctx.dtype = logits.dtype
        if ctx.needs_input_grad[0]:
            scale = row_scale(valid, reduction)
            if impl.grad_in_forward:
                ctx.save_for_backward(impl.gradient(state, terms, sh, scale).to(logits.dtype))
            else:  # state is a tuple of tensors; saved so autograd frees it after backward
                ctx.n_state = len(state)
                ctx.state_type = type(state)
                ctx.save_for_backward(*state, terms.W, terms.g_x, scale)
        return loss, stats

    @staticmethod
    def backward(ctx: Any, grad_loss: Tensor, _grad_stats: Tensor) -> tuple[Tensor | None, ...]:
        rows_grad = grad_loss[:, None] if ctx.reduction == "none" else grad_loss
        if ctx.impl.grad_in_forward:
            (grad,) = ctx.saved_tensors
            grad = scale_grad(grad, rows_grad, ctx.reduction)
        else:
            saved = ctx.saved_tensors
            state = ctx.state_type(*saved[: ctx.n_state])
            W, g_x, scale = saved[ctx.n_state :]
            terms = RowTerms(grad_loss.new_empty(0), W, g_x, None)
            grad = ctx.impl.gradient(state, terms, ctx.sh, scale * grad_loss)
        return grad, None, None, None, None, None, None


# ---- argument checks: each error names the argument at fault ----------------------------


def make_shaping(
    beta: float, lam_top: float, lam_tail: float, k: int, positive_form: str
) -> Shaping:
    for name, value in (("beta", beta), ("lam_top", lam_top), ("lam_tail", lam_tail)):
        is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not is_number or not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value!r}")
    if not _is_int(k) or k < 1:
        raise ValueError(f"k must be an int >= 1, got {k!r}")
    if positive_form not in get_args(PositiveForm):
        raise ValueError(
            f"positive_form must be one of {get_args(PositiveForm)}, got {positive_form!r}"
        )
    bound = beta_bound(positive_form, beta)
    if bound:
        raise ValueError(f"beta {bound}, got {beta}")
    return Shaping(float(beta), float(lam_top), float(lam_tail), int(k), positive_form)


def check_call(ignore_index: int, reduction: str, impl: str, return_stats: bool) -> None:
    if not _is_int(ignore_index):
        raise ValueError(f"ignore_index must be an int, got {ignore_index!r}")
    if reduction not in get_args(Reduction):
        raise ValueError(f"reduction must be one of {get_args(Reduction)}, got {reduction!r}")
    if impl not in get_args(ImplName):
        raise ValueError(f"impl must be one of {get_args(ImplName)}, got {impl!r}")
    if not isinstance(return_stats, bool):
        raise ValueError(f"return_stats must be a bool, got {return_stats!r}")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_tensor(name: str, t: object, *, floating: bool, ndims: tuple[int, ...]) -> None:
    if not isinstance(t, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if floating and not t.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got {t.dtype}")
    if t.dim() not in ndims or t.shape[-1] == 0:
        raise ValueError(
            f"{name} must have {' or '.join(map(str, ndims))} dimensions and a "
            f"non-empty last one, got shape {tuple(t.shape)}"
        )


def _check_targets(targets: object, shape: torch.Size) -> None:
    if not isinstance(targets, Tensor) or targets.dtype not in (torch.int64, torch.int32):
        kind = targets.dtype if isinstance(targets, Tensor) else type(targets).__name__
        raise ValueError(f"targets must be an int64 (or int32) tensor, got {kind}")
    if targets.shape != shape:
        raise ValueError(
            f"targets must have shape {tuple(shape)} (the logits' leading "
            f"dimensions), got {tuple(targets.shape)}"
        )
