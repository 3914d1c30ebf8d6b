"""The policy as DeepSpeed sees it: token log-probabilities of responses, with gradients.

Log-probabilities come from the project's own loss kernel (`reward_shaped_loss` with no
shaping is cross-entropy, so -loss per token is log pi(token)); the same pass gives the
policy's entropy over response tokens. Logits are divided by the sampling temperature, so
the gradient is that of the distribution the samples came from (top-p aside). The rollout
engines report temperature-1 log-probabilities, so their mismatch with the trainer is logged
only at temperature 1 (the paper's setting).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from rsrl.models.moe import agreement, expert_counts, install_routers, replaying
from rsrl.objective.loss import reward_shaped_loss

IGNORE = -100


@dataclass(frozen=True)
class Routing:
    """An MoE forward's experts over the response tokens (the tokens whose forward gives a
    response token's log-prob)."""

    counts: torch.Tensor  # [layers, experts] tokens sent to each expert
    # [layers] tokens whose experts equal the engine's: those the update used, the router's
    # own choice; None when the batch carries no engine routing
    agreement: dict[str, torch.Tensor] | None


@dataclass(frozen=True)
class TokenLogprobs:
    logp: torch.Tensor  # [B, L-1], log pi of token t+1 given its prefix; 0 where not a response
    mask: torch.Tensor  # [B, L-1], 1.0 at response tokens
    entropy: torch.Tensor  # mean entropy of pi over response tokens (detached)
    routing: Routing | None = None  # MoE only


class PolicyLM(nn.Module):
    """`replay`: an MoE routes each token to the experts the rollout engine chose for it,
    where the batch carries them (`rl.routing_replay`), instead of choosing again."""

    def __init__(self, lm: nn.Module, impl: str = "auto", replay: bool = False):
        super().__init__()
        self.lm = lm
        self.impl = impl
        self.replay = replay
        self.is_moe = bool(getattr(lm.config, "num_experts", None))
        if self.is_moe:
            install_routers(lm, with_bias=False)  # the biased MoE has its own already

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        labels: torch.Tensor,
        temperature: float,
        routed_experts: torch.Tensor | None = None,
        with_routing: bool = True,
    ) -> TokenLogprobs:
        """`routed_experts` [B, L, layers, k]: the engine's experts per token (NO_REPLAY
        where it has none). `with_routing` False skips an MoE's routing diagnostics (a
        recompute pass, whose loads and agreement the update's own pass already logs)."""
        with replaying(self.lm, routed_experts if self.replay else None):
            logits = self.lm(
                input_ids=input_ids, attention_mask=attention_mask, use_cache=False
            ).logits[:, :-1]
        targets = labels[:, 1:]
        nll, stats = reward_shaped_loss(
            logits.float() / temperature,
            targets,
            reduction="none",
            impl=self.impl,
            return_stats=True,
        )
        mask = (targets != IGNORE).float()
        return TokenLogprobs(
            logp=-nll,
            mask=mask,
            entropy=stats["entropy"].detach(),
            routing=self._routing(mask, routed_experts) if self.is_moe and with_routing else None,
        )

    def _routing(self, mask: torch.Tensor, routed: torch.Tensor | None) -> Routing:
        predicting = F.pad(mask, (0, 1)).bool()  # the forwards on tokens 0..L-2 predict 1..L-1
        counts = expert_counts(self.lm, predicting)
        assert counts is not None
        return Routing(counts, agreement(self.lm, routed, mask) if routed is not None else None)
