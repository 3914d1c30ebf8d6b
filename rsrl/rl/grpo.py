"""GRPO as the paper runs it, in the order it happens. One step, for `rl.prompts_per_step`
prompts:

    1. sample groups     draw prompts, `group_size` completions each from the rollout engines
    2. score             the verifier's reward of every completion
    3. dynamic sampling  drop groups whose rewards are all equal (no signal); refill
    4. advantages        (r - mean) / std within each group
    5. policy loss       PPO-clip with clip-higher, token-mean; off-policy weights for what the
                         engine sampled; an optional KL to a frozen reference
    6. update            `mini_batches` optimizer updates over the step's samples

Steps 1-4 run on trainer rank 0 (`GroupSampler.collect`), which drives the rollout engines
(`rsrl.rl.rollout`); steps 5-6 on every trainer worker, each on its share of the samples
(`update_policy`). The loop around them is rl/loop.py; batching mechanics are rl/batch.py.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor

from rsrl.models.moe import expert_stats
from rsrl.rl.batch import (
    PaddedBatch,
    Sample,
    StepMeans,
    micro_batch,
    micro_batch_chunks,
    mini_batch_indices,
    response_counts,
)
from rsrl.rl.config import RLSpec
from rsrl.rl.policy import Routing
from rsrl.train.batches import BatchLayout
from rsrl.train.optimizer import optimizer_step

# 1-4. Sample groups, score them, keep the informative ones, with their advantages.


@dataclass
class RolloutBatch:
    samples: list[Sample]
    stats: dict[str, float] = field(default_factory=dict)


@dataclass
class SampledRound:
    """One round of a step's groups as submitted: its prompts and the engines' completions,
    and the weight version (trainer steps synced to the engines) that samples them."""

    items: list[dict]
    texts: list[str]
    completions: Any  # rollout.actors.PendingCompletions
    version: int


@dataclass
class ScoredRound:
    """A round's groups, scored and with their advantages."""

    groups: list[list[Sample]]
    rewards: Tensor  # [groups, group_size]
    version: int

    def to_state(self) -> dict:
        """Plain values, for a checkpoint's client state."""
        groups = [[_plain(s) for s in g] for g in self.groups]
        return {"groups": groups, "rewards": self.rewards.tolist(), "version": self.version}

    @classmethod
    def from_state(cls, state: dict) -> ScoredRound:
        groups = [[_sample(s) for s in g] for g in state["groups"]]
        return cls(groups, torch.tensor(state["rewards"]), state["version"])


def _plain(sample: Sample) -> dict:
    state = dataclasses.asdict(sample)
    if sample.routed_experts is not None:
        state["routed_experts"] = sample.routed_experts.tolist()
    return state


def _sample(state: dict) -> Sample:
    routed = state.get("routed_experts")
    return Sample(**{**state, "routed_experts": None if routed is None else np.array(routed)})


