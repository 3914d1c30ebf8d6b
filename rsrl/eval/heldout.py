"""Perplexity and the entropy diagnostics of a checkpoint on held-out text.

The numbers are those the training stages log (`rsrl.objective.LossStats`): NLL (and so
perplexity), global entropy of pi, local entropy of pi renormalised on the top-k set K_t,
top-k mass, tail mass, and p_target. Every checkpoint of a run is scored on the same
token rows with the same k, so the values can be compared stage by stage.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import torch

from rsrl.data.config import HeldoutSpec
from rsrl.data.encode import DocumentEncoder
from rsrl.data.prompts import read_heldout_texts
from rsrl.objective.stat_names import STAT_NAMES

MAX_CONTEXT = 1024  # longest row scored; the rows are shared by every checkpoint
LOGITS_BUDGET = 2**27  # float32 logits elements per forward pass (512 MiB)
ENCODE_BATCH = 64  # documents handed to the tokenizer at a time


def context_length(model_dirs: list[Path]) -> int:
    """The longest row every checkpoint was trained to see (capped at MAX_CONTEXT)."""
    lengths = [
        json.loads((d / "config.json").read_text())["max_position_embeddings"] for d in model_dirs
    ]
    return min([MAX_CONTEXT, *lengths])


def heldout_rows(heldout: HeldoutSpec, tokenizer_stage_dir: Path, seq_len: int) -> torch.Tensor:
    """[rows, seq_len] token ids: the first `heldout.tokens` tokens of the held-out text,
    documents each followed by EOS and packed as in training. Fewer when the text is short."""
    ids = torch.from_numpy(_first_tokens(heldout, tokenizer_stage_dir)).long()
    if len(ids) < 2:
        raise ValueError(f"heldout_text '{heldout.path}' has fewer than 2 tokens to score")
    seq_len = min(seq_len, len(ids))
    return ids[: len(ids) // seq_len * seq_len].view(-1, seq_len)


def _first_tokens(heldout: HeldoutSpec, tokenizer_stage_dir: Path) -> np.ndarray:
    """Encodes documents a batch at a time until `heldout.tokens` are there."""
    encoder = DocumentEncoder.from_stage_dir(tokenizer_stage_dir)
    texts = iter(read_heldout_texts(heldout))
    chunks: list[np.ndarray] = []
    while sum(map(len, chunks)) < heldout.tokens:
        batch = list(itertools.islice(texts, ENCODE_BATCH))
        if not batch:
            break
        chunks.append(encoder.encode(batch))
    return np.concatenate(chunks)[: heldout.tokens] if chunks else np.zeros(0, dtype=np.int64)


@torch.no_grad()
def score_checkpoint(
    model_dir: Path, rows: torch.Tensor, k: int, device: str | None = None
) -> dict[str, float]:
    """Token-weighted means of STAT_NAMES over `rows`, plus perplexity, tokens and k."""
    from rsrl.models.build import load_pretrained
    from rsrl.objective.loss import reward_shaped_loss

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = load_pretrained(model_dir)
    model.to(device).eval()  # type: ignore[arg-type]  # transformers' decorated .to() stub
    vocab = model.config.vocab_size
    rows_per_pass = max(1, LOGITS_BUDGET // (rows.shape[1] * vocab))
    totals = dict.fromkeys(STAT_NAMES, 0.0)
    tokens = 0
    for batch in rows.split(rows_per_pass):
        batch = batch.to(device)
        logits = model(input_ids=batch[:, :-1]).logits
        # Plain cross-entropy settings: only the stats are wanted, and they ignore shaping.
        _, stats = reward_shaped_loss(logits, batch[:, 1:], k=k, return_stats=True)
        n = batch[:, 1:].numel()
        for name in STAT_NAMES:
            totals[name] += float(stats[name]) * n
        tokens += n
    means: dict[str, float] = {name: total / tokens for name, total in totals.items()}
    return {**means, "perplexity": math.exp(means["nll"]), "tokens": tokens, "k": k}
