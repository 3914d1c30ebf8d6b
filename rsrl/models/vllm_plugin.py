"""rsrl's vLLM plugin (entry point `vllm.general_plugins`): vLLM loads it in every process it
starts, so engines on a cluster know rsrl's architectures as the in-process engine does."""

from __future__ import annotations


def register() -> None:
    from vllm import ModelRegistry

    from rsrl.models import moe

    moe.register()  # transformers' config class: vLLM reads the HF config through it
    name = moe.BiasedQwen3MoeForCausalLM.__name__
    if name not in ModelRegistry.get_supported_archs():
        ModelRegistry.register_model(name, f"rsrl.models.vllm_moe:{name}")
