"""One step's policy update (rsrl.rl.grpo.update_policy) on a real DeepSpeed engine: one process,
a gloo group of one, a tiny dense model. Each test pins a defect of the old update: a
mini-batch empty on every rank made the loss 0 / 0; the one-token stand-in for an empty
micro-batch added its KL; the logged diagnostics were means of micro-batch means."""

import math
import os
import socket
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.distributed as dist

from rsrl.models.build import build_model
from rsrl.rl.batch import Sample, micro_batch_chunks, token_budget_chunks
from rsrl.rl.config import OffPolicySpec, RLSpec
from rsrl.rl.grpo import kl_to_reference, update_policy
from rsrl.rl.loop import _frozen_copy, place_like
from rsrl.rl.policy import PolicyLM
from rsrl.runtime import import_deepspeed
from rsrl.train.batches import BatchLayout
from rsrl.train.config import DeepSpeedSpec
from rsrl.train.ds_config import deepspeed_config
from rsrl.train.optimizer import build_optimizer
from tests.train.test_shaped_lm import TINY_DENSE

PAD = 0


@pytest.fixture(scope="module")
def process_group():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1"}
    saved = {k: os.environ.get(k) for k in [*env, "MASTER_PORT"]}
    os.environ.update(env, MASTER_PORT=str(port))
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def make_policy(layout: BatchLayout, lr: float = 1e-2):
    lm = build_model(TINY_DENSE, rope_theta=1e4, max_seq_len=32, seed=0)
    module = PolicyLM(lm, "reference")
    optimizer = build_optimizer(module, 0.0, offload=False)
    config = deepspeed_config(DeepSpeedSpec(zero_stage=2), layout)
    policy, *_ = import_deepspeed().initialize(model=module, optimizer=optimizer, config=config)
    for group in policy.optimizer.param_groups:
        group["lr"] = lr
    return policy


def shifted_reference(policy) -> PolicyLM:
    """A frozen copy of the policy, moved off it so that the KL to it is not zero."""
    reference = _frozen_copy(policy.module.lm)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in reference.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    return place_like(reference, policy.module, policy.device)


def sample(prompt_len: int, response_len: int, advantage: float, seed: int) -> Sample:
    ids = torch.randint(
        1, 64, (prompt_len + response_len,), generator=torch.Generator().manual_seed(seed)
    )
    prompt, response = ids[:prompt_len].tolist(), ids[prompt_len:].tolist()
    return Sample(prompt, response, [-1.0] * response_len, 0.0, advantage)


def params(policy) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in policy.module.named_parameters()}


def test_a_mini_batch_empty_on_every_rank_is_skipped_and_counted(process_group):
    # One sample, two mini-batches: the second is empty on the only rank (as two workers,
    # mini_batches 2 and one kept group of two make it on each of them).
    rl = RLSpec(mini_batches=2)
    policy = make_policy(policy_layout(1, 1))
    before = params(policy)
    record = update_policy(policy, [sample(3, 4, 1.0, 0)], rl, policy_layout(1, 1), 0, PAD, None)
    after = params(policy)
    # The old update's last mini-batch had loss 0 / 0: DeepSpeed saw an infinite gradient.
    assert record["grad_norm"] < float("inf")
    assert all(torch.isfinite(p).all() for p in after.values())
    assert record["skipped_mini_batches"] == 1
    assert any(not torch.equal(before[n], after[n]) for n in after)  # the kept one updated


def test_the_stand_in_for_an_empty_micro_batch_adds_no_kl(process_group):
    """One sample in two micro-batch slots (the second a stand-in) updates the weights as one
    slot does: its KL to the reference, had it any, would move them."""
    rl = RLSpec(kl_coef=0.5)
    samples = [sample(3, 4, 1.0, 0)]
    updated = []
    for grad_accum in (2, 1):
        policy = make_policy(policy_layout(1, grad_accum))
        reference = shifted_reference(policy)
        record = update_policy(policy, samples, rl, policy_layout(1, grad_accum), 0, PAD, reference)
        updated.append((params(policy), record))
    (with_stand_in, record_a), (without, record_b) = updated
    for name, p in without.items():
        torch.testing.assert_close(with_stand_in[name], p, rtol=0, atol=1e-7, msg=name)
    for name in ("kl", "entropy", "clip_fraction", "approx_kl"):
        assert record_a[name] == pytest.approx(record_b[name], rel=1e-6, abs=1e-9)


def test_logged_diagnostics_are_token_means_over_the_step(process_group):
    """Three micro-batches of 1, 2 and 6 response tokens: each token weighs the same."""
    rl = RLSpec(kl_coef=0.1)
    samples = [sample(2, 1, 1.0, 0), sample(4, 2, -1.0, 1), sample(3, 6, 0.5, 2)]
    policy = make_policy(policy_layout(1, 3))
    reference = shifted_reference(policy)
    # Before the update: every micro-batch's forward sees these weights (one optimizer
    # step, at the last micro-batch).
    start = _frozen_copy(policy.module.lm)
    entropy_sum = kl_sum = tokens = 0.0
    for s in samples:
        mine, ref = scored(start, s), scored(reference, s)
        n = len(s.response_ids)
        entropy_sum += float(mine.entropy) * n
        kl_sum += float(kl_to_reference(mine.logp, ref.logp, mine.mask, 1.0))
        tokens += n
    record = update_policy(policy, samples, rl, policy_layout(1, 3), 0, PAD, reference)
    assert record["entropy"] == pytest.approx(entropy_sum / tokens, rel=1e-4)
    assert record["kl"] == pytest.approx(kl_sum / tokens, rel=1e-4)
    assert record["approx_kl"] == pytest.approx(0.0, abs=1e-6)  # one update: ratio 1
    assert record["skipped_mini_batches"] == 0


