"""Rollouts as tensors: prompt + response token ids, right-padded, labels only on responses."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from rsrl.rl.policy import IGNORE


@dataclass(frozen=True)
class Sample:
    """One sampled completion with what the update needs."""

    prompt_ids: list[int]
    response_ids: list[int]
    rollout_logprobs: list[float]  # the sampler's log-probabilities of response_ids
    reward: float
    advantage: float


@dataclass(frozen=True)
class PaddedBatch:
    input_ids: torch.Tensor  # [B, L]
    attention_mask: torch.Tensor  # [B, L]
    labels: torch.Tensor  # [B, L]: response tokens, IGNORE elsewhere
    advantages: torch.Tensor  # [B]
    rollout_logp: torch.Tensor  # [B, L-1], aligned with the policy's TokenLogprobs

    def to(self, device) -> PaddedBatch:
        return PaddedBatch(
            *(
                t.to(device)
                for t in (
                    self.input_ids,
                    self.attention_mask,
                    self.labels,
                    self.advantages,
                    self.rollout_logp,
                )
            )
        )


def pad_samples(samples: Sequence[Sample], pad_id: int) -> PaddedBatch:
    length = max(len(s.prompt_ids) + len(s.response_ids) for s in samples)
    n = len(samples)
    input_ids = torch.full((n, length), pad_id, dtype=torch.long)
    attention = torch.zeros((n, length), dtype=torch.long)
    labels = torch.full((n, length), IGNORE, dtype=torch.long)
    rollout_logp = torch.zeros((n, length - 1))
    for i, s in enumerate(samples):
        p, r = len(s.prompt_ids), len(s.response_ids)
        input_ids[i, : p + r] = torch.tensor(s.prompt_ids + s.response_ids)
        attention[i, : p + r] = 1
        labels[i, p : p + r] = torch.tensor(s.response_ids)
        rollout_logp[i, p - 1 : p - 1 + r] = torch.tensor(s.rollout_logprobs)
    advantages = torch.tensor([s.advantage for s in samples], dtype=torch.float32)
    return PaddedBatch(input_ids, attention, labels, advantages, rollout_logp)


def dummy_batch(pad_id: int) -> PaddedBatch:
    """A one-token stand-in for an empty micro-batch: every worker must run the same number
    of forward/backward passes per step (DeepSpeed's gradient accumulation counts them)."""
    return pad_samples([Sample([pad_id], [pad_id], [0.0], 0.0, 0.0)], pad_id)
