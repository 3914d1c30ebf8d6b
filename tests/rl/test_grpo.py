import math

import pytest
import torch

from rsrl.rl.grpo import (
    clipped_policy_loss,
    group_advantages,
    informative_groups,
    kl_to_reference,
    off_policy_weights,
)


def test_group_advantages_are_normalised_within_each_group():
    rewards = torch.tensor([[1.0, 0.0, 0.0, 1.0], [1.0, 1.0, 1.0, 0.0]])
    adv = group_advantages(rewards, "std")
    assert torch.allclose(adv.mean(1), torch.zeros(2), atol=1e-6)
    assert torch.allclose(adv.std(1), torch.ones(2), atol=1e-4)
    assert torch.allclose(
        group_advantages(rewards, "none")[1], torch.tensor([0.25, 0.25, 0.25, -0.75])
    )


def test_dynamic_sampling_drops_groups_with_equal_rewards():
    rewards = torch.tensor([[1.0, 1.0], [0.0, 0.0], [0.0, 1.0]])
    assert informative_groups(rewards).tolist() == [False, False, True]


def test_on_policy_ratio_is_one_and_gradient_is_advantage_weighted():
    logp = torch.tensor([[-1.0, -2.0, -3.0]], requires_grad=True)
    mask = torch.tensor([[0.0, 1.0, 1.0]])
    out = clipped_policy_loss(
        logp,
        logp.detach(),
        torch.tensor([2.0]),
        mask,
        eps_low=0.2,
        eps_high=0.28,
        loss_agg="token-mean",
        total_tokens=2,
        total_sequences=1,
    )
    out.loss.backward()
    # d/dlogp of -ratio * A / tokens = -A / tokens on response tokens, 0 on the prompt.
    assert torch.allclose(logp.grad, torch.tensor([[0.0, -1.0, -1.0]]))
    assert out.clip_fraction == 0 and abs(float(out.approx_kl)) < 1e-7


def test_clip_higher_bounds_are_asymmetric():
    old = torch.zeros(1, 2)
    mask = torch.ones(1, 2)
    up = torch.log(torch.tensor([[1.25, 1.35]]))  # inside eps_high=0.28, then above it
    out = clipped_policy_loss(
        up,
        old,
        torch.tensor([1.0]),
        mask,
        eps_low=0.2,
        eps_high=0.28,
        loss_agg="token-mean",
        total_tokens=2,
        total_sequences=1,
    )
    assert float(out.clip_fraction) == 0.5
    assert torch.isclose(out.loss, torch.tensor(-(1.25 + 1.28) / 2))
    down = torch.log(torch.tensor([[0.85, 0.75]]))  # inside eps_low=0.2, then below it
    out = clipped_policy_loss(
        down,
        old,
        torch.tensor([-1.0]),
        mask,
        eps_low=0.2,
        eps_high=0.28,
        loss_agg="token-mean",
        total_tokens=2,
        total_sequences=1,
    )
    assert float(out.clip_fraction) == 0.5
    assert torch.isclose(out.loss, torch.tensor((0.85 + 0.8) / 2))


def test_clip_fraction_counts_only_tokens_where_the_clip_bites():
    """A ratio outside the band on the side the min ignores is clipped but keeps its
    gradient: A > 0 with ratio < 1 - eps_low, A < 0 with ratio > 1 + eps_high."""
    ratios = torch.tensor([[1.5, 0.5, 1.1], [1.5, 0.5, 0.9]])
    advantages = torch.tensor([1.0, -1.0])  # bites at 1.5 for A > 0, at 0.5 for A < 0
    logp = torch.log(ratios).requires_grad_()
    out = clipped_policy_loss(
        logp,
        torch.zeros(2, 3),
        advantages,
        torch.ones(2, 3),
        eps_low=0.2,
        eps_high=0.28,
        loss_agg="token-mean",
        total_tokens=6,
        total_sequences=2,
    )
    assert abs(float(out.clip_fraction) - 2 / 6) < 1e-6
    out.loss.backward()
    # Zero gradient exactly at the two biting tokens.
    assert (logp.grad == 0).tolist() == [[True, False, False], [False, True, False]]


