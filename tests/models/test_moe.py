"""rsrl's MoE router (rsrl/models/moe.py): stock Qwen3-MoE without bias or replay, the expert
bias for the choice only, replay, the bias's update and its survival of casts and exports."""

import json
from dataclasses import replace

import pytest
import torch
from torch import nn
from transformers import AutoModelForCausalLM, Qwen3MoeConfig
from transformers.models.qwen3_moe.modeling_qwen3_moe import Qwen3MoeTopKRouter

from rsrl.models.build import build_model
from rsrl.models.moe import (
    BIAS,
    NO_REPLAY,
    BiasedQwen3MoeForCausalLM,
    Router,
    bias_kept_fp32,
    expert_counts,
    expert_stats,
    install_routers,
    routers,
    update_bias,
)
from tests.models.shapes import TINY_MOE

HIDDEN = 16


def router_config(num_experts: int = 8, k: int = 2) -> Qwen3MoeConfig:
    return Qwen3MoeConfig(
        hidden_size=HIDDEN, num_experts=num_experts, num_experts_per_tok=k, norm_topk_prob=True
    )


def router_stack(layers: int, with_bias: bool, num_experts: int = 8, seed: int = 0):
    """Routers by layer, as a model holds them, with random weights."""
    gen = torch.Generator().manual_seed(seed)
    stack = nn.ModuleList(Router(router_config(num_experts), with_bias) for _ in range(layers))
    with torch.no_grad():
        for router in stack:
            router.weight.copy_(torch.randn(router.weight.shape, generator=gen))
    return stack


def tiny_model(router_balance: str, seed: int = 0):
    spec = replace(TINY_MOE, router_balance=router_balance)
    return build_model(spec, rope_theta=1e4, max_seq_len=32, seed=seed).eval()


def test_update_bias_moves_each_expert_one_step_towards_the_layer_mean():
    stack = router_stack(layers=2, with_bias=True, num_experts=4)
    counts = torch.tensor([[5.0, 3.0, 4.0, 0.0], [2.0, 2.0, 2.0, 2.0]])  # means 3 and 2
    update_bias(stack, counts, rate=1e-3)
    update_bias(stack, counts, rate=1e-3)
    assert stack[0].expert_bias.tolist() == pytest.approx([-2e-3, 0.0, -2e-3, 2e-3], abs=1e-9)
    assert stack[1].expert_bias.tolist() == [0.0] * 4  # balanced: nothing moves
    assert all(r.expert_bias.dtype == torch.float32 for r in stack)
    assert all(r.weight.grad is None for r in stack)
    with pytest.raises(AssertionError, match="router_balance: bias"):
        update_bias(router_stack(layers=2, with_bias=False, num_experts=4), counts, 1e-3)


def skewed_maxvio(with_bias: bool, steps: int = 200) -> list[float]:
    """MaxVio at each step of a router whose weight favours experts 0 and 1 on fixed random
    tokens; the bias arm moves the bias after each step (rate 1e-2), nothing else changes."""
    gen = torch.Generator().manual_seed(0)
    stack = router_stack(layers=1, with_bias=with_bias)
    hidden = torch.randn(512, HIDDEN, generator=gen) + 0.8  # a direction all tokens share
    with torch.no_grad():
        stack[0].weight.mul_(0.3)
        stack[0].weight[:2] += 0.2  # experts 0 and 1 lean into it
    real = torch.ones(512, dtype=torch.bool)
    maxvio = []
    for _ in range(steps):
        with torch.no_grad():
            stack[0](hidden)
        counts = expert_counts(stack, real)
        assert counts is not None and counts.sum() == 512 * 2
        maxvio.append(expert_stats(counts, stack)["moe/maxvio"])
        if with_bias:
            update_bias(stack, counts, rate=1e-2)
    return maxvio


def test_the_bias_balances_a_skewed_router_that_stays_skewed_without_it():
    plain = skewed_maxvio(with_bias=False)
    assert plain[0] > 1.5  # experts 0 and 1 take most of the 8 experts' tokens
    assert plain == [plain[0]] * len(plain)
    biased = skewed_maxvio(with_bias=True)
    assert biased[0] == plain[0]  # a zero bias chooses as the stock router does
    assert max(biased[-50:]) < 0.5  # balanced, and it stays so


def test_expert_counts_count_only_real_tokens_and_stats_read_them():
    stack = router_stack(layers=2, with_bias=True)
    hidden = torch.randn(6, HIDDEN, generator=torch.Generator().manual_seed(1))
    for router in stack:
        router(hidden)
    real = torch.tensor([True, True, False, True, False, True])
    counts = expert_counts(stack, real)
    for router, load in zip(stack, counts):
        assert torch.equal(
            load, torch.bincount(router.chosen[real].reshape(-1), minlength=8).float()
        )
    assert expert_counts(nn.Linear(2, 2), real) is None  # dense: no routers

    loads = torch.tensor([[4.0, 4.0, 0.0, 0.0], [2.0, 2.0, 2.0, 2.0]])
    stack4 = router_stack(layers=2, with_bias=True, num_experts=4)
    stack4[0].expert_bias.copy_(torch.tensor([-0.5, 0.0, 0.25, 1.0]))
    stats = expert_stats(loads, stack4)
    assert (stats["moe/maxvio/l0"], stats["moe/maxvio/l1"], stats["moe/maxvio"]) == (1.0, 0.0, 1.0)
    assert (stats["moe/dead/l0"], stats["moe/dead"]) == (2.0, 2.0)
    assert stats["moe/load_entropy/l0"] == pytest.approx(0.5)
    assert stats["moe/load_entropy/l1"] == pytest.approx(1.0)
    assert stats["moe/load_entropy"] == pytest.approx(0.5)
    assert (stats["moe/bias_min/l0"], stats["moe/bias_max/l0"]) == (-0.5, 1.0)


