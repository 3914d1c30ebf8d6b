"""MoE routing as rsrl trains it: Qwen3-MoE's softmax top-k router, with what the paper and
RL need around it.

- **Expert bias** (`model.router_balance: bias`, auxiliary-loss-free balancing as in
  DeepSeek-V3): a per-expert fp32 bias added to the routing probabilities for the top-k
  choice only; the gate weights stay the unbiased probabilities of the chosen experts,
  renormalised. The bias is a buffer, not a parameter: no gradient moves it, the trainer
  does after each optimizer step (`update_bias`).
- **Replay**: the experts of each token can be given from outside (the rollout engine's
  choice, `rl.routing_replay`) instead of chosen here; the gate weights are still this
  model's probabilities of those experts, so the router keeps its gradient.
- **The last choice** is kept (`Router.chosen`), for the load count, the diagnostics and
  the trainer-engine agreement.

A model with the bias is its own architecture (`BiasedQwen3MoeForCausalLM`, model type
`rsrl_qwen3_moe`): a stock Qwen3-MoE class would drop the bias tensors on load without an
error. `register()` makes transformers' Auto classes know it (vLLM's side is
`rsrl.models.vllm_moe`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import AutoConfig, AutoModelForCausalLM, Qwen3MoeConfig
from transformers.models.qwen3_moe.modeling_qwen3_moe import (
    Qwen3MoeForCausalLM,
    Qwen3MoeTopKRouter,
)

BIAS = "e_score_correction_bias"  # the name DeepSeek-V3 checkpoints and vLLM give it
NO_REPLAY = -1  # a replayed token slot that this router chooses itself (e.g. padding)


class Router(Qwen3MoeTopKRouter):
    """Qwen3-MoE's router (same weight, same outputs without bias or replay), plus an
    optional expert bias, replay, and the last choice kept."""

    def __init__(self, config: Qwen3MoeConfig, with_bias: bool):
        super().__init__(config)
        bias = torch.zeros(config.num_experts, dtype=torch.float32) if with_bias else None
        self.register_buffer(BIAS, bias)
        self.replay: torch.Tensor | None = None  # [tokens, k] experts to use, NO_REPLAY: own
        self.chosen: torch.Tensor | None = None  # [tokens, k] this router's own last choice
        self.used: torch.Tensor | None = None  # [tokens, k] the experts it last routed to

    @property
    def expert_bias(self) -> torch.Tensor | None:
        return getattr(self, BIAS)

    def forward(self, hidden_states):
        hidden_states = hidden_states.reshape(-1, self.hidden_dim)
        logits = F.linear(hidden_states, self.weight)
        probs = logits.softmax(dim=-1, dtype=torch.float)
        bias = self.expert_bias
        scores = probs.detach() if bias is None else probs.detach() + bias.float()
        own = scores.topk(self.top_k, dim=-1).indices
        self.chosen = own
        indices = own
        if self.replay is not None:
            indices = torch.where(self.replay == NO_REPLAY, own, self.replay.to(own))
        self.used = indices
        weights = probs.gather(-1, indices)
        if self.norm_topk_prob:
            weights = weights / weights.sum(dim=-1, keepdim=True)
        return logits, weights.to(logits.dtype), indices


@contextmanager
def replaying(model: nn.Module, routed: torch.Tensor | None) -> Iterator[None]:
    """Inside the block, the routers use `routed` [batch, length, layers, k] (NO_REPLAY:
    their own choice) for the batch's tokens; None replays nothing."""
    layers = [] if routed is None else routers(model)
    for i, router in enumerate(layers):
        router.replay = routed[:, :, i].flatten(0, 1)  # type: ignore[index]
    try:
        yield
    finally:
        for router in layers:
            router.replay = None


def agreement(model: nn.Module, routed: torch.Tensor, mask: torch.Tensor) -> dict[str, Tensor]:
    """Per layer, the (token, layer) pairs among `mask` [batch, length] whose expert set in
    the last forward equals `routed`'s [batch, length, layers, k]: `used` (the experts the
    tokens went to) and `own` (what the router itself chose). Sums, not means."""
    b, n = mask.shape
    engine = routed[:, :n].sort(dim=-1).values
    out = {}
    for name in ("used", "own"):
        picks = [getattr(r, "used" if name == "used" else "chosen") for r in routers(model)]
        mine = torch.stack([p.view(b, -1, p.shape[-1])[:, :n] for p in picks], dim=2)
        same = (mine.sort(dim=-1).values == engine).all(dim=-1)  # [batch, length, layers]
        out[name] = (same * mask.unsqueeze(-1)).sum(dim=(0, 1))
    return out


def routers(model: nn.Module) -> list[Router]:
    """The model's routers, by layer."""
    return [m for m in model.modules() if isinstance(m, Router)]


