"""rsrl's MoE on the in-process vLLM engine: the expert bias reaches vLLM's routers (at load and
on every weight reload, no tensor skipped), and the experts vLLM records per token
(`Completion.routed_experts`, what routing replay hands the trainer) are the ones the
transformers model chooses for the same tokens.

One engine per router balance (aux_loss, bias), shared by the tests: each start costs ~20 s.
"""

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer

from rsrl.models.build import build_model, load_pretrained
from rsrl.models.config import ModelSpec
from rsrl.models.moe import BIAS, BiasedQwen3MoeForCausalLM, install_routers, routers
from rsrl.models.tokenizer import special_token_ids
from rsrl.rl.loop import weight_stream
from rsrl.rl.rollout.contract import checkpoint_state_dict
from rsrl.rl.rollout.fingerprint import fingerprint
from rsrl.rl.rollout.vllm_engine import VllmEngine
from tests.rl.test_rollout import LOGPROB_TOLERANCE, PROMPTS, VOCAB, tokenizer_dir

__all__ = ["tokenizer_dir"]  # fixture, shared with test_rollout

LAYERS, EXPERTS, K = 4, 8, 2  # tiny-moe
SAMPLING = dict(n=4, temperature=1.0, top_p=1.0, max_new_tokens=12, seed=0)


class Moe:
    """A tiny MoE exported as HF (nonzero random expert biases under bias) and its engine."""

    def __init__(self, balance: str, directory, tokenizer_dir):
        ids = special_token_ids(AutoTokenizer.from_pretrained(str(tokenizer_dir)))
        model = build_model(
            ModelSpec(preset="tiny-moe", vocab_size=VOCAB, router_balance=balance),
            rope_theta=1e4,
            max_seq_len=256,
            seed=0,
            **ids,
        )
        self.biases = []
        if balance == "bias":
            gen = torch.Generator().manual_seed(0)
            for router in routers(model):
                router.expert_bias.copy_(torch.randn(EXPERTS, generator=gen) * 0.05)
                self.biases.append(router.expert_bias.clone())
        model.save_pretrained(str(directory))
        self.dir = directory
        self.engine = VllmEngine(directory, tokenizer_dir, dtype="float32")


@pytest.fixture(scope="module")
def moe(tmp_path_factory, tokenizer_dir):
    """moe(balance): the Moe of that router balance, started on first use."""
    started: dict[str, Moe] = {}

    def get(balance: str) -> Moe:
        if balance not in started:
            started[balance] = Moe(balance, tmp_path_factory.mktemp(balance), tokenizer_dir)
        return started[balance]

    yield get
    for m in started.values():
        m.engine.shutdown()


def engine_biases(engine: VllmEngine) -> dict[int, torch.Tensor]:
    """Each layer's expert bias as vLLM's gate holds it, by layer index."""
    found = {}
    for name, module in engine._model().named_modules():
        if name.endswith("mlp.gate") and getattr(module, BIAS, None) is not None:
            found[int(name.split(".")[-3])] = getattr(module, BIAS).detach().float().cpu()
    return found


def test_the_expert_bias_survives_export_transformers_and_vllm_load(moe):
    m = moe("bias")
    assert all(b.abs().sum() > 0 for b in m.biases) and len(m.biases) == LAYERS
    hf = load_pretrained(m.dir)
    assert type(hf) is BiasedQwen3MoeForCausalLM
    assert all(torch.equal(r.expert_bias, b) for r, b in zip(routers(hf), m.biases))
    on_engine = engine_biases(m.engine)
    assert sorted(on_engine) == list(range(LAYERS))
    for layer, bias in enumerate(m.biases):
        assert torch.equal(on_engine[layer], bias), layer


