"""Rank 0's side of GRPO: draw prompts, sample groups from the rollout actors, score them,
keep the informative groups (dynamic sampling), and push new weights to the actors."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rsrl.rl.batch import Sample
from rsrl.rl.config import RLSpec
from rsrl.rl.grpo import group_advantages, informative_groups
from rsrl.rl.rollout.weight_sync import WeightStream


@dataclass
class RolloutBatch:
    samples: list[Sample]
    stats: dict[str, float] = field(default_factory=dict)


def prepare_rollout_actors(rl: RLSpec, model_dir: Path, pool: Any, dtype: str) -> None:
    """Starts in `pool` the actors that a RolloutController of `rl` on `model_dir` then
    borrows, without waiting for their engines."""
    from rsrl.rl.rollout.pool import ActorConfig

    engine, model, tokenizer, actors, cpus, gpus, options = _actor_args(rl, model_dir, dtype)
    pool.prepare.remote(
        ActorConfig(engine, str(model), str(tokenizer), actors, cpus, gpus, options)
    )


def _actor_args(rl: RLSpec, model_dir: Path, dtype: str) -> tuple:
    """RolloutGroup's first arguments; the export carries its tokenizer, so the engines
    load both from one HF directory. `dtype`: the engines' (RolloutSpec.engine_dtype)."""
    ro = rl.rollout
    return (
        ro.engine,
        model_dir,
        model_dir,
        ro.actors,
        ro.cpus_per_actor,
        ro.gpus_per_actor,
        {"dtype": dtype},
    )


class RolloutController:
    def __init__(
        self,
        rl: RLSpec,
        prompts: list[dict],
        model_dir: Path,
        tokenizer_dir: Path,
        plugins: list[str],
        seed: int,
        dtype: str,
        pool: Any = None,
        threads: int | None = None,
    ):
        from rsrl.models.tokenizer import load_tokenizer
        from rsrl.rl.rollout.actors import RolloutGroup
        from rsrl.verifiers import load_verifier

        self.rl, self.prompts, self.seed = rl, prompts, seed
        self.tokenizer = load_tokenizer(tokenizer_dir)
        self.verify = load_verifier(rl.verifier.name, plugins)
        ro = rl.rollout
        self.group = RolloutGroup(
            *_actor_args(rl, model_dir, dtype),
            weight_sync=ro.weight_sync,
            sync_bucket_mb=ro.sync_bucket_mb,
            sync_timeout_s=ro.sync_timeout_s,
            pool=pool,
            threads=threads,
        )

    def collect(self, step: int) -> RolloutBatch:
        """`prompts_per_step` groups for `step`; with dynamic sampling, only groups whose
        rewards differ, refilled for at most `max_resample_rounds` more rounds."""
        start = time.perf_counter()
        kept: list[list[Sample]] = []
        first_round_rewards: list[float] = []
        lengths: list[int] = []
        rounds = dropped = 0
        while len(kept) < self.rl.prompts_per_step and rounds <= self.rl.max_resample_rounds:
            need = self.rl.prompts_per_step - len(kept)
            groups, rewards = self._sample_groups(step, rounds, need)
            if rounds == 0:
                first_round_rewards = rewards.flatten().tolist()
            lengths += [len(s.response_ids) for g in groups for s in g]
            keep = (
                informative_groups(rewards)
                if self.rl.dynamic_sampling
                else torch.ones(len(groups), dtype=torch.bool)
            )
            kept += [g for g, k in zip(groups, keep.tolist()) if k]
            dropped += int((~keep).sum())
            rounds += 1
        seconds = time.perf_counter() - start
        samples = [s for g in kept[: self.rl.prompts_per_step] for s in g]
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
        return RolloutBatch(samples=samples, stats=stats)

    def _sample_groups(self, step: int, round_: int, count: int):
        """`count` fresh prompts (seeded by step and round, so a resume redraws the same) with
        `group_size` completions each, scored and given their group advantages."""
        from rsrl.models.tokenizer import render_prompt

        rng = np.random.default_rng([self.seed, step, round_])
        items = [
            self.prompts[i]
            for i in rng.choice(len(self.prompts), size=count, replace=count > len(self.prompts))
        ]
        texts = [render_prompt(self.tokenizer, item["prompt"]) for item in items]
        ro = self.rl.rollout
        outputs = self.group.generate(
            texts,
            n=self.rl.group_size,
            temperature=ro.temperature,
            top_p=ro.top_p,
            max_new_tokens=ro.max_new_tokens,
            seed=int(rng.integers(2**31)),
        )
        rewards = torch.tensor(
            [[self._score(item, c.text) for c in comps] for item, comps in zip(items, outputs)],
            dtype=torch.float32,
        )
        advantages = group_advantages(rewards, self.rl.adv_norm)
        groups = []
        for text, comps, adv, rew in zip(texts, outputs, advantages, rewards):
            prompt_ids = self.tokenizer(text)["input_ids"]  # as the engine tokenized it
            groups.append(
                [
                    Sample(prompt_ids, list(c.token_ids), list(c.logprobs), float(r), float(a))
                    for c, a, r in zip(comps, adv, rew)
                ]
            )
        return groups, rewards

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

    def sync(self, weights: WeightStream) -> float:
        """Push the policy's weights to every rollout actor, verified; the seconds it took."""
        return self.group.sync_weights(weights)

    def shutdown(self) -> None:
        self.group.shutdown()
