"""GRPO as the paper ran it: group-normalised advantages, PPO ratio with clip-higher,
dynamic sampling, token-level aggregation, and an optional KL to a frozen reference.

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
) -> PolicyLoss:
    """PPO-clip over response tokens. `logp`, `old_logp`, `mask`: [B, T]; `advantages`: [B].

    `total_tokens` / `total_sequences` are the counts of the whole step (across micro-batches
    and workers), so that summing micro-batch losses gives the step's token-mean (or
    seq-mean-token-mean) exactly, whatever the split.
    """
    log_ratio = (logp - old_logp) * mask
    ratio = log_ratio.exp()
    adv = advantages[:, None]
    unclipped = ratio * adv
    clipped = ratio.clamp(1 - eps_low, 1 + eps_high) * adv
    per_token = -torch.minimum(unclipped, clipped) * mask
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
