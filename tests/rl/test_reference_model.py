"""The frozen KL reference sits where the policy is, in its dtype (DeepSpeed moves and casts
the policy in initialize; the reference, copied before, must follow it)."""

import torch

from rsrl.models.build import build_model
from rsrl.rl.grpo import kl_to_reference
from rsrl.rl.loop import _frozen_copy, place_like
from rsrl.rl.policy import PolicyLM
from tests.train.test_shaped_lm import TINY_DENSE


def test_reference_takes_the_policys_device_and_dtype():
    lm = build_model(TINY_DENSE, rope_theta=1e4, max_seq_len=16, seed=0)
    reference = _frozen_copy(lm)  # before initialize: fp32, on the CPU
    policy = PolicyLM(lm, "reference").to(torch.bfloat16)  # as DeepSpeed does under bf16
    reference = place_like(reference, policy, torch.device("cpu"))
    params = list(reference.parameters())
    assert all(p.dtype == torch.bfloat16 and p.device.type == "cpu" for p in params)
    assert not any(p.requires_grad for p in params) and not reference.training
    ids = torch.randint(0, 64, (2, 6), generator=torch.Generator().manual_seed(0))
    mask, labels = torch.ones_like(ids), ids.clone()
    labels[:, :3] = -100
    with torch.no_grad():
        mine = policy(ids, mask, labels, 1.0)
        ref = reference(ids, mask, labels, 1.0)
    assert float(kl_to_reference(mine.logp, ref.logp, mine.mask, float(mine.mask.sum()))) == 0.0