class GroupSampler:
    """Rank 0's side of a step: groups of completions from `rollouts` (a RolloutGroup),
    scored by `verify`, filtered by dynamic sampling, with their advantages.

    With `rl.max_staleness` N >= 1 the loop submits a step's first round up to N steps
    ahead (`submit`), so the engines sample while the trainer updates; `version` counts the
    trainer steps whose weights the engines hold, and each round carries the version that
    sampled it. A round more than N versions old when its step comes is sampled again."""

    def __init__(
        self, rl: RLSpec, prompts: list[dict], rollouts: Any, tokenizer: Any, verify: Any, seed: int
    ):
        self.rl, self.prompts, self.rollouts = rl, prompts, rollouts
        self.tokenizer, self.verify, self.seed = tokenizer, verify, seed
        self.version = 0

    def collect(self, step: int, ahead: SampledRound | ScoredRound | None = None) -> RolloutBatch:
        """`prompts_per_step` groups for `step`, the first round from `ahead` when it was
        submitted earlier; with dynamic sampling, only groups whose rewards differ,
        refilled for at most `max_resample_rounds` more rounds."""
        start = time.perf_counter()
        kept: list[list[Sample]] = []
        staleness: list[int] = []
        first_round_rewards: list[float] = []
        lengths: list[int] = []
        rounds = dropped = resampled = 0
        while len(kept) < self.rl.prompts_per_step and rounds <= self.rl.max_resample_rounds:
            need = self.rl.prompts_per_step - len(kept)
            scored = self.score(ahead if rounds == 0 and ahead else self.submit(step, rounds, need))
            if step - scored.version > self.rl.max_staleness:  # only if the loop ran late
                resampled += len(scored.groups)
                scored = self.score(self.submit(step, rounds, need))
            if rounds == 0:
                first_round_rewards = scored.rewards.flatten().tolist()
            lengths += [len(s.response_ids) for g in scored.groups for s in g]
            keep = (
                informative_groups(scored.rewards)
                if self.rl.dynamic_sampling
                else torch.ones(len(scored.groups), dtype=torch.bool)
            )
            new = [g for g, k in zip(scored.groups, keep.tolist()) if k]
            kept += new
            staleness += [step - scored.version] * len(new)
            dropped += int((~keep).sum())
            rounds += 1
        seconds = time.perf_counter() - start
        samples = [s for g in kept[: self.rl.prompts_per_step] for s in g]
        staleness = staleness[: self.rl.prompts_per_step] or [0]
        # Reward and accuracy of the first round only: fresh prompts, before any filtering.
        stats = {
            "reward_mean": float(np.mean(first_round_rewards)),
            "accuracy": float(np.mean([r >= 1.0 for r in first_round_rewards])),
            "kept_groups": float(len(kept[: self.rl.prompts_per_step])),
            "dropped_groups": float(dropped),
            "sample_rounds": float(rounds),
            "response_length": float(np.mean(lengths)),
            "rollout_tokens_per_s": sum(lengths) / seconds,
            "rollout_seconds": seconds,
        }
        if self.rl.max_staleness > 0:
            stats.update(
                staleness_max=float(max(staleness)),
                staleness_mean=float(np.mean(staleness)),
                stale_groups_resampled=float(resampled),
            )
        return RolloutBatch(samples=samples, stats=stats)

    def submit(self, step: int, round_: int = 0, count: int | None = None) -> SampledRound:
        """`count` (default `prompts_per_step`) fresh prompts, seeded by step and round so
        a resume redraws the same, each sent to the engines for `group_size` completions."""
        from rsrl.models.tokenizer import render_prompt

        count = count or self.rl.prompts_per_step
        rng = np.random.default_rng([self.seed, step, round_])
        items = [
            self.prompts[i]
            for i in rng.choice(len(self.prompts), size=count, replace=count > len(self.prompts))
        ]
        texts = [render_prompt(self.tokenizer, item["prompt"]) for item in items]
        ro = self.rl.rollout
        completions = self.rollouts.submit(
            texts,
            n=self.rl.group_size,
            temperature=ro.temperature,
            top_p=ro.top_p,
            max_new_tokens=ro.max_new_tokens,
            seed=int(rng.integers(2**31)),
        )
        return SampledRound(items, texts, completions, self.version)

    def score(self, sampled: SampledRound | ScoredRound) -> ScoredRound:
        """The round's completions (waited for), scored and given their group advantages."""
        if isinstance(sampled, ScoredRound):
            return sampled
        outputs = sampled.completions.result()
        rewards = torch.tensor(
            [
                [self._score(item, c.text) for c in comps]
                for item, comps in zip(sampled.items, outputs)
            ],
            dtype=torch.float32,
        )
        advantages = group_advantages(rewards, self.rl.adv_norm)
        groups = []
        for text, comps, adv, rew in zip(sampled.texts, outputs, advantages, rewards):
            prompt_ids = self.tokenizer(text)["input_ids"]  # as the engine tokenized it
            groups.append(
                [
                    Sample(
                        prompt_ids,
                        list(c.token_ids),
                        list(c.logprobs),
                        float(r),
                        float(a),
                        c.routed_experts,
                    )
                    for c, a, r in zip(comps, adv, rew)
                ]
            )
        return ScoredRound(groups, rewards, sampled.version)

    def _score(self, item: dict, completion: str) -> float:
        from rsrl.verifiers import score

        fields = {k: v for k, v in item.items() if k not in ("prompt", "answer")}
        return score(
            self.verify,
            item["prompt"],
            completion,
            item["answer"],
            timeout_s=self.rl.verifier.timeout_s,
            **{**self.rl.verifier.options, **fields},
        ).score


