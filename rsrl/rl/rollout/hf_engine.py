"""The transformers rollout engine: `model.generate` on the HF model, the fallback to vLLM.

Same contract as the vLLM engine (see contract.py): prompts tokenised by the HF tokenizer,
EOS stops a completion and is kept, log-probabilities are raw (temperature 1, before
top-p), taken from `output_logits`, which are the model's unprocessed logits.

All prompts of a call go through one left-padded `generate`; the attention mask gives each
row its own positions, so a padded prompt scores as it would alone. Sampling draws from
one torch generator seeded with `seed`, so samples depend on the whole batch, unlike
vLLM's per-prompt seeds. Top-k is off (vLLM's default), not transformers' default of 50.
"""

from __future__ import annotations

from pathlib import Path

import torch

from rsrl.rl.rollout.contract import (
    Completion,
    Weights,
    finish_reason,
    load_rollout_tokenizer,
    required_names,
    weight_pairs,
)
from rsrl.rl.rollout.fingerprint import Fingerprint, WeightSyncError, fingerprint


class HFEngine:
    def __init__(
        self,
        model_dir: str | Path,
        tokenizer_dir: str | Path,
        *,
        dtype: str = "float32",
        device: str | None = None,
    ):
        from rsrl.models.build import load_pretrained

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.tokenizer = load_rollout_tokenizer(tokenizer_dir)
        self.model = (
            load_pretrained(model_dir, dtype=getattr(torch, dtype))
            .to(self.device)  # type: ignore[arg-type]  # transformers' decorated .to() stub
            .eval()
        )
        self.expected_names = required_names(self.model)

    @torch.no_grad()
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
        batch = self.tokenizer(prompts, padding=True, padding_side="left", return_tensors="pt").to(
            self.device
        )
        # Each prompt n times in a row (not num_return_sequences, which greedy refuses).
        batch = {key: value.repeat_interleave(n, dim=0) for key, value in batch.items()}
        eos = self.tokenizer.eos_token_id
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else eos
        sampling = (
            dict(do_sample=True, temperature=temperature, top_p=top_p, top_k=0)
            if temperature > 0
            else dict(do_sample=False)
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            out = self.model.generate(
                **batch,
                **sampling,
                max_new_tokens=max_new_tokens,
                eos_token_id=eos,
                pad_token_id=pad,
                output_logits=True,
                return_dict_in_generate=True,
            )
        sampled = out.sequences[:, batch["input_ids"].shape[1] :]
        logprobs = _sampled_logprobs(out.logits, sampled)
        rows = [
            self._completion(row // n, sampled[row], logprobs[row])
            for row in range(sampled.shape[0])
        ]  # rows are prompt-major, n per prompt
        return [rows[i * n : (i + 1) * n] for i in range(len(prompts))]

    def _completion(
        self, prompt_index: int, tokens: torch.Tensor, logprobs: torch.Tensor
    ) -> Completion:
        eos = self.tokenizer.eos_token_id
        hits = (tokens == eos).nonzero()
        length = int(hits[0]) + 1 if len(hits) else len(tokens)  # drop padding after EOS
        token_ids = tokens[:length].tolist()
        return Completion(
            prompt_index,
            token_ids,
            self.tokenizer.decode(token_ids, skip_special_tokens=True),
            logprobs[:length].tolist(),
            finish_reason(token_ids, eos),
        )

    @torch.no_grad()
    def load_weights(self, weights: Weights) -> dict[str, Fingerprint]:
        """Each tensor copied into the model as it arrives. The fingerprints are of the
        tensors received, once the model is seen to hold each (rounded to its dtype: a
        bf16 engine cannot hold the fp32 trainer's values, so its own would never match)."""
        held = self.model.state_dict()  # views of the parameters
        received = {}
        for name, tensor in weight_pairs(weights, self.expected_names):
            if name not in held:
                raise ValueError(f"'{name}' is not a weight of this model")
            held[name].copy_(tensor)
            if not torch.equal(held[name], tensor.to(held[name].device, held[name].dtype)):
                raise WeightSyncError(f"the transformers engine did not take '{name}'")
            received[name] = fingerprint(tensor)
        return received

    def shutdown(self) -> None:
        self.model = None


def _sampled_logprobs(step_logits: tuple[torch.Tensor, ...], sampled: torch.Tensor) -> torch.Tensor:
    """[rows, steps] raw log-probabilities of the sampled tokens, one vocabulary row at a
    time (never the whole [rows, steps, vocab] tensor)."""
    columns = [
        torch.log_softmax(logits.float(), dim=-1).gather(1, sampled[:, t, None])[:, 0]
        for t, logits in enumerate(step_logits)
    ]
    return torch.stack(columns, dim=1).cpu()
