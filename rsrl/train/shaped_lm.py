"""A causal LM and its reward-shaped loss as one module, so DeepSpeed wraps both.

The LM head runs either as a plain projection followed by `reward_shaped_loss`, or, with
`objective.fused_head`, inside `fused_linear_reward_shaped_loss`, which never materialises
the [tokens, vocab] logits; both run the kernels of `objective.impl`. Under ZeRO-3 the
head weight is partitioned across workers and the kernel reads the full matrix:
`FusedHead` owns the (shared) weight as a module of its own, so DeepSpeed's module hooks
gather it for the forward and again for the backward, exactly as they do for any layer
(and as they do for an embedding tied to the head).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from rsrl.models.moe import expert_counts, install_routers, routers
from rsrl.objective.config import ObjectiveSpec
from rsrl.objective.loss import fused_linear_reward_shaped_loss, reward_shaped_loss

IGNORE_INDEX = -100  # targets that no loss counts (the loss functions' default)


@dataclass(frozen=True)
class LossOutput:
    loss: torch.Tensor  # what backward runs on: shaped loss (+ MoE balance loss)
    stats: dict[str, torch.Tensor]  # detached per-batch means: nll, entropy, ... and aux terms
    expert_counts: torch.Tensor | None  # MoE: [layers, experts] real tokens routed to each


class ShapedLossLM(nn.Module):
    def __init__(self, lm: nn.Module, objective: ObjectiveSpec):
        super().__init__()
        self.lm: Any = lm  # an HF causal LM (torch types its attributes as Tensor | Module)
        self.objective = objective
        # MoE: the load-balancing weight comes from the model config (`model.router_aux_loss_coef`).
        self.router_aux_coef = getattr(lm.config, "router_aux_loss_coef", 0.0)
        self.is_moe = getattr(lm.config, "num_experts", None) is not None
        if self.is_moe:
            install_routers(lm, with_bias=False)  # the biased MoE has its own already
        self.fused_head = (
            FusedHead(lm.lm_head.weight)  # type: ignore[union-attr, arg-type]  # torch's Module attributes
            if objective.fused_head
            else None
        )

    def forward(
        self,
        input_ids: torch.Tensor,
        targets: torch.Tensor,
        position_ids: torch.Tensor | None = None,
    ) -> LossOutput:
        # No attention_mask: given restarting position_ids (reset_position_ids), transformers
        # then masks attention per document itself; a 2D mask would switch that off.
        out = self.lm.model(
            input_ids=input_ids,
            position_ids=position_ids,
            output_router_logits=(self.is_moe and self.router_aux_coef > 0) or None,
            use_cache=False,
        )
        hidden = out.last_hidden_state.flatten(0, 1)
        loss, stats = self._shaped_loss(hidden, targets.flatten())
        stats = {name: value.detach() for name, value in stats.items()}
        stats["shaped_loss"] = loss.detach()
        if self.is_moe and self.router_aux_coef > 0:
            chosen = [router.chosen for router in routers(self.lm) if router.chosen is not None]
            aux = balance_loss(out.router_logits, chosen)
            stats["router_aux_loss"] = aux.detach()
            loss = loss + self.router_aux_coef * aux
        # Loads count the tokens the loss counts: padding and document ends are not routed work.
        counts = expert_counts(self.lm, targets != IGNORE_INDEX) if self.is_moe else None
        return LossOutput(loss=loss, stats=stats, expert_counts=counts)

    def _shaped_loss(self, hidden: torch.Tensor, targets: torch.Tensor):
        o = self.objective
        kwargs: dict[str, Any] = dict(
            beta=o.beta,
            lam_top=o.topk.lam_top,
            lam_tail=o.topk.lam_tail,
            k=o.topk.k,
            positive_form=o.positive_form,
            impl=o.impl,
            return_stats=True,
        )
        if self.fused_head is not None:
            return self.fused_head(hidden, targets, **kwargs)
        return reward_shaped_loss(self.lm.lm_head(hidden), targets, **kwargs)


def balance_loss(
    router_logits: tuple[torch.Tensor, ...], chosen: list[torch.Tensor]
) -> torch.Tensor:
    """Switch-style load-balancing loss, as Qwen3-MoE's `load_balancing_loss_func` defines it
    (so router_aux_loss_coef means what it means there), over the experts each layer chose.

    Over every layer's tokens pooled: E * sum_e f_e * P_e, with f_e the expert's top-k
    assignments per token (they sum to k: the loss is k at perfect balance) and P_e its
    mean router probability.
    """
    probs = torch.stack([logits.float().softmax(dim=-1) for logits in router_logits])
    assigned = torch.zeros_like(probs).scatter_(-1, torch.stack(chosen), 1.0)  # [L, tokens, E]
    return probs.shape[-1] * (assigned.mean(dim=(0, 1)) * probs.mean(dim=(0, 1))).sum()


class FusedHead(nn.Module):
    """The LM head's weight (shared, not copied) behind the fused linear loss."""

    def __init__(self, weight: nn.Parameter):
        super().__init__()
        self.weight = weight

    def forward(self, hidden: torch.Tensor, targets: torch.Tensor, **kwargs):
        return fused_linear_reward_shaped_loss(hidden, self.weight, targets, **kwargs)