def group_advantages(rewards: Tensor, adv_norm: str, eps: float = 1e-6) -> Tensor:
    """[groups, group_size] rewards -> advantages (r - mean) / std within each group."""
    centred = rewards - rewards.mean(dim=1, keepdim=True)
    if adv_norm == "none":
        return centred
    return centred / (rewards.std(dim=1, keepdim=True) + eps)


def informative_groups(rewards: Tensor) -> Tensor:
    """Dynamic sampling: a group whose rewards are all equal has zero advantage, no signal."""
    return (rewards.max(dim=1).values - rewards.min(dim=1).values) > 0


# 5. The policy loss.


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
    corrected_per: str | None  # what `corrected` counts, "tokens" or "sequences"; None: `none`


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
        units, per = mask.amax(dim=1, keepdim=True), "sequences"  # with a response token here
    else:
        units, per = mask, "tokens"
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
        corrected_per=None if correction == "none" else per,
    )


# 6. The update.


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
    old = _old_logprobs(policy, samples, minis, pad_id, rl.rollout.temperature)
    means = StepMeans()
    experts = ExpertTally(policy.module, rl) if policy.module.is_moe else None
    norms = []  # the global gradient norm of each optimizer update
    for m, chunks in enumerate(minis):
        counts = response_counts([samples[i] for i in np.concatenate(kept[m])])
        for c, chunk in enumerate(chunks):
            # The mini-batch's last micro-batch steps the optimizer, however many there are.
            last = c == len(chunks) - 1
            policy.set_gradient_accumulation_boundary(last)
            micro = MicroBatch(
                micro_batch(samples, chunk, pad_id, policy.device),
                real=len(chunk) > 0,
                old_logp=old[m][c] if old else None,
                counts=counts,
            )
            norm = _micro_update(policy, micro, rl, layout, reference, means, experts)
            if last:
                norms.append(norm)
    return {
        **means.reduce(),
        **(experts.stats() if experts is not None else {}),
        "skipped_mini_batches": float(len(split) - len(kept)),
        "grad_norm": float(np.mean(norms)) if norms else float("nan"),  # over the updates
    }


@dataclass(frozen=True)
class MicroBatch:
    """One worker's micro-batch of an update, with what the step knows about it."""

    batch: PaddedBatch
    real: bool  # False: the one-token stand-in that keeps an idle worker's passes in step
    old_logp: Tensor | None  # pi_old's log-probs; None: the update's own forward, detached
    counts: dict[str, float]  # the mini-batch's response tokens and sequences, all workers


def _micro_update(
    policy, micro: MicroBatch, rl: RLSpec, layout: BatchLayout, reference, means: StepMeans, experts
) -> float:
    """A micro-batch's forward, loss and backward, then DeepSpeed's step (an optimizer update
    at the accumulation boundary only); its diagnostics are added to `means`. Returns the
    gradient norm DeepSpeed reports."""
    batch, temperature = micro.batch, rl.rollout.temperature
    out = policy(*_inputs(batch), temperature, batch.routed_experts)
    # The stand-in's tokens weigh nothing, in the loss as in the metrics.
    mask = out.mask if micro.real else torch.zeros_like(out.mask)
    if experts is not None:
        experts.add(out.routing if micro.real else None, means)
    old_logp = micro.old_logp if micro.old_logp is not None else out.logp.detach()
    # mu, the engine's log-probs, are those of temperature 1 (validate holds a correction
    # to it); with `none` every weight is 1.
    op = rl.off_policy
    off = off_policy_weights(
        old_logp, batch.rollout_logp, mask, correction=rl.correction(), level=op.level, cap=op.cap
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
        **micro.counts,
    )
    loss = pl.loss
    if reference is not None:
        ref_logp = _reference_logprobs(reference, batch, temperature)
        kl = kl_to_reference(out.logp, ref_logp, mask, micro.counts["total_tokens"])
        loss = loss + rl.kl_coef * kl
        means.add("kl", kl.detach() * micro.counts["total_tokens"])
    # DeepSpeed divides by its configured accumulation steps and averages over workers;
    # the loss is already the step's sum-normalised share: undo both.
    policy.backward(loss * layout.grad_accum * layout.world_size)
    norm = optimizer_step(policy)
    _add_diagnostics(means, rl, micro, mask, old_logp, out.entropy, pl, off)
    return norm


