"""One GRPO step's policy update on one trainer worker.

The step's samples are cut into `mini_batches` (one optimizer update each), each worker's
share of a mini-batch into micro-batches (one forward/backward each): `micro_batch_size`
sequences, or as many as fit `micro_batch_tokens` padded tokens. The loss of every
micro-batch is normalised by its whole mini-batch, across workers, so the update is the
step's token-mean whatever the split. Each token's loss is weighted by the off-policy
correction (rl.off_policy) for the engine having sampled it. The logged diagnostics are
means over the step's response tokens (or sequences) on every worker.
"""

from __future__ import annotations

import numpy as np
import torch

from rsrl.rl.batch import PaddedBatch, Sample, dummy_batch, pad_samples
from rsrl.rl.config import RLSpec
from rsrl.rl.grpo import clipped_policy_loss, kl_to_reference, off_policy_weights
from rsrl.train.batches import BatchLayout
from rsrl.train.metrics import optimizer_step, sum_across_workers


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


def update_policy(
    policy,
    samples: list[Sample],
    rl: RLSpec,
    layout: BatchLayout,
    rank: int,
    pad_id: int,
    reference,
) -> dict[str, float]:
    """`mini_batches` optimizer updates over the step's samples; old log-probs are the
    policy's before the first update (so with one mini-batch the ratio is exactly 1)."""
    split = mini_batch_indices(len(samples), layout.world_size, rl.mini_batches)
    # A mini-batch empty on every rank has no tokens to normalise by (0 / 0 = NaN): every
    # rank cuts the same split, so all of them skip it together.
    kept = [per_rank for per_rank in split if any(len(ix) for ix in per_rank)]
    minis = micro_batch_chunks(samples, kept, rank, layout.grad_accum, rl.micro_batch_tokens)
    temperature = rl.rollout.temperature
    old = _old_logprobs(policy, samples, minis, pad_id, temperature)
    means = StepMeans()
    op = rl.off_policy
    norm = float("nan")
    for m, chunks in enumerate(minis):
        counts = _response_counts([samples[i] for i in np.concatenate(kept[m])])
        for c, chunk in enumerate(chunks):
            # The mini-batch's last micro-batch steps the optimizer, however many there are.
            policy.set_gradient_accumulation_boundary(c == len(chunks) - 1)
            batch = _micro_batch(samples, chunk, pad_id, policy.device)
            out = policy(batch.input_ids, batch.attention_mask, batch.labels, temperature)
            # The one-token stand-in for an empty micro-batch only keeps the workers' passes
            # in step: its tokens weigh nothing, in the loss as in the metrics.
            mask = out.mask if len(chunk) else torch.zeros_like(out.mask)
            old_logp = old[m][c] if old else out.logp.detach()
            # mu, the engine's log-probs, are those of temperature 1 (validate holds a
            # correction to it); with `none` every weight is 1.
            off = off_policy_weights(
                old_logp,
                batch.rollout_logp,
                mask,
                correction=op.correction,
                level=op.level,
                cap=op.cap,
            )
            pl = clipped_policy_loss(
                out.logp,
                old_logp,
                batch.advantages,
                mask,
                eps_low=rl.clip.eps_low,
                eps_high=rl.clip.eps_high,
                loss_agg=rl.loss_agg,
                is_weights=off.weights,
                **counts,
            )
            loss = pl.loss
            if reference is not None:
                ref_logp = _reference_logprobs(reference, batch, temperature)
                kl = kl_to_reference(out.logp, ref_logp, mask, counts["total_tokens"])
                loss = loss + rl.kl_coef * kl
                means.add("kl", kl.detach() * counts["total_tokens"])
            # DeepSpeed divides by its configured accumulation steps and averages over
            # workers; the loss is already the step's sum-normalised share: undo both.
            policy.backward(loss * layout.grad_accum * layout.world_size)
            norm = optimizer_step(policy)
            tokens = mask.sum()
            # The forward's token slots, and how many of them are padding (a stand-in: none).
            slots = batch.attention_mask.numel() if len(chunk) else 0
            padding = slots - int(batch.attention_mask.sum()) if len(chunk) else 0
            means.count(mask, slots)
            means.add("padding_fraction", padding, "slots")
            means.add("clip_fraction", pl.clip_fraction * tokens)
            means.add("approx_kl", pl.approx_kl.detach() * tokens)
            means.add("entropy", out.entropy * tokens)
            if temperature == 1.0:  # rollout engines return temperature-1 logprobs
                # Against the policy that sampled (before this step's first update).
                means.add("logprob_mismatch", ((old_logp - batch.rollout_logp).abs() * mask).sum())
                means.add("mismatch_kl", off.mismatch_kl)
            if op.correction != "none":
                per = "tokens" if op.level == "token" else "sequences"
                means.add("is_capped_fraction", off.corrected, per)
    return {
        **means.reduce(),
        "skipped_mini_batches": float(len(split) - len(kept)),
        "grad_norm": norm,  # the last update's
    }


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


def _response_counts(samples: list[Sample]) -> dict[str, float]:
    return {
        "total_tokens": float(sum(len(s.response_ids) for s in samples)),
        "total_sequences": float(len(samples)),
    }


def _micro_batch(samples: list[Sample], chunk: np.ndarray, pad_id: int, device) -> PaddedBatch:
    batch = pad_samples([samples[i] for i in chunk], pad_id) if len(chunk) else dummy_batch(pad_id)
    return batch.to(device)


def _old_logprobs(
    policy, samples, minis, pad_id, temperature: float
) -> list[list[torch.Tensor]] | None:
    """The policy's log-probs of every micro-batch before the step's first update; None with
    one mini-batch, where they are the update's own forward, detached."""
    if len(minis) <= 1:
        return None
    old = []
    with torch.no_grad():
        for chunks in minis:
            batches = [_micro_batch(samples, chunk, pad_id, policy.device) for chunk in chunks]
            old.append(
                [policy(b.input_ids, b.attention_mask, b.labels, temperature).logp for b in batches]
            )
    return old


def _reference_logprobs(reference, batch: PaddedBatch, temperature: float) -> torch.Tensor:
    with torch.no_grad():
        return reference(batch.input_ids, batch.attention_mask, batch.labels, temperature).logp
