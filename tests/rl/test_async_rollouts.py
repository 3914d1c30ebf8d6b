"""Asynchronous rollouts (rl.max_staleness): rank 0 submits the next steps' first rounds
while the trainer updates, each round carrying the weight version that sampled it. Real
Ray actors running the transformers engine on a tiny model; a slow trainer is a sleep and
a weight sync of perturbed weights, as the loop makes them."""

import time
from collections import deque

import pytest
import torch
from transformers import AutoTokenizer

from rsrl.rl.batch import Sample
from rsrl.rl.config import OffPolicySpec, RLSpec
from rsrl.rl.grpo import GroupSampler, ScoredRound
from rsrl.rl.loop import _ahead_state, _sample_ahead
from rsrl.rl.rollout.actors import RolloutGroup
from rsrl.rl.rollout.pool import ActorConfig
from rsrl.verifiers import load_verifier
from tests.rl.test_rollout import (
    LOGPROB_TOLERANCE,
    model_dirs,
    perturb,
    reference_model,
    tokenizer_dir,
)

__all__ = ["model_dirs", "tokenizer_dir"]  # fixtures

PROMPTS = [{"prompt": f"{a} + {a}", "answer": str(2 * a)} for a in range(12)]


@torch.no_grad()
def mismatch(model, groups: list[list[Sample]]) -> float:
    """The largest gap between `model`'s log-probs of the sampled tokens and the engine's."""
    worst = 0.0
    for s in (s for g in groups for s in g):
        ids = torch.tensor([s.prompt_ids + s.response_ids])
        logp = torch.log_softmax(model(ids).logits[0, len(s.prompt_ids) - 1 : -1], dim=-1)
        got = logp.gather(1, torch.tensor(s.response_ids)[:, None])[:, 0]
        worst = max(worst, float((got - torch.tensor(s.rollout_logprobs)).abs().max()))
    return worst


@pytest.mark.parametrize(
    "max_staleness, temperature, expected",
    [(0, 1.0, "none"), (1, 1.0, "tis"), (1, 0.7, "none")],
)
def test_auto_correction_is_tis_for_asynchronous_rollouts_at_temperature_one(
    max_staleness, temperature, expected
):
    assert OffPolicySpec().resolved(max_staleness, temperature) == expected
    assert OffPolicySpec(correction="mis").resolved(max_staleness, temperature) == "mis"


def test_rounds_sampled_ahead_keep_the_staleness_bound_and_survive_a_checkpoint(
    ray_session, model_dirs, tokenizer_dir
):
    rl = RLSpec(steps=4, prompts_per_step=3, group_size=2, dynamic_sampling=False, max_staleness=1)
    rl.rollout.max_new_tokens = 4
    model_dir = model_dirs["tiny-dense"]
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    trainer = reference_model(model_dir)
    group = RolloutGroup(ActorConfig("hf", str(model_dir), str(tokenizer_dir), 1, 0.5, 0))
    sampler = GroupSampler(rl, PROMPTS, group, tokenizer, load_verifier("math"), seed=0)
    ahead: deque = deque()
    try:
        # A sync made while a round is being sampled waits for it: the round is the old
        # weights' (the engine's log-probs are theirs), and the next one the new weights'.
        before = reference_model(model_dir)
        sampled = sampler.submit(0)
        group.sync_weights(perturb(trainer, seed=99))
        old_round = sampler.score(sampled).groups
        assert mismatch(before, old_round) < LOGPROB_TOLERANCE < mismatch(trainer, old_round)
        new_round = sampler.score(sampler.submit(0)).groups
        assert mismatch(trainer, new_round) < LOGPROB_TOLERANCE

        records = []
        for step in range(4):  # the loop's order: collect, submit ahead, update, sync
            batch = sampler.collect(step, ahead.popleft() if ahead else None)
            _sample_ahead(sampler, ahead, step, rl)
            assert len(ahead) == (1 if step < 3 else 0)  # up to the bound, never past rl.steps
            time.sleep(0.5)  # a slow trainer: the engine finishes the next round meanwhile
            group.sync_weights(perturb(trainer, seed=step))
            sampler.version = step + 1
            records.append(batch.stats)
        # Step 0 is sampled on the spot; every later step by the weights one update older.
        assert [r["staleness_max"] for r in records] == [0, 1, 1, 1]
        assert all(r["stale_groups_resampled"] == 0 for r in records)

        # A round older than the bound is sampled again, counted.
        late = sampler.submit(5)
        sampler.version = 7
        stats = sampler.collect(7, late).stats
        assert stats["stale_groups_resampled"] == 3 and stats["staleness_max"] == 0

        # The state a checkpoint keeps restores the same samples.
        ahead.append(sampler.submit(8))
        state = _ahead_state(sampler, ahead)
        restored = ScoredRound.from_state(state["ahead"][0])
        assert isinstance(ahead[0], ScoredRound)  # scored once, not again at its step
        assert restored.groups == ahead[0].groups and restored.version == 7
        assert torch.equal(restored.rewards, ahead[0].rewards)
    finally:
        group.shutdown()
