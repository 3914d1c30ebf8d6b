"""Documents to token ids: each document is encoded without special tokens and followed by
EOS, and a batch comes back as one flat int32 array, ready to be packed."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

TOKEN_DTYPE = np.int32


@functools.lru_cache(maxsize=4)
def _rust_tokenizer(tokenizer_file: str):
    """Loaded once per process. Workers use `tokenizers` alone: importing transformers
    would cost each Ray worker seconds."""
    from tokenizers import Tokenizer

    return Tokenizer.from_file(tokenizer_file)


@dataclass(frozen=True)
class DocumentEncoder:
    """What a worker needs to encode documents: picklable, loads nothing until used."""

    tokenizer_file: str  # tokenizer.json of the tokenizer stage's HF directory
    eos_id: int
    pad_id: int | None
    vocab_size: int

    @classmethod
    def from_stage_dir(cls, tokenizer_stage_dir: str | Path) -> DocumentEncoder:
        from rsrl.models.tokenizer import load_tokenizer, tokenizer_dir

        tokenizer = load_tokenizer(tokenizer_stage_dir)
        return cls(
            str(tokenizer_dir(tokenizer_stage_dir) / "tokenizer.json"),
            tokenizer.eos_token_id,
            tokenizer.pad_token_id,
            len(tokenizer),
        )

    def encode(self, texts: list[str]) -> np.ndarray:
        """[doc 0 ids, EOS, doc 1 ids, EOS, ...] as one int32 array."""
        encodings = _rust_tokenizer(self.tokenizer_file).encode_batch_fast(
            texts, add_special_tokens=False
        )
        if not encodings:
            return np.zeros(0, dtype=TOKEN_DTYPE)
        return np.concatenate(
            [np.array(e.ids + [self.eos_id], dtype=TOKEN_DTYPE) for e in encodings]
        )
