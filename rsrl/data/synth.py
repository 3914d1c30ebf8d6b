"""Built-in synthetic corpora, addressed in specs as synth://NAME; no downloads.

| name       | records | fields                                              | for                 |
|------------|---------|-----------------------------------------------------|---------------------|
| pretrain   | 48000   | text                                                | pre-training        |
| midtrain   | 14000   | text                                                | mid-training        |
| rl-arith   | 2000    | prompt, answer, solution, difficulty (1-5), task    | GRPO prompts        |
| eval-arith | 250     | prompt, answer, solution, difficulty (1-5), task    | eval suites         |
| heldout    | 600     | text                                                | perplexity, entropy |

pretrain mixes open-ended prose over a long-tailed invented lexicon (`synth_prose`: the
uncertainty the paper's top-k terms act on), facts about an invented world, short stories,
equation drills and worked solutions; midtrain is mostly worked step-by-step solutions.
No corpus repeats a document. Worked solutions use the
prompt format of `rsrl.data.prompt_format`, and the prompts of rl-arith / eval-arith ask
for 'Answer: N', which the `math` verifier extracts. eval-arith shares no question with any
other corpus (a hash split, see `synth_arith`). heldout is drawn like pretrain from another
random stream and shares no document with pretrain or midtrain (`heldout_overlap` measures
what it still shares: word n-grams).

Every corpus is a pure function of (name, seed): `rsrl data synth --out DIR` writes exactly
the records that synth://NAME yields (specs use seed SYNTH_SEED), one JSON object a line.
"""

from __future__ import annotations

import functools
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rsrl.data import synth_arith, synth_prose, synth_text

SYNTH_SEED = 0


def _rng(name: str, seed: int) -> random.Random:
    return random.Random(f"{name}:{seed}")  # str seeds hash the same on every run


@dataclass(frozen=True)
class _World:
    facts: synth_text.World
    lexicon: synth_prose.Lexicon


def _document(rng: random.Random, world: _World, worked_share: float) -> str:
    roll = rng.random()
    if roll < worked_share:
        return synth_arith.random_problem(rng).worked_example()
    roll = (roll - worked_share) / (1 - worked_share)
    if roll < 0.5:
        return synth_prose.prose_paragraph(rng, world.lexicon)
    if roll < 0.7:
        return synth_text.facts_paragraph(rng, world.facts)
    if roll < 0.9:
        return synth_text.story(rng, world.facts)
    return synth_text.arithmetic_drill(rng)


def _text_corpus(
    name: str, seed: int, size: int, worked_share: float, exclude: tuple[str, ...] = ()
) -> list[dict]:
    """`size` distinct documents, none of them in the corpora named in `exclude`."""
    rng = _rng(name, seed)
    world = _World(synth_text.make_world(seed), synth_prose.make_lexicon(seed))
    seen = {r["text"] for other in exclude for r in generate(other, seed)}
    texts: list[str] = []
    while len(texts) < size:
        text = _document(rng, world, worked_share)
        if text not in seen:
            seen.add(text)
            texts.append(text)
    return [{"text": text} for text in texts]


def _prompt_corpus(name: str, seed: int, per_level: int, eval_split: bool) -> list[dict]:
    problems = synth_arith.unique_problems(_rng(name, seed), per_level, eval_split)
    return [p.record() for p in problems]


@dataclass(frozen=True)
class Corpus:
    name: str
    fields: tuple[str, ...]
    description: str
    make: Callable[[int], list[dict]]  # seed -> records


_TEXT = ("text",)
_PROMPTS = ("prompt", "answer", "solution", "difficulty", "task")
CORPORA: dict[str, Corpus] = {
    c.name: c
    for c in (
        Corpus(
            "pretrain",
            _TEXT,
            "facts, stories, equation drills and worked solutions",
            lambda seed: _text_corpus("pretrain", seed, 48000, worked_share=0.25),
        ),
        Corpus(
            "midtrain",
            _TEXT,
            "mostly worked step-by-step solutions",
            lambda seed: _text_corpus("midtrain", seed, 14000, worked_share=0.75),
        ),
        Corpus(
            "rl-arith",
            _PROMPTS,
            "prompts with verifiable answers, difficulty 1-5",
            lambda seed: _prompt_corpus("rl-arith", seed, 400, eval_split=False),
        ),
        Corpus(
            "eval-arith",
            _PROMPTS,
            "held-out prompts, disjoint from every other corpus",
            lambda seed: _prompt_corpus("eval-arith", seed, 50, eval_split=True),
        ),
        Corpus(
            "heldout",
            _TEXT,
            "held-out text like pretrain, for perplexity and entropy",
            lambda seed: _text_corpus(
                "heldout", seed, 600, worked_share=0.25, exclude=("pretrain", "midtrain")
            ),
        ),
    )
}
CORPUS_NAMES = tuple(CORPORA)


@functools.lru_cache(maxsize=8)
def generate(name: str, seed: int = SYNTH_SEED) -> tuple[dict, ...]:
    """The records of corpus `name`. Cached per process: treat them as read-only."""
    if name not in CORPORA:
        raise KeyError(f"unknown built-in corpus '{name}'; available: {', '.join(CORPUS_NAMES)}")
    return tuple(CORPORA[name].make(seed))


def write_corpora(
    out_dir: str | Path, seed: int = SYNTH_SEED, names: tuple[str, ...] = CORPUS_NAMES
) -> list[Path]:
    """Write each corpus to `out_dir/NAME.jsonl`; returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in names:
        path = out / f"{name}.jsonl"
        with path.open("w", encoding="utf-8") as f:
            for record in generate(name, seed):
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
        paths.append(path)
    return paths
