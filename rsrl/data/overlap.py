"""How much held-out text shares with training text: verbatim documents and word n-grams.

Held-out perplexity measures generalisation only if the held-out documents were not
trained on. Exact repeats are counted per document; near-repeats by the share of the
held-out word n-grams (13 by default, the contamination measure of GPT-3's paper) that
also occur somewhere in the training documents.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

NGRAM = 13


def _ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    words = text.split()
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def heldout_overlap(
    heldout: Sequence[str], training: Iterable[str], n: int = NGRAM
) -> dict[str, float | int]:
    """{"heldout_docs", "verbatim_docs", "ngram", "ngrams", "ngram_share"}: held-out
    documents that are also training documents, and the share of held-out n-grams (distinct)
    seen in training. Streams `training` once; memory is held-out-sized."""
    wanted = set(heldout)
    grams: set[tuple[str, ...]] = set().union(*(_ngrams(t, n) for t in heldout))
    verbatim: set[str] = set()
    seen: set[tuple[str, ...]] = set()
    for text in training:
        if text in wanted:
            verbatim.add(text)
        words = text.split()
        seen.update(g for i in range(len(words) - n + 1) if (g := tuple(words[i : i + n])) in grams)
    return {
        "heldout_docs": len(wanted),
        "verbatim_docs": len(verbatim),
        "ngram": n,
        "ngrams": len(grams),
        "ngram_share": len(seen) / len(grams) if grams else 0.0,
    }
