"""Held-out perplexity and entropy diagnostics against a direct PyTorch computation."""

import math

import pytest
import torch
import torch.nn.functional as F

from rsrl.data.config import HeldoutSpec
from rsrl.eval.heldout import context_length, heldout_rows, score_checkpoint
from tests.eval.conftest import save_tiny_model


def direct_stats(model_dir, rows: torch.Tensor, k: int) -> dict[str, float]:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float64).eval()
    with torch.no_grad():
        logits = model(input_ids=rows[:, :-1]).logits.double()
    logp = logits.log_softmax(-1)
    p = logp.exp()
    targets = rows[:, 1:]
    top = p.topk(k, dim=-1).values
    local = top / top.sum(-1, keepdim=True)
    return {
        "nll": float(F.nll_loss(logp.flatten(0, 1), targets.flatten())),
        "entropy": float(-(p * logp).sum(-1).mean()),
        "local_entropy": float(-(local * local.log()).sum(-1).mean()),
        "topk_mass": float(top.sum(-1).mean()),
        "tail_mass": float(1 - top.sum(-1).mean()),
        "p_target": float(p.gather(-1, targets[..., None]).mean()),
    }


def test_heldout_rows_take_the_first_tokens(tokenizer_stage):
    rows = heldout_rows(HeldoutSpec(path="synth://heldout", tokens=1000), tokenizer_stage, 64)
    assert rows.shape == (1000 // 64, 64)
    assert rows.dtype == torch.long
    more = heldout_rows(HeldoutSpec(path="synth://heldout", tokens=2000), tokenizer_stage, 64)
    assert torch.equal(more[: len(rows)], rows)  # a prefix of the same stream


def test_scores_match_a_direct_computation(tokenizer_stage, tmp_path):
    model_dir = save_tiny_model(tmp_path / "hf", tokenizer_stage, seed=1)
    seq_len = context_length([model_dir])
    assert seq_len == 128
    rows = heldout_rows(HeldoutSpec(path="synth://heldout", tokens=600), tokenizer_stage, seq_len)
    got = score_checkpoint(model_dir, rows, k=5, device="cpu")
    want = direct_stats(model_dir, rows, k=5)
    for name, value in want.items():
        assert got[name] == pytest.approx(value, rel=1e-4, abs=1e-5), name
    assert got["perplexity"] == pytest.approx(math.exp(want["nll"]), rel=1e-4)
    assert got["tokens"] == rows[:, 1:].numel() and got["k"] == 5
    # An untrained model is close to uniform over the 512 tokens.
    assert got["entropy"] == pytest.approx(math.log(512), rel=0.05)
