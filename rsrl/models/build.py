"""Hugging Face models from `model:`: dense as Qwen3, MoE as Qwen3-MoE (with the expert bias
of `rsrl.models.moe` under `router_balance: bias`).

Every model is a stock `transformers` architecture built from a config (never a hub), so a
checkpoint is a plain HF directory that `transformers` and vLLM load as they are.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from transformers import PretrainedConfig, PreTrainedModel, Qwen3Config, Qwen3MoeConfig

from rsrl.errors import SpecError
from rsrl.models.config import ModelSpec
from rsrl.models.moe import BiasedQwen3MoeConfig
from rsrl.models.presets import PRESETS

# Qwen3-MoE's own default weight of the load-balancing loss; the training stage reads it
# from the config (`router_aux_loss_coef`) and turns `output_router_logits` on to apply it.
ROUTER_AUX_LOSS_COEF = 0.001


def resolve_shape(model: ModelSpec) -> dict:
    """The preset's shape with every explicitly set `model.*` field laid over it.

    Returns plain numbers keyed like ModelSpec (arch, vocab_size, hidden_size, ...), with
    `tie_embeddings` defaulting to False when neither the preset nor the spec sets it.
    """
    shape: dict = dict(PRESETS[model.preset]) if model.preset else {}
    for f in dataclasses.fields(model):
        value = getattr(model, f.name)
        if f.name != "preset" and value is not None:
            shape[f.name] = value
    shape.setdefault("tie_embeddings", False)
    if shape.get("arch") not in ("dense", "moe"):
        raise SpecError("model: set model.preset (see `rsrl models`) or model.arch: dense | moe")
    return shape


def model_config(
    model: ModelSpec,
    *,
    rope_theta: float,
    max_seq_len: int,
    eos_token_id: int | None = None,
    bos_token_id: int | None = None,
    pad_token_id: int | None = None,
) -> PretrainedConfig:
    """A Qwen3Config (dense) or Qwen3MoeConfig (moe; BiasedQwen3MoeConfig under bias) for `model`.

    `rope_theta` and `max_seq_len` come from the training stage (mid-training raises both).
    MoE configs carry `router_aux_loss_coef` (load-balancing weight) and
    `output_router_logits=False`; a trainer that wants the auxiliary loss sets it True.
    Special token ids are optional: pass them from the tokenizer so generation stops at EOS.
    """
    shape = resolve_shape(model)
    common = dict(
        vocab_size=shape["vocab_size"],
        hidden_size=shape["hidden_size"],
        num_hidden_layers=shape["num_layers"],
        num_attention_heads=shape["num_heads"],
        num_key_value_heads=shape["num_kv_heads"],
        head_dim=shape["head_dim"],
        tie_word_embeddings=shape["tie_embeddings"],
        max_position_embeddings=max_seq_len,
        rope_parameters={"rope_type": "default", "rope_theta": float(rope_theta)},
        eos_token_id=eos_token_id,
        bos_token_id=bos_token_id,
        pad_token_id=pad_token_id,
    )
    if shape["arch"] == "dense":
        return Qwen3Config(intermediate_size=shape["ffn_size"], **common)
    biased = model.resolved_router_balance() == "bias"
    aux_coef = 0.0 if biased else ROUTER_AUX_LOSS_COEF  # bias: the loss only when asked for
    moe_config = BiasedQwen3MoeConfig if biased else Qwen3MoeConfig
    return moe_config(
        # Every layer is sparse; intermediate_size would only size dense (mlp_only) layers.
        intermediate_size=shape.get("ffn_size") or shape["expert_ffn_size"],
        moe_intermediate_size=shape["expert_ffn_size"],
        num_experts=shape["num_experts"],
        num_experts_per_tok=shape["experts_per_token"],
        norm_topk_prob=True,
        router_aux_loss_coef=shape.get("router_aux_loss_coef", aux_coef),
        output_router_logits=False,
        **common,
    )


def build_model(
    model: ModelSpec,
    *,
    rope_theta: float,
    max_seq_len: int,
    seed: int,
    **special_token_ids: int | None,
) -> PreTrainedModel:
    """A freshly initialised fp32 causal LM; the same `seed` gives the same weights.

    `special_token_ids` (eos_token_id, bos_token_id, pad_token_id) pass to `model_config`.
    The global torch RNG is left as it was.
    """
    from transformers import AutoModelForCausalLM

    config = model_config(
        model, rope_theta=rope_theta, max_seq_len=max_seq_len, **special_token_ids
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return AutoModelForCausalLM.from_config(config, dtype=torch.float32)


def load_pretrained(model_dir: str | Path, **options) -> PreTrainedModel:
    """The HF export in `model_dir` (rsrl's biased MoE included), fp32 unless `dtype` is given."""
    from transformers import AutoModelForCausalLM

    options = {"dtype": torch.float32, "local_files_only": True, **options}
    return AutoModelForCausalLM.from_pretrained(str(model_dir), **options)


def load_config(model_dir: str | Path) -> PretrainedConfig:
    """The config of the HF export in `model_dir`."""
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(str(model_dir), local_files_only=True)
