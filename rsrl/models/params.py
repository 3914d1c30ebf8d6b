"""Parameter counts of a model, computed on the meta device (no weights are allocated).

- total: every parameter once (tied input/output embeddings count once).
- active: parameters one token passes through: an MoE layer's experts count k/E of
  their size (k experts per token of E); the router counts in full.
- active non-embedding: active less the token embedding and an untied LM head, the
  convention behind the paper's "A0.5B" model names.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from rsrl.models.build import model_config, resolve_shape
from rsrl.models.config import ModelSpec
from rsrl.models.presets import PRESETS

# Counts do not depend on these; any valid values build the same modules.
_ROPE_THETA, _MAX_SEQ_LEN = 10000.0, 4096
_EMBEDDING_NAMES = ("embed_tokens.", "lm_head.")
_EXPERT_MARK = ".experts."


@dataclass(frozen=True)
class ParamCounts:
    total: int
    active: int
    active_non_embedding: int


def count_module_params(
    module: nn.Module, experts_per_token: int = 0, num_experts: int = 0
) -> ParamCounts:
    """Counts of an instantiated (or meta) module; MoE expert weights scaled by k/E."""
    total = active = embedding = 0
    for name, param in module.named_parameters():  # shared (tied) tensors appear once
        n = param.numel()
        total += n
        if _EXPERT_MARK in name and num_experts:
            n = n * experts_per_token // num_experts
        active += n
        if any(mark in name for mark in _EMBEDDING_NAMES):
            embedding += n
    return ParamCounts(total=total, active=active, active_non_embedding=active - embedding)


def count_params(model: ModelSpec) -> ParamCounts:
    """Counts of the model `model` describes, built on the meta device."""
    from transformers import AutoModelForCausalLM

    shape = resolve_shape(model)
    config = model_config(model, rope_theta=_ROPE_THETA, max_seq_len=_MAX_SEQ_LEN)
    with torch.device("meta"):
        meta_model = AutoModelForCausalLM.from_config(config)
    return count_module_params(
        meta_model, shape.get("experts_per_token", 0), shape.get("num_experts", 0)
    )


def human(n: int) -> str:
    """1234567 -> '1.23M'."""
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(n)


def presets_table() -> str:
    """The table `rsrl models` prints: each preset's shape, MoE balancing (model.router_balance)
    and parameter counts."""
    header = (
        "preset",
        "arch",
        "layers",
        "hidden",
        "heads/kv",
        "experts",
        "balance",
        "total",
        "active",
        "active non-emb",
    )
    rows = [header]
    for name, shape in PRESETS.items():
        spec = ModelSpec(preset=name)
        counts = count_params(spec)
        moe = shape["arch"] == "moe"
        experts = f"{shape['experts_per_token']}/{shape['num_experts']}" if moe else "-"
        rows.append(
            (
                name,
                shape["arch"],
                str(shape["num_layers"]),
                str(shape["hidden_size"]),
                f"{shape['num_heads']}/{shape['num_kv_heads']}",
                experts,
                spec.resolved_router_balance() if moe else "-",
                human(counts.total),
                human(counts.active),
                human(counts.active_non_embedding),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows
    )
