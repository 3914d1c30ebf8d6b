"""Rollouts as tensors, and how a step's samples are cut for the update.

Samples become right-padded tensors (labels only on responses); a step's samples are cut
into mini-batches (one optimizer update each) and each worker's share into micro-batches
(one forward/backward each); StepMeans turns per-micro-batch sums into the step's means.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from rsrl.models.moe import NO_REPLAY
from rsrl.rl.policy import IGNORE
from rsrl.train.metrics import sum_across_workers


@dataclass(frozen=True)
class Sample:
    """One sampled completion with what the update needs."""

    prompt_ids: list[int]
    response_ids: list[int]
    rollout_logprobs: list[float]  # the sampler's log-probabilities of response_ids
    reward: float
    advantage: float
    # MoE on vLLM: the engine's experts, [prompt + response - 1, layers, k] (Completion's)
    routed_experts: np.ndarray | None = None


@dataclass(frozen=True)
class PaddedBatch:
    input_ids: torch.Tensor  # [B, L]
    attention_mask: torch.Tensor  # [B, L]
    labels: torch.Tensor  # [B, L]: response tokens, IGNORE elsewhere
    advantages: torch.Tensor  # [B]
    rollout_logp: torch.Tensor  # [B, L-1], aligned with the policy's TokenLogprobs
    routed_experts: torch.Tensor | None = None  # [B, L, layers, k], NO_REPLAY where none

    def to(self, device) -> PaddedBatch:
        moved: dict[str, Any] = {
            f.name: None if (t := getattr(self, f.name)) is None else t.to(device)
            for f in dataclasses.fields(self)
        }
        return PaddedBatch(**moved)


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
    routed = _padded_routing(samples, length)
    return PaddedBatch(input_ids, attention, labels, advantages, rollout_logp, routed)


def _padded_routing(samples: Sequence[Sample], length: int) -> torch.Tensor | None:
    """The samples' engine routing as [B, length, layers, k]; None when none has any."""
    shapes = [s.routed_experts.shape[1:] for s in samples if s.routed_experts is not None]
    if not shapes:
        return None
    routed = torch.full((len(samples), length, *shapes[0]), NO_REPLAY, dtype=torch.long)
    for i, s in enumerate(samples):
        if s.routed_experts is not None:
            routed[i, : len(s.routed_experts)] = torch.from_numpy(s.routed_experts.astype(np.int64))
    return routed


def dummy_batch(pad_id: int) -> PaddedBatch:
    """A one-token stand-in for an empty micro-batch: every worker must run the same number
    of forward/backward passes per step (DeepSpeed's gradient accumulation counts them)."""
    return pad_samples([Sample([pad_id], [pad_id], [0.0], 0.0, 0.0)], pad_id)


def mini_batch_indices(n: int, world_size: int, mini_batches: int) -> list[list[np.ndarray]]:
    """[mini-batch][rank] -> sample indices: each rank's share, cut into mini-batches."""
    shares = np.array_split(np.arange(n), world_size)
    per_rank = [np.array_split(share, mini_batches) for share in shares]
    return [[per_rank[r][m] for r in range(world_size)] for m in range(mini_batches)]


def micro_batch_chunks(
    samples: list[Sample],
    kept: list[list[np.ndarray]],
    rank: int,
    grad_accum: int,
    budget: int | None,
) -> list[list[np.ndarray]]:
    """[mini-batch][micro-batch] -> this rank's sample indices: `grad_accum` micro-batches,
    or with a token `budget` as many as the rank that needs most has; the others' extra
    ones are empty (stand-ins), so that every rank takes the same passes."""
    if budget is None:
        return [np.array_split(per_rank[rank], grad_accum) for per_rank in kept]
    lengths = [len(s.prompt_ids) + len(s.response_ids) for s in samples]
    minis = []
    for per_rank in kept:
        cuts = [token_budget_chunks(ix, lengths, budget) for ix in per_rank]
        passes = max(len(cut) for cut in cuts)
        empty = [np.zeros(0, dtype=np.int64)] * (passes - len(cuts[rank]))
        minis.append(cuts[rank] + empty)
    return minis


def token_budget_chunks(indices: np.ndarray, lengths: list[int], budget: int) -> list[np.ndarray]:
    """`indices`, longest sequence first, cut into micro-batches whose padded size (rows x
    the longest row) stays within `budget` tokens; a longer sequence goes alone. Similar
    lengths share a micro-batch, so little of the forward is padding."""
    chunks: list[list[int]] = []
    for i in sorted(indices.tolist(), key=lambda i: -lengths[i]):
        if chunks and (len(chunks[-1]) + 1) * lengths[chunks[-1][0]] <= budget:
            chunks[-1].append(i)
        else:
            chunks.append([i])
    return [np.array(chunk, dtype=np.int64) for chunk in chunks]


def response_counts(samples: list[Sample]) -> dict[str, float]:
    return {
        "total_tokens": float(sum(len(s.response_ids) for s in samples)),
        "total_sequences": float(len(samples)),
    }


def micro_batch(samples: list[Sample], chunk: np.ndarray, pad_id: int, device) -> PaddedBatch:
    batch = pad_samples([samples[i] for i in chunk], pad_id) if len(chunk) else dummy_batch(pad_id)
    return batch.to(device)


class StepMeans:
    """Sums of a step's diagnostics over its response tokens (or sequences), reduced across
    workers to means per token (or sequence): not means of micro-batch means, which weigh
    short and long micro-batches alike."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.per: dict[str, str] = {}  # name -> "tokens" | "sequences" | "slots"
        self.counts = {"tokens": 0.0, "sequences": 0.0, "slots": 0.0}

    def count(self, mask: torch.Tensor, slots: int) -> None:
        """A micro-batch's response `mask` and its forward's token slots (rows x length)."""
        self.counts["tokens"] += float(mask.sum())
        self.counts["sequences"] += float((mask.sum(dim=1) > 0).sum())
        self.counts["slots"] += slots

    def add(self, name: str, total: torch.Tensor | float, per: str = "tokens") -> None:
        self.sums[name] = self.sums.get(name, 0.0) + float(total)
        self.per[name] = per

    def reduce(self) -> dict[str, float]:
        """Collective: every worker must have added the same names."""
        counts = {f"_{unit}": n for unit, n in self.counts.items()}
        summed = sum_across_workers({**self.sums, **counts})
        return {name: summed[name] / max(summed[f"_{self.per[name]}"], 1.0) for name in self.sums}
