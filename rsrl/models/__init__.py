"""Models: Hugging Face Qwen3 / Qwen3-MoE built from the spec, presets, parameter counts."""