def test_the_engines_mismatch_and_its_correction_are_logged_per_step(process_group):
    """Sequence-level tis with cap 2 over two responses whose engine log-probs are set so
    that pi_old / mu is 3 and 1 on the first (product 3: capped) and 0.5, 0.9, 1.2 on the
    second (0.54: kept)."""
    rl = RLSpec(off_policy=OffPolicySpec(correction="tis", level="sequence", cap=2.0))
    drafts = [sample(2, 2, 1.0, 0), sample(3, 3, -1.0, 1)]
    ratios = [[3.0, 1.0], [0.5, 0.9, 1.2]]
    policy = make_policy(policy_layout(1, 2))
    start = _frozen_copy(policy.module.lm)
    samples = []
    for draft, r in zip(drafts, ratios):
        out = scored(start, draft)
        old = out.logp[out.mask.bool()]
        mu = old - torch.tensor(r).log()
        samples.append(replace(draft, rollout_logprobs=mu.tolist()))
    record = update_policy(policy, samples, rl, policy_layout(1, 2), 0, PAD, None)
    flat = [x for row in ratios for x in row]
    k3 = sum(x - 1 - math.log(x) for x in flat) / len(flat)  # KL(mu || pi_old) per token
    assert record["mismatch_kl"] == pytest.approx(k3, rel=1e-3)
    assert record["is_capped_fraction"] == 0.5  # one sequence of two


@torch.no_grad()
def scored(model: PolicyLM, s: Sample):
    """`model`'s log-probs and entropy of the response of `s`."""
    ids = torch.tensor([s.prompt_ids + s.response_ids])
    labels = ids.clone()
    labels[:, : len(s.prompt_ids)] = -100
    return model(ids, torch.ones_like(ids), labels, 1.0)


def policy_layout(micro_batch_size: int, grad_accum: int) -> BatchLayout:
    return BatchLayout(micro_batch_size=micro_batch_size, grad_accum=grad_accum, world_size=1)


def test_token_budget_micro_batches_hold_similar_lengths_within_the_budget():
    lengths = [5, 3, 9, 2]  # prompt + response of samples 0..3
    chunks = token_budget_chunks(np.arange(4), lengths, budget=10)
    # Longest first: 9 alone (9 + 5 rows would pad to 18), then 5 with 3 (2 x 5 = 10), then 2.
    assert [c.tolist() for c in chunks] == [[2], [0, 1], [3]]
    assert [c.tolist() for c in token_budget_chunks(np.arange(4), lengths, 4)] == [
        [2],
        [0],
        [1],
        [3],
    ]  # each longer than the budget goes alone


def test_every_rank_takes_as_many_token_budget_passes_as_the_fullest():
    samples = [sample(2, n, 1.0, i) for i, n in enumerate([4, 4, 4, 1])]  # lengths 6, 6, 6, 3
    kept = [[np.array([0, 1, 2]), np.array([3])]]  # one mini-batch, two ranks
    mine = micro_batch_chunks(samples, kept, 0, grad_accum=1, budget=12)[0]
    theirs = micro_batch_chunks(samples, kept, 1, grad_accum=1, budget=12)[0]
    assert [c.tolist() for c in mine] == [[0, 1], [2]]
    assert [c.tolist() for c in theirs] == [[3], []]  # a stand-in keeps the passes in step


def test_token_budget_micro_batches_update_as_fixed_ones_with_less_padding(process_group):
    """The loss is normalised by the whole step, so the cut into micro-batches changes the
    gradient only by rounding; cutting by tokens pads less."""
    samples = [sample(2, n, a, i) for i, (n, a) in enumerate(zip([1, 7, 2, 6, 3], [1, -1] * 3))]
    records = []
    for rl in (RLSpec(kl_coef=0.1), RLSpec(kl_coef=0.1, micro_batch_tokens=10)):
        layout = policy_layout(2, 3)  # fixed: [0, 1], [2, 3], [4]
        policy = make_policy(layout)
        records.append(
            update_policy(policy, samples, rl, layout, 0, PAD, shifted_reference(policy))
        )
    fixed, budget = records
    for name in ("grad_norm", "entropy", "kl"):
        assert budget[name] == pytest.approx(fixed[name], rel=1e-5), name
    # Rows of 3, 9, 4, 8, 5 tokens: [3, 9] [4, 8] [5] pad 6 + 4 of 18 + 16 + 5 slots; by
    # tokens [9] [8] [5, 4] [3] pad 1 of 9 + 8 + 10 + 3.
    assert fixed["padding_fraction"] == pytest.approx(10 / 39)
    assert budget["padding_fraction"] == pytest.approx(1 / 30)