def compare(engine: VllmEngine, hf, results) -> tuple[int, int, float]:
    """(rows where they differ, rows, max log-prob difference): the experts vLLM recorded for
    each fed token and layer against the transformers model's own choice (as sets) for the
    same tokens, and the sampled tokens' log-probabilities of both."""
    layers = install_routers(hf, with_bias=False)  # the biased model has its own already
    assert len(layers) == LAYERS
    differ = rows = 0
    logprob_gap = 0.0
    for prompt, group in zip(PROMPTS, results):
        prompt_ids = engine.tokenizer(prompt)["input_ids"]
        for c in group:
            fed = prompt_ids + c.token_ids[:-1]  # the last token is never fed back
            assert c.routed_experts is not None
            assert c.routed_experts.shape == (len(fed), LAYERS, K)
            with torch.no_grad():
                logits = hf(torch.tensor([fed])).logits[0, len(prompt_ids) - 1 :]
            own = torch.stack([r.chosen for r in layers], dim=1).sort(-1).values.numpy()
            differ += int((own != np.sort(c.routed_experts, axis=-1)).any(-1).sum())
            rows += len(fed) * LAYERS
            logprobs = logits.log_softmax(-1).gather(1, torch.tensor(c.token_ids)[:, None])[:, 0]
            gap = (logprobs - torch.tensor(c.logprobs)).abs().max()
            logprob_gap = max(logprob_gap, float(gap))
    return differ, rows, logprob_gap


def test_a_weight_reload_carries_the_biases_into_vllm(moe):
    """A state dict's, and the RL trainer's weight stream's, into the gates vLLM's routers
    read: its routing follows the new biases."""
    m = moe("bias")
    original = checkpoint_state_dict(m.dir)
    names = [f"model.layers.{i}.mlp.gate.{BIAS}" for i in range(LAYERS)]
    assert set(names) <= set(original)
    gen = torch.Generator().manual_seed(1)
    changed = {
        name: (t + torch.randn(t.shape, generator=gen) * 0.2 if name in names else t)
        for name, t in original.items()
    }
    consumed = m.engine.load_weights(changed)
    assert set(consumed) == set(changed)  # every tensor, the 4 biases included
    assert sum(name.endswith(BIAS) for name in consumed) == LAYERS
    assert all(consumed[name] == fingerprint(changed[name]) for name in names)
    on_engine = engine_biases(m.engine)
    for layer, name in enumerate(names):
        assert not torch.equal(changed[name], original[name])
        assert torch.equal(on_engine[layer], changed[name]), layer

    results = m.engine.generate(PROMPTS, **{**SAMPLING, "n": 1})
    stale = load_pretrained(m.dir).eval()
    fresh = load_pretrained(m.dir).eval()
    fresh.load_state_dict(changed)
    assert all(torch.equal(r.expert_bias, changed[n]) for r, n in zip(routers(fresh), names))
    differ, _, logprob_gap = compare(m.engine, fresh, results)
    assert differ == 0 and logprob_gap < LOGPROB_TOLERANCE
    assert compare(m.engine, stale, results)[0] > 0  # the change shows

    # Back to the export (for the other tests) as the RL trainer sends weights: its stream
    # carries the biases, buffers as they are, beside the parameters.
    stream = weight_stream(stale, 2**20)
    consumed = m.engine.load_weights((n, t) for bucket in stream.buckets for n, t in bucket.items())
    assert set(consumed) == set(original)
    assert all(consumed[name] == fingerprint(original[name]) for name in names)
    on_engine = engine_biases(m.engine)
    assert all(torch.equal(on_engine[i], b) for i, b in enumerate(m.biases))


@pytest.mark.parametrize("balance", ["aux_loss", "bias"])
def test_vllms_recorded_routing_is_the_transformers_models_choice(moe, balance):
    m = moe(balance)
    results = m.engine.generate(PROMPTS, **SAMPLING)
    assert [len(group) for group in results] == [SAMPLING["n"]] * len(PROMPTS)
    hf = load_pretrained(m.dir).eval()
    assert all(
        (r.expert_bias is not None) == (balance == "bias") for r in install_routers(hf, False)
    )
    differ, rows, logprob_gap = compare(m.engine, hf, results)
    assert rows > 0 and differ == 0, f"{differ} of {rows} (token, layer) choices differ"
    # The gate weights too: the unbiased probabilities of the chosen experts, renormalised.
    assert logprob_gap < LOGPROB_TOLERANCE
