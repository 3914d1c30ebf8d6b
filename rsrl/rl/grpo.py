"""GRPO as the paper ran it: group-normalised advantages, PPO ratio with clip-higher,
dynamic sampling, token-level aggregation, and an optional KL to a frozen reference; and
the correction for samples drawn by an engine whose policy differs from the trainer's.

Pure tensor functions, so each line of the algorithm can be read and tested on its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


def group_advantages(rewards: Tensor, adv_norm: str, eps: float = 1e-6) -> Tensor:
    """[groups, group_size] rewards -> advantages (r - mean) / std within each group."""
    centred = rewards - rewards.mean(dim=1, keepdim=True)
    if adv_norm == "none":
        return centred
    return centred / (rewards.std(dim=1, keepdim=True) + eps)


def informative_groups(rewards: Tensor) -> Tensor:
    """Dynamic sampling: a group whose rewards are all equal has zero advantage, no signal."""
    return (rewards.max(dim=1).values - rewards.min(dim=1).values) > 0


@dataclass(frozen=True)
class PolicyLoss:
    loss: Tensor
    clip_fraction: Tensor  # share of response tokens where the clipped term is the one taken
    approx_kl: Tensor  # mean of (ratio - 1) - log ratio against the rollout-time policy


def clipped_policy_loss(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    mask: Tensor,
    *,
    eps_low: float,
    eps_high: float,
    loss_agg: str,
    total_tokens: float,
    total_sequences: float,
    is_weights: Tensor | None = None,
) -> PolicyLoss:
    """PPO-clip over response tokens. `logp`, `old_logp`, `mask`: [B, T]; `advantages`: [B].

    `total_tokens` / `total_sequences` are the counts of the whole step (across micro-batches
    and workers), so that summing micro-batch losses gives the step's token-mean (or
    seq-mean-token-mean) exactly, whatever the split. `is_weights` [B, T] (detached)
    multiply each token's loss: the off-policy correction's (`off_policy_weights`).
    """
    log_ratio = (logp - old_logp) * mask
    ratio = log_ratio.exp()
    adv = advantages[:, None]
    unclipped = ratio * adv
    clipped = ratio.clamp(1 - eps_low, 1 + eps_high) * adv
    per_token = -torch.minimum(unclipped, clipped) * mask
    if is_weights is not None:
        per_token = per_token * is_weights
    if loss_agg == "token-mean":
        loss = per_token.sum() / total_tokens
    else:  # seq-mean-token-mean: each sequence weighs the same, whatever its length
        loss = (per_token.sum(1) / mask.sum(1).clamp(min=1)).sum() / total_sequences
    # Only where the min takes the clipped term does the clip cut the gradient (as verl's
    # pg_clipfrac): A > 0 above 1 + eps_high, A < 0 below 1 - eps_low; not the other two sides.
    was_clipped = (clipped < unclipped) & mask.bool()
    n = mask.sum().clamp(min=1)
    approx_kl = ((ratio - 1) - log_ratio) * mask
    return PolicyLoss(loss=loss, clip_fraction=was_clipped.sum() / n, approx_kl=approx_kl.sum() / n)


def kl_to_reference(logp: Tensor, ref_logp: Tensor, mask: Tensor, total_tokens: float) -> Tensor:
    """The k3 estimator of KL(pi || pi_ref), summed over response tokens / the step's tokens."""
    delta = (ref_logp - logp) * mask
    return ((delta.exp() - 1 - delta) * mask).sum() / total_tokens


@dataclass(frozen=True)
class OffPolicyWeights:
    weights: Tensor  # [B, T], detached: what each token's loss is multiplied by
    corrected: Tensor  # tokens (level token) or sequences (level sequence) capped or dropped
    mismatch_kl: Tensor  # k3 estimate of KL(mu || pi_old), summed over the response tokens


def off_policy_weights(
    old_logp: Tensor,
    behaviour_logp: Tensor,
    mask: Tensor,
    *,
    correction: str,
    level: str,
    cap: float,
) -> OffPolicyWeights:
    """Importance weights for samples drawn from the engine's policy mu, not pi_old.

    The ratio pi_old / mu is taken per token, or per sequence (the product over its
    tokens). `tis` multiplies the loss by min(ratio, cap); `mis` drops (weight 0) what
    falls outside [1 / cap, cap] and keeps the rest at 1; `none` weighs all 1. All [B, T].
    """
    log_ratio = ((old_logp - behaviour_logp) * mask).detach()
    ratio = log_ratio.exp()
    # Over the engine's samples, k3 = (r - 1) - log r, r = pi_old / mu, estimates KL(mu || pi_old).
    mismatch_kl = (((ratio - 1) - log_ratio) * mask).sum()
    if level == "sequence":
        log_ratio = log_ratio.sum(dim=1, keepdim=True)
        ratio = log_ratio.exp()
        units = mask.amax(dim=1, keepdim=True)  # sequences with a response token here
    else:
        units = mask
    if correction == "tis":
        weights, corrected = ratio.clamp(max=cap), ratio > cap
    elif correction == "mis":
        kept = (ratio >= 1 / cap) & (ratio <= cap)
        weights, corrected = kept.to(ratio.dtype), ~kept
    else:
        weights, corrected = torch.ones_like(ratio), torch.zeros_like(ratio, dtype=torch.bool)
    return OffPolicyWeights(
        weights=weights.expand_as(mask) * mask,
        corrected=(corrected * units).sum(),
        mismatch_kl=mismatch_kl,
    )