def install_routers(model: nn.Module, with_bias: bool) -> list[Router]:
    """Replace each Qwen3-MoE router of `model` by a `Router` with the same weight."""
    for layer in model.model.layers:  # type: ignore[union-attr]
        old = layer.mlp.gate
        if isinstance(old, Router):
            continue
        new = Router(model.config, with_bias).to(old.weight.device)  # type: ignore[arg-type]
        new.weight = old.weight
        layer.mlp.gate = new
    return routers(model)


class BiasedQwen3MoeConfig(Qwen3MoeConfig):
    model_type = "rsrl_qwen3_moe"


class BiasedQwen3MoeForCausalLM(Qwen3MoeForCausalLM):
    """Qwen3-MoE whose routers carry the expert bias (saved as
    `model.layers.N.mlp.gate.e_score_correction_bias`)."""

    config_class = BiasedQwen3MoeConfig

    def __init__(self, config: BiasedQwen3MoeConfig):
        super().__init__(config)
        install_routers(self, with_bias=True)

    @torch.no_grad()
    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, Router) and module.expert_bias is not None:
            module.expert_bias.zero_()


def register() -> None:
    """Make transformers' Auto classes load `rsrl_qwen3_moe` directories (idempotent)."""
    try:
        AutoConfig.register(BiasedQwen3MoeConfig.model_type, BiasedQwen3MoeConfig)
        AutoModelForCausalLM.register(BiasedQwen3MoeConfig, BiasedQwen3MoeForCausalLM)
    except ValueError:  # registered already
        pass


register()


# --- what the trainer does with the routers --------------------------------------------


def expert_counts(model: nn.Module, real: torch.Tensor) -> torch.Tensor | None:
    """[layers, experts] tokens sent to each expert in the last forward, counting only
    tokens where `real` (a bool mask over the batch's tokens) holds; None for a dense model."""
    layers = routers(model)
    if not layers:
        return None
    keep = real.reshape(-1)
    counts = [
        torch.bincount(r.used[keep].reshape(-1), minlength=r.num_experts)  # type: ignore[index]
        for r in layers
    ]
    return torch.stack(counts).float()


@torch.no_grad()
def update_bias(model: nn.Module, counts: torch.Tensor, rate: float) -> None:
    """One step of the expert bias: each layer's bias moves by `rate` towards balance,
    + for an expert below the layer's mean load, - above it (sign(mean - load)).
    `counts` [layers, experts] must be summed over all ranks (every rank moves alike)."""
    for router, load in zip(routers(model), counts):
        bias = router.expert_bias
        assert bias is not None, "update_bias needs a model built with router_balance: bias"
        bias += rate * torch.sign(load.mean() - load).to(bias)


@contextmanager
def bias_kept_fp32(model: nn.Module) -> Iterator[None]:
    """The expert biases come out of the block in fp32 and with their values: DeepSpeed's
    bf16/fp16 engines cast every buffer, and a bias of steps of 1e-3 does not survive bf16."""
    saved = [
        (r, r.expert_bias.detach().clone()) for r in routers(model) if r.expert_bias is not None
    ]
    yield
    for router, bias in saved:
        setattr(router, BIAS, bias.to(router.weight.device))


def expert_stats(counts: torch.Tensor, model: nn.Module) -> dict[str, float]:
    """Per layer: MaxVio (max load / mean load - 1; 0 is perfect balance), dead experts (no
    token), load entropy normalised by log(experts) (1 is uniform), and the bias's range.
    Keys `moe/<stat>/l<layer>`, plus each stat's worst layer as `moe/<stat>`."""
    stats: dict[str, float] = {}
    layers = routers(model)
    for i, load in enumerate(counts):
        share = load / load.sum().clamp_min(1)
        entropy = -(share * share.clamp_min(1e-12).log()).sum() / math.log(len(load))
        stats[f"moe/maxvio/l{i}"] = float(load.max() / load.mean().clamp_min(1e-12) - 1)
        stats[f"moe/dead/l{i}"] = float((load == 0).sum())
        stats[f"moe/load_entropy/l{i}"] = float(entropy)
        if (bias := layers[i].expert_bias) is not None:
            stats[f"moe/bias_min/l{i}"] = float(bias.min())
            stats[f"moe/bias_max/l{i}"] = float(bias.max())
    n = len(counts)
    stats["moe/maxvio"] = max(stats[f"moe/maxvio/l{i}"] for i in range(n))
    stats["moe/dead"] = max(stats[f"moe/dead/l{i}"] for i in range(n))
    stats["moe/load_entropy"] = min(stats[f"moe/load_entropy/l{i}"] for i in range(n))
    return stats
