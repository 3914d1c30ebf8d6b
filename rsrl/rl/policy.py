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
from torch import nn

from rsrl.objective.loss import reward_shaped_loss

IGNORE = -100


@dataclass(frozen=True)
class TokenLogprobs:
    logp: torch.Tensor  # [B, L-1], log pi of token t+1 given its prefix; 0 where not a response
    mask: torch.Tensor  # [B, L-1], 1.0 at response tokens
    entropy: torch.Tensor  # mean entropy of pi over response tokens (detached)


class PolicyLM(nn.Module):
    def __init__(self, lm: nn.Module, impl: str = "auto"):
        super().__init__()
        self.lm = lm
        self.impl = impl

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        labels: torch.Tensor,
        temperature: float,
    ) -> TokenLogprobs:
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
        return TokenLogprobs(
            logp=-nll, mask=(targets != IGNORE).float(), entropy=stats["entropy"].detach()
        )
