"""The `model:` and `tokenizer:` sections of a spec (docs/spec.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from rsrl.config import Problems, check_choices
from rsrl.models.presets import DENSE_FIELDS, MOE_FIELDS, PRESETS

Arch = Literal["dense", "moe"]
# aux_loss: Qwen3-MoE's load-balancing loss | bias: auxiliary-loss-free expert bias (the paper)
RouterBalance = Literal["aux_loss", "bias"]
ROUTER_BIAS_RATE = 1e-3  # Megatron-Core's and torchtitan's default
TokenizerKind = Literal["bpe", "pretrained"]


@dataclass
class ModelSpec:
    """A preset name, or an architecture given field by field (fields override the preset)."""

    preset: str | None = None  # tiny-dense, tiny-moe, paper-1b, ... (`rsrl models`)
    arch: Arch | None = None
    vocab_size: int | None = None
    hidden_size: int | None = None
    num_layers: int | None = None
    num_heads: int | None = None
    num_kv_heads: int | None = None
    head_dim: int | None = None
    ffn_size: int | None = None
    num_experts: int | None = None
    experts_per_token: int | None = None
    expert_ffn_size: int | None = None
    tie_embeddings: bool | None = None
    router_balance: RouterBalance | None = None  # MoE: aux_loss (default) | bias (paper presets)
    router_bias_rate: float | None = None  # bias: step per optimizer step (1e-3)
    # MoE load-balancing loss weight: 0.001 under aux_loss, 0 (off) under bias unless set
    router_aux_loss_coef: float | None = None

    def resolved_vocab_size(self) -> int | None:
        return self._resolved("vocab_size")

    def resolved_arch(self) -> Arch | None:
        return self._resolved("arch")

    def resolved_router_balance(self) -> RouterBalance:
        return self._resolved("router_balance") or "aux_loss"

    def resolved_router_bias_rate(self) -> float:
        return self.router_bias_rate if self.router_bias_rate is not None else ROUTER_BIAS_RATE

    def _resolved(self, name: str):
        """The field's value, else the preset's."""
        value = getattr(self, name)
        return value if value is not None else PRESETS.get(self.preset or "", {}).get(name)

    def check(self, path: str = "model") -> list[str]:
        p = Problems(path)
        check_choices(self, p)
        self._check_router(p)
        if self.preset is not None:
            p.one_of(self.preset, PRESETS, "preset")
            return p.lines
        if self.arch is None:
            return [f"{path}: set model.preset (see `rsrl models`) or model.arch: dense | moe"]
        for name in MOE_FIELDS if self.arch == "moe" else DENSE_FIELDS:
            value = getattr(self, name)
            if value is None:
                p.add(name, f"required for arch {self.arch} without a preset")
            else:
                p.need(value >= 1, name, value, "must be >= 1")
        if self.num_heads and self.num_kv_heads:
            p.need(
                self.num_heads % self.num_kv_heads == 0,
                "num_kv_heads",
                self.num_kv_heads,
                f"must divide num_heads ({self.num_heads})",
            )
        if self.num_experts and self.experts_per_token:
            p.need(
                self.experts_per_token <= self.num_experts,
                "experts_per_token",
                self.experts_per_token,
                f"must be <= num_experts ({self.num_experts})",
            )
        return p.lines

    def _check_router(self, p: Problems) -> None:
        if self.resolved_arch() == "dense":
            for name in ("router_balance", "router_bias_rate", "router_aux_loss_coef"):
                value = getattr(self, name)
                p.need(value is None, name, value, "is for MoE models (model.arch: moe)")
        if self.router_aux_loss_coef is not None:
            p.need(
                self.router_aux_loss_coef >= 0,
                "router_aux_loss_coef",
                self.router_aux_loss_coef,
                "must be >= 0",
            )
        if self.router_bias_rate is not None:
            p.need(
                self.router_bias_rate > 0, "router_bias_rate", self.router_bias_rate, "must be > 0"
            )
            p.need(
                self.resolved_router_balance() == "bias",
                "router_bias_rate",
                self.router_bias_rate,
                "needs model.router_balance: bias",
            )


@dataclass
class TokenizerSpec:
    kind: TokenizerKind = "bpe"  # bpe: trained on the pre-training mixture | pretrained: HF dir
    vocab_size: int | None = None
    path: str | None = None  # for kind: pretrained

    def check(self, model_vocab_size: int | None, path: str = "tokenizer") -> list[str]:
        from rsrl.data.paths import check_data_path

        p = Problems(path)
        check_choices(self, p)
        if self.kind == "pretrained":
            if not self.path:
                p.add("path", "required for kind: pretrained (a local HF tokenizer dir)")
            elif problem := check_data_path(self.path, want_dir=True):
                p.add("path", problem)
        if self.kind == "bpe":
            p.need(
                self.vocab_size is not None and self.vocab_size >= 300,
                "vocab_size",
                self.vocab_size,
                "must be >= 300 for a byte-level BPE (256 bytes + specials)",
            )
            if self.vocab_size and model_vocab_size:
                p.need(
                    self.vocab_size <= model_vocab_size,
                    "vocab_size",
                    self.vocab_size,
                    f"must be <= the model's vocab_size ({model_vocab_size})",
                )
        return p.lines
