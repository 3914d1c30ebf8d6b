"""vLLM's side of rsrl's biased MoE (`rsrl.models.moe`): vLLM's own Qwen3-MoE, whose fused-MoE
layers choose their experts with the expert bias as the trainer does.

vLLM's routers already implement a correction bias used for the choice only, with the
weights from the unbiased scores ("noaux_tc"); they apply it to softmax scores through the
grouped top-k path, which with one group of all experts is the plain top-k. Each layer's
bias is a parameter of its gate, so the checkpoint's `model.layers.N.mlp.gate.
e_score_correction_bias` loads into it; vLLM's stock Qwen3-MoE would skip those tensors
without a word (its loader ignores unexpected `_bias` names).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn
from vllm.model_executor.models import qwen3_moe

from rsrl.models.moe import BIAS


class BiasedQwen3MoeForCausalLM(qwen3_moe.Qwen3MoeForCausalLM):
    def __init__(self, *, vllm_config, prefix: str = ""):
        with _biased_routers():
            super().__init__(vllm_config=vllm_config, prefix=prefix)


@contextmanager
def _biased_routers() -> Iterator[None]:
    """While the model is built, each fused-MoE layer gets an fp32 bias on its gate."""
    plain = qwen3_moe.FusedMoEFactory

    def biased(**kwargs):  # Qwen3-MoE's block passes every argument by name
        bias = torch.zeros(kwargs["num_experts"], dtype=torch.float32)
        setattr(kwargs["gate"], BIAS, nn.Parameter(bias, requires_grad=False))
        one_group = dict(use_grouped_topk=True, num_expert_group=1, topk_group=1)
        return plain(**kwargs, **one_group, e_score_correction_bias=getattr(kwargs["gate"], BIAS))

    qwen3_moe.FusedMoEFactory = biased  # type: ignore[assignment]
    try:
        yield
    finally:
        qwen3_moe.FusedMoEFactory = plain