def _add_diagnostics(
    means: StepMeans,
    rl: RLSpec,
    micro: MicroBatch,
    mask: Tensor,
    old_logp: Tensor,
    entropy: Tensor,
    pl: PolicyLoss,
    off: OffPolicyWeights,
) -> None:
    """A micro-batch's diagnostics as sums over its tokens; `means` makes them step means."""
    batch, tokens = micro.batch, mask.sum()
    # The forward's token slots, and how many of them are padding (a stand-in: none).
    slots = batch.attention_mask.numel() if micro.real else 0
    padding = slots - int(batch.attention_mask.sum()) if micro.real else 0
    means.count(mask, slots)
    means.add("padding_fraction", padding, "slots")
    means.add("clip_fraction", pl.clip_fraction * tokens)
    means.add("approx_kl", pl.approx_kl.detach() * tokens)
    means.add("entropy", entropy * tokens)
    if rl.rollout.temperature == 1.0:  # rollout engines return temperature-1 logprobs
        # Against the policy that sampled (before this step's first update).
        means.add("logprob_mismatch", ((old_logp - batch.rollout_logp).abs() * mask).sum())
        means.add("mismatch_kl", off.mismatch_kl)
    if off.corrected_per is not None:
        means.add("is_capped_fraction", off.corrected, off.corrected_per)


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
            batches = [micro_batch(samples, chunk, pad_id, policy.device) for chunk in chunks]
            old.append(
                [
                    policy(*_inputs(b), temperature, b.routed_experts, with_routing=False).logp
                    for b in batches
                ]
            )
    return old


def _reference_logprobs(reference, batch: PaddedBatch, temperature: float) -> torch.Tensor:
    with torch.no_grad():
        return reference(*_inputs(batch), temperature, with_routing=False).logp


def _inputs(batch: PaddedBatch) -> tuple[Tensor, Tensor, Tensor]:
    return batch.input_ids, batch.attention_mask, batch.labels


class ExpertTally:
    """An MoE update's expert loads over the step's response tokens, and, where the engine
    reports its routing, the agreement of the update's experts with the engine's per token
    and layer: `routing_agreement` for the experts used (1 under replay), and
    `own_routing_agreement` for the router's own choice (what replay overrides)."""

    KINDS = (("used", "moe/routing_agreement"), ("own", "moe/own_routing_agreement"))

    def __init__(self, policy, rl: RLSpec) -> None:
        self.lm = policy.lm
        config = self.lm.config
        self.layers = config.num_hidden_layers
        self.counts = torch.zeros(self.layers, config.num_experts)
        self.engine_routes = rl.rollout.engine == "vllm"  # the engine that records its routing

    def add(self, routing: Routing | None, means: StepMeans) -> None:
        """One micro-batch's routing (None: a stand-in). Every worker adds the same names."""
        if routing is not None:
            self.counts += routing.counts.cpu()
        if not self.engine_routes:
            return
        for kind, key in self.KINDS:
            found = routing is not None and routing.agreement is not None
            sums = routing.agreement[kind] if found else torch.zeros(self.layers)  # type: ignore[union-attr, index]
            for i, total in enumerate(sums):
                means.add(f"{key}/l{i}", total)
            means.add(key, sums.sum() / self.layers)  # over (token, layer) pairs

    def stats(self) -> dict[str, float]:
        """Collective: the loads summed over workers, and their diagnostics (expert_stats)."""
        if dist.is_initialized():
            dist.all_reduce(self.counts)
        return expert_stats(self.counts, self.lm)