@pytest.mark.parametrize("with_bias", [False, True])
def test_router_without_bias_or_replay_is_stock_qwen3_moe(with_bias):
    """A zero bias chooses as no bias does; replacing the routers leaves the logits bit-equal."""
    stock = Qwen3MoeTopKRouter(router_config())
    ours = Router(router_config(), with_bias)
    gen = torch.Generator().manual_seed(2)
    with torch.no_grad():
        stock.weight.copy_(torch.randn(stock.weight.shape, generator=gen))
        ours.weight.copy_(stock.weight)
    hidden = torch.randn(3, 5, HIDDEN, generator=gen)
    for got, want in zip(ours(hidden), stock(hidden)):
        assert torch.equal(got, want)

    model = tiny_model("aux_loss")
    ids = torch.randint(0, 64, (2, 12), generator=gen)
    with torch.no_grad():
        before = model(ids).logits
    weights = [layer.mlp.gate.weight for layer in model.model.layers]
    installed = install_routers(model, with_bias=with_bias)
    assert len(installed) == 2 and all(type(r) is Router for r in installed)
    assert all(r.weight is w for r, w in zip(installed, weights))  # the same parameter
    with torch.no_grad():
        assert torch.equal(model(ids).logits, before)
    assert install_routers(model, with_bias=with_bias) == installed  # idempotent


def test_the_bias_moves_the_choice_not_the_gate_weights():
    router = router_stack(layers=1, with_bias=True)[0]
    hidden = torch.randn(32, HIDDEN, generator=torch.Generator().manual_seed(3))
    router.expert_bias.copy_(torch.tensor([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.5, 0.3]))
    logits, weights, indices = router(hidden)
    probs = logits.softmax(-1)
    assert torch.equal(indices, (probs + router.expert_bias).topk(2).indices)
    assert not torch.equal(indices, probs.topk(2).indices)
    assert torch.equal(router.chosen, indices)
    picked = probs.gather(-1, indices)
    torch.testing.assert_close(weights, picked / picked.sum(-1, keepdim=True))


def test_replay_routes_to_the_given_experts_with_this_routers_probabilities():
    router = router_stack(layers=1, with_bias=True)[0]
    router.expert_bias.copy_(torch.linspace(-0.2, 0.2, 8))
    hidden = torch.randn(6, HIDDEN, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        probs = router(hidden)[0].softmax(-1)
    own = router.chosen.clone()
    # Experts it would never choose (its least likely), some slots left to it.
    replay = probs.topk(2, largest=False).indices
    replay[1, 0] = NO_REPLAY
    replay[4] = NO_REPLAY
    router.replay = replay
    logits, weights, indices = router(hidden)
    want = torch.where(replay == NO_REPLAY, own, replay)
    assert torch.equal(indices, want)
    assert not torch.equal(indices, own)
    assert torch.equal(indices[4], own[4])
    assert torch.equal(router.chosen, own)  # its own choice, for the counts and agreement
    picked = logits.softmax(-1).gather(-1, want)
    torch.testing.assert_close(weights, picked / picked.sum(-1, keepdim=True))

    (weights * torch.arange(12.0).reshape(6, 2)).sum().backward()
    assert router.weight.grad is not None and router.weight.grad.abs().sum() > 0


def test_bias_kept_fp32_restores_the_bias_a_bf16_cast_rounded():
    stack = router_stack(layers=2, with_bias=True)
    values = [1e-3 * torch.arange(1.0, 9.0) + 1.0, -3e-3 * torch.arange(8.0)]
    for router, v in zip(stack, values):
        router.expert_bias.copy_(v)
    with bias_kept_fp32(stack):
        stack.to(torch.bfloat16)  # as DeepSpeed's bf16 engine casts every buffer
        assert stack[0].expert_bias.dtype == torch.bfloat16
        assert not torch.equal(stack[0].expert_bias.float(), values[0])  # rounded
    for router, v in zip(stack, values):
        assert router.weight.dtype == torch.bfloat16  # the cast itself stands
        assert router.expert_bias.dtype == torch.float32
        assert torch.equal(router.expert_bias, v)
    assert set(stack.state_dict()) >= {f"0.{BIAS}", f"1.{BIAS}"}  # still buffers


def test_a_biased_moe_round_trips_through_save_and_from_pretrained(tmp_path):
    model = tiny_model("bias")
    assert type(model) is BiasedQwen3MoeForCausalLM
    gen = torch.Generator().manual_seed(5)
    for router in routers(model):
        router.expert_bias.copy_(torch.randn(8, generator=gen) * 0.05)
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["architectures"] == ["BiasedQwen3MoeForCausalLM"]
    assert config["model_type"] == "rsrl_qwen3_moe"

    loaded = AutoModelForCausalLM.from_pretrained(tmp_path, dtype=torch.float32).eval()
    assert type(loaded) is BiasedQwen3MoeForCausalLM
    saved, back = routers(model), routers(loaded)
    assert len(back) == 2
    for a, b in zip(saved, back):
        assert b.expert_bias.dtype == torch.float32
        assert b.expert_bias.abs().sum() > 0 and torch.equal(a.expert_bias, b.expert_bias)
    ids = torch.randint(0, 64, (1, 16), generator=gen)
    with torch.no_grad():
        assert torch.equal(model(ids).logits, loaded(ids).logits)
