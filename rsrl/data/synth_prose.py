"""Open-ended prose with natural entropy: the part of the toy world where the paper's
top-k terms have something to act on.

A closed set of templates is memorised by a 1M-parameter model (held-out perplexity ~2.5,
almost no mass outside the top-k), so reshaping the reward of tail tokens changes nothing.
This generator keeps the regime of web text instead of its size:

- a long-tailed lexicon: thousands of invented words per part of speech, drawn with Zipf
  frequencies, so a few words are frequent and most are rare (the tail);
- genuine uncertainty at decision points: a small stochastic grammar (optional adjectives,
  prepositional phrases, objects, adverbs, clause conjunctions), so the next word after
  "the" or "with the" is really open, while function words and word endings stay easy;
- topics: each paragraph favours its own handful of words, so context helps (as in real
  text) without making any word certain;
- no two paragraphs alike: the combinatorics make a repeat vanishingly rare, and the
  corpora drop the few exact repeats anyway (`synth._text_corpus`).

The lexicon is a pure function of the seed, shared by every corpus of that seed.
"""

from __future__ import annotations

import functools
import itertools
import random
from dataclasses import dataclass

ONSETS = tuple("bdfghklmnprstvwz") + (
    "",
    "br",
    "dr",
    "gl",
    "kr",
    "pl",
    "st",
    "tr",
    "sh",
    "th",
    "ch",
)
VOWELS = ("a", "e", "i", "o", "u", "ai", "ou", "ea")
CODAS = ("", "", "", "n", "r", "l", "s", "m", "nd", "st")

DETERMINERS = ("the", "the", "the", "a", "this", "that", "every", "some", "no", "one")
PREPOSITIONS = tuple(
    "in on near under beyond with without across through behind beside toward from over".split()
)
CONJUNCTIONS = ("and", "but", "because", "while", "so", "although", "until", "when")
SPEAKERS = ("Mia", "Leo", "Ava", "Noah", "Ella", "Sam", "Ivy", "Omar", "the elder", "a child")

ZIPF_EXPONENT = 1.1
TOPIC_SHARE = 0.5  # chance that a content word comes from the paragraph's topic


@dataclass(frozen=True)
class WordList:
    """Words of one part of speech with Zipf weights (cumulative, for random.choices)."""

    words: tuple[str, ...]
    cum_weights: tuple[float, ...]

    def draw(self, rng: random.Random) -> str:
        return rng.choices(self.words, cum_weights=self.cum_weights)[0]


@dataclass(frozen=True)
class Lexicon:
    nouns: WordList
    verbs: WordList
    adjectives: WordList
    adverbs: WordList


@dataclass(frozen=True)
class Topic:
    """The few words one paragraph keeps coming back to."""

    nouns: tuple[str, ...]
    verbs: tuple[str, ...]
    adjectives: tuple[str, ...]


def _syllable(rng: random.Random) -> str:
    return rng.choice(ONSETS) + rng.choice(VOWELS) + rng.choice(CODAS)


def _word_list(rng: random.Random, size: int, suffix: str, taken: set[str]) -> WordList:
    words: list[str] = []
    while len(words) < size:
        word = "".join(_syllable(rng) for _ in range(rng.choice((1, 2, 2, 3)))) + suffix
        if word not in taken and len(word) > 2:
            taken.add(word)
            words.append(word)
    weights = (1.0 / (rank**ZIPF_EXPONENT) for rank in range(1, size + 1))
    return WordList(tuple(words), tuple(itertools.accumulate(weights)))


@functools.lru_cache(maxsize=4)
def make_lexicon(seed: int) -> Lexicon:
    rng, taken = random.Random(f"lexicon:{seed}"), set[str]()
    return Lexicon(
        nouns=_word_list(rng, 3000, "", taken),
        verbs=_word_list(rng, 1200, "", taken),
        adjectives=_word_list(rng, 1000, "ic", taken),
        adverbs=_word_list(rng, 200, "ly", taken),
    )


def _topic(rng: random.Random, lexicon: Lexicon) -> Topic:
    return Topic(
        nouns=tuple(lexicon.nouns.draw(rng) for _ in range(6)),
        verbs=tuple(lexicon.verbs.draw(rng) for _ in range(4)),
        adjectives=tuple(lexicon.adjectives.draw(rng) for _ in range(3)),
    )


def _content(rng: random.Random, words: WordList, topical: tuple[str, ...]) -> str:
    return rng.choice(topical) if rng.random() < TOPIC_SHARE else words.draw(rng)


def _noun_phrase(rng: random.Random, lexicon: Lexicon, topic: Topic, nested: bool) -> str:
    words = [rng.choice(DETERMINERS)]
    for _ in range(rng.choices((0, 1, 2), weights=(5, 4, 1))[0]):
        words.append(_content(rng, lexicon.adjectives, topic.adjectives))
    words.append(_content(rng, lexicon.nouns, topic.nouns))
    if rng.random() < 0.2 and not nested:
        words.append(_prepositional(rng, lexicon, topic))
    return " ".join(words)


def _prepositional(rng: random.Random, lexicon: Lexicon, topic: Topic) -> str:
    return f"{rng.choice(PREPOSITIONS)} {_noun_phrase(rng, lexicon, topic, nested=True)}"


def _verb_phrase(rng: random.Random, lexicon: Lexicon, topic: Topic, tense: str) -> str:
    words = [_content(rng, lexicon.verbs, topic.verbs) + tense]
    if rng.random() < 0.7:
        words.append(_noun_phrase(rng, lexicon, topic, nested=False))
    if rng.random() < 0.3:
        words.append(_prepositional(rng, lexicon, topic))
    if rng.random() < 0.2:
        words.append(lexicon.adverbs.draw(rng))
    return " ".join(words)


def _clause(rng: random.Random, lexicon: Lexicon, topic: Topic, tense: str) -> str:
    subject = _noun_phrase(rng, lexicon, topic, nested=False)
    return f"{subject} {_verb_phrase(rng, lexicon, topic, tense)}"


def _sentence(rng: random.Random, lexicon: Lexicon, topic: Topic, tense: str) -> str:
    text = _clause(rng, lexicon, topic, tense)
    if rng.random() < 0.3:
        text += f", {rng.choice(CONJUNCTIONS)} {_clause(rng, lexicon, topic, tense)}"
    if rng.random() < 0.1:
        text = f"{rng.choice(SPEAKERS)} said that {text}"
    return text[0].upper() + text[1:] + "."


def prose_paragraph(rng: random.Random, lexicon: Lexicon) -> str:
    """3 to 7 sentences about one topic, in one tense."""
    topic, tense = _topic(rng, lexicon), rng.choice(("s", "ed"))
    return " ".join(_sentence(rng, lexicon, topic, tense) for _ in range(rng.randint(3, 7)))
