"""The training module's loss terms against the definitions they claim to follow."""

from dataclasses import replace

import pytest
import torch
from transformers.models.qwen3_moe.modeling_qwen3_moe import load_balancing_loss_func

from rsrl.data.packed import position_ids
from rsrl.models.build import build_model
from rsrl.models.moe import routers
from rsrl.objective.config import ObjectiveSpec
from rsrl.train.shaped_lm import IGNORE_INDEX, ShapedLossLM, balance_loss
from tests.models.shapes import TINY_DENSE, TINY_MOE


def stock_choice(router_logits, k: int) -> list[torch.Tensor]:
    """The experts stock Qwen3-MoE routes each token to: the top-k router probabilities."""
    return [logits.float().softmax(dim=-1).topk(k, dim=-1).indices for logits in router_logits]


@pytest.mark.parametrize("experts_per_token", [1, 2, 6])
def test_router_balance_loss_is_hugging_faces(experts_per_token):
    """With k active experts the old per-token load / k made the loss k times weaker than
    router_aux_loss_coef means in Qwen3-MoE; layers are pooled as there, not averaged."""
    gen = torch.Generator().manual_seed(0)
    # Layers routed differently, so pooling and averaging over layers differ.
    logits = (torch.randn(10, 8, generator=gen) * 2, torch.randn(10, 8, generator=gen) * 0.3)
    aux = balance_loss(logits, stock_choice(logits, experts_per_token))
    want = load_balancing_loss_func(logits, num_experts=8, top_k=experts_per_token)
    torch.testing.assert_close(aux, want)


def test_forward_adds_the_balance_loss_of_the_models_router_logits():
    lm = build_model(TINY_MOE, rope_theta=1e4, max_seq_len=16, seed=0)
    model = ShapedLossLM(lm, ObjectiveSpec(impl="reference"))
    input_ids = torch.randint(0, 64, (2, 8), generator=torch.Generator().manual_seed(1))
    targets = input_ids.clone()
    targets[1, 5:] = IGNORE_INDEX  # not counted as routed work
    out = model(input_ids, targets)
    with torch.no_grad():
        router_logits = lm.model(
            input_ids=input_ids, output_router_logits=True, use_cache=False
        ).router_logits
    want = load_balancing_loss_func(router_logits, num_experts=8, top_k=2)
    torch.testing.assert_close(out.stats["router_aux_loss"], want)
    coef = lm.config.router_aux_loss_coef
    assert coef > 0
    torch.testing.assert_close(out.loss.detach(), out.stats["shaped_loss"] + coef * want)
    # The loads: each layer's stock top-2 choice of the tokens the loss counts.
    real = (targets != IGNORE_INDEX).reshape(-1)
    counts = torch.stack(
        [torch.bincount(c[real].reshape(-1), minlength=8) for c in stock_choice(router_logits, 2)]
    )
    assert torch.equal(out.expert_counts, counts.float())
    assert out.expert_counts.sum(-1).tolist() == [2.0 * 13] * 2


@pytest.mark.parametrize("coef", [None, 0.01])
def test_a_bias_model_has_no_balance_loss_unless_its_weight_is_set(coef):
    spec = replace(TINY_MOE, router_balance="bias", router_aux_loss_coef=coef)
    lm = build_model(spec, rope_theta=1e4, max_seq_len=16, seed=0)
    assert lm.config.router_aux_loss_coef == (coef or 0.0)
    gen = torch.Generator().manual_seed(4)
    for router in routers(lm):
        router.expert_bias.copy_(torch.randn(8, generator=gen) * 0.1)
    model = ShapedLossLM(lm, ObjectiveSpec(impl="reference"))
    input_ids = torch.randint(0, 64, (2, 8), generator=gen)
    out = model(input_ids, input_ids)
    if coef is None:
        assert "router_aux_loss" not in out.stats
        torch.testing.assert_close(out.loss.detach(), out.stats["shaped_loss"])
        return
    # Set: the loss over the experts the biased routers chose, not the stock top-k.
    with torch.no_grad():
        router_logits = lm.model(
            input_ids=input_ids, output_router_logits=True, use_cache=False
        ).router_logits
    chosen = [
        (logits.softmax(-1) + router.expert_bias).topk(2).indices
        for logits, router in zip(router_logits, routers(lm))
    ]
    assert any(not torch.equal(a, b) for a, b in zip(chosen, stock_choice(router_logits, 2)))
    want = balance_loss(router_logits, chosen)
    torch.testing.assert_close(out.stats["router_aux_loss"], want)
    torch.testing.assert_close(out.loss.detach(), out.stats["shaped_loss"] + coef * want)


def test_reset_position_ids_keep_attention_inside_each_document():
    """Positions restarting at a document make transformers mask attention per document
    (packed-sequence detection from position_ids): a document's loss inside a packed row is
    its loss alone, whatever precedes it."""
    eos = 1
    lm = build_model(TINY_DENSE, rope_theta=1e4, max_seq_len=16, seed=0)
    model = ShapedLossLM(lm, ObjectiveSpec(impl="reference"))
    gen = torch.Generator().manual_seed(2)
    first, doc = (
        torch.randint(2, 64, (4,), generator=gen),
        torch.randint(2, 64, (7,), generator=gen),
    )
    row = torch.cat([first, torch.tensor([eos]), doc])[None]
    positions = torch.from_numpy(position_ids(row.numpy(), eos))
    assert positions[0, 5:].tolist() == list(range(7))
    targets = torch.full_like(row, -100)
    targets[0, 5:-1] = doc[1:]  # the document's own next tokens only
    alone_targets = torch.cat([doc[1:], torch.tensor([-100])])[None]
    with torch.no_grad():
        packed = model(row, targets, positions).loss
        alone = model(doc[None], alone_targets, torch.arange(7)[None]).loss
    torch.testing.assert_close(packed, alone)


def test_fused_head_computes_what_the_plain_head_does():
    """objective.fused_head changes how the head runs, not its loss or gradients."""
    input_ids = torch.randint(0, 64, (2, 8), generator=torch.Generator().manual_seed(3))
    results = []
    for fused_head in (False, True):
        lm = build_model(TINY_DENSE, rope_theta=1e4, max_seq_len=16, seed=0)
        objective = ObjectiveSpec(beta=-0.25, impl="reference", fused_head=fused_head)
        model = ShapedLossLM(lm, objective)
        assert (model.fused_head is not None) == fused_head
        out = model(input_ids, input_ids)
        out.loss.backward()
        results.append((out.loss.detach(), out.stats["entropy"], lm.lm_head.weight.grad))
    torch.testing.assert_close(results[0], results[1])
