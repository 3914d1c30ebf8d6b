"""Built-in synthetic corpora, addressed in specs as synth://NAME."""

from __future__ import annotations

CORPUS_NAMES = ("pretrain", "midtrain", "rl-arith", "eval-arith", "heldout")
