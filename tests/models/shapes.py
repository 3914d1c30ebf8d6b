"""Model shapes small enough to build and run a step of in milliseconds on a CPU."""

from rsrl.models.config import ModelSpec

TINY_MOE = ModelSpec(
    preset="tiny-moe",
    vocab_size=64,
    hidden_size=32,
    num_layers=2,
    num_heads=2,
    num_kv_heads=1,
    head_dim=16,
    expert_ffn_size=16,
)
TINY_DENSE = ModelSpec(
    preset="tiny-dense",
    vocab_size=64,
    hidden_size=32,
    num_layers=2,
    num_heads=2,
    num_kv_heads=1,
    head_dim=16,
    ffn_size=32,
)