def test_aggregations_weigh_tokens_or_sequences():
    logp = torch.zeros(2, 4)
    mask = torch.tensor([[1.0, 0, 0, 0], [1, 1, 1, 1]])
    adv = torch.tensor([1.0, 1.0])
    per_token = clipped_policy_loss(
        logp,
        logp,
        adv,
        mask,
        eps_low=0.2,
        eps_high=0.2,
        loss_agg="token-mean",
        total_tokens=5,
        total_sequences=2,
    )
    per_seq = clipped_policy_loss(
        logp,
        logp,
        adv,
        mask,
        eps_low=0.2,
        eps_high=0.2,
        loss_agg="seq-mean-token-mean",
        total_tokens=5,
        total_sequences=2,
    )
    assert torch.isclose(per_token.loss, torch.tensor(-1.0))
    assert torch.isclose(per_seq.loss, torch.tensor(-1.0))
    adv = torch.tensor([1.0, 0.0])  # now the short sequence's share differs between the two
    assert torch.isclose(
        clipped_policy_loss(
            logp,
            logp,
            adv,
            mask,
            eps_low=0.2,
            eps_high=0.2,
            loss_agg="token-mean",
            total_tokens=5,
            total_sequences=2,
        ).loss,
        torch.tensor(-0.2),
    )
    assert torch.isclose(
        clipped_policy_loss(
            logp,
            logp,
            adv,
            mask,
            eps_low=0.2,
            eps_high=0.2,
            loss_agg="seq-mean-token-mean",
            total_tokens=5,
            total_sequences=2,
        ).loss,
        torch.tensor(-0.5),
    )


def test_kl_to_reference_is_zero_at_the_reference_and_positive_elsewhere():
    logp = torch.tensor([[-1.0, -2.0]])
    mask = torch.ones(1, 2)
    assert float(kl_to_reference(logp, logp, mask, 2)) == 0
    assert float(kl_to_reference(logp, logp - 0.5, mask, 2)) > 0


def test_mini_batches_partition_the_step_across_workers():
    from rsrl.rl.batch import mini_batch_indices

    split = mini_batch_indices(10, world_size=2, mini_batches=2)
    assert [[list(ix) for ix in m] for m in split] == [[[0, 1, 2], [5, 6, 7]], [[3, 4], [8, 9]]]
    flat = sorted(i for m in split for ix in m for i in ix)
    assert flat == list(range(10))


# pi_old / mu per token of two responses (the second two tokens long; its third is padding,
# whose ratio must be ignored), and what each correction makes of them with cap 2.
RATIOS = [[3.0, 1.0, 0.25], [1.5, 1.9, 7.0]]
MASK = [[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]]
EXPECTED = {  # (correction, level): (weights, tokens or sequences capped or dropped)
    ("none", "token"): ([[1, 1, 1], [1, 1, 0]], 0),
    ("none", "sequence"): ([[1, 1, 1], [1, 1, 0]], 0),
    ("tis", "token"): ([[2, 1, 0.25], [1.5, 1.9, 0]], 1),  # 3 capped at 2
    ("tis", "sequence"): ([[0.75, 0.75, 0.75], [2, 2, 0]], 1),  # 3 * 1 * 0.25; 1.5 * 1.9 > 2
    ("mis", "token"): ([[0, 1, 0], [1, 1, 0]], 2),  # 3 and 0.25 outside [0.5, 2]
    ("mis", "sequence"): ([[1, 1, 1], [0, 0, 0]], 1),  # 0.75 inside, 2.85 outside
}


@pytest.mark.parametrize("correction, level", list(EXPECTED))
def test_off_policy_weights_against_a_hand_computed_batch(correction, level):
    mask = torch.tensor(MASK, dtype=torch.float64)
    behaviour = torch.full((2, 3), -2.0, dtype=torch.float64)
    old = behaviour + torch.tensor(RATIOS, dtype=torch.float64).log()
    out = off_policy_weights(old, behaviour, mask, correction=correction, level=level, cap=2.0)
    weights, corrected = EXPECTED[correction, level]
    torch.testing.assert_close(out.weights, torch.tensor(weights, dtype=torch.float64))
    assert int(out.corrected) == corrected
    assert out.corrected_per == (None if correction == "none" else f"{level}s")
    k3 = sum(r - 1 - math.log(r) for r in [3.0, 1.0, 0.25, 1.5, 1.9])  # KL(mu || pi_old)
    assert float(out.mismatch_kl) == pytest.approx(k3)

    # On-policy (ratio 1, no clip) the loss is minus the weighted advantages' token-mean.
    advantages = torch.tensor([1.0, -1.0], dtype=torch.float64)
    loss = clipped_policy_loss(
        old,
        old,
        advantages,
        mask,
        eps_low=0.2,
        eps_high=0.28,
        loss_agg="token-mean",
        total_tokens=5,
        total_sequences=2,
        is_weights=out.weights,
    ).loss
    w = torch.tensor(weights, dtype=torch.float64)
    assert float(loss) == pytest.approx(-float(w[0].sum() - w[1].sum()) / 5)
