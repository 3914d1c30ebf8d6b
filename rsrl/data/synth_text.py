"""Natural-language text for the synthetic corpora: facts about a small invented world and
short stories whose numbers add up.

The world (countries, capitals, rivers, exports, animals) is drawn once from the seed, so
every fact is consistent across documents and a model can learn it; stories reuse
names and items from `synth_arith` so that counting and arithmetic appear in prose too.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from rsrl.data.synth_arith import ITEMS, NAMES, pronoun

SYLLABLES = (
    "ka",
    "lo",
    "mi",
    "ra",
    "ten",
    "vo",
    "sa",
    "dun",
    "el",
    "ta",
    "ri",
    "mon",
    "ba",
    "zu",
    "fen",
    "or",
    "li",
    "gar",
    "po",
    "qui",
)
EXPORTS = ("copper", "wool", "tea", "salt", "timber", "glass", "rice", "silk", "iron", "honey")
COLORS = ("red", "blue", "green", "grey", "brown", "white", "black", "golden")
FOODS = ("seeds", "fish", "leaves", "berries", "insects", "grass", "roots")
HABITATS = ("forest", "river", "desert", "mountains", "marsh", "meadow")
PLACES = ("market", "park", "library", "harbour", "school", "garden", "station")


@dataclass(frozen=True)
class Country:
    name: str
    capital: str
    river: str
    export: str
    population: int  # millions


@dataclass(frozen=True)
class Animal:
    name: str
    color: str
    food: str
    habitat: str
    legs: int


@dataclass(frozen=True)
class World:
    countries: tuple[Country, ...]
    animals: tuple[Animal, ...]


def invented_word(rng: random.Random, syllables: int) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(syllables)).capitalize()


def make_world(seed: int, countries: int = 40, animals: int = 30) -> World:
    rng = random.Random(f"world:{seed}")
    return World(
        countries=tuple(
            Country(
                invented_word(rng, 3),
                invented_word(rng, 2),
                invented_word(rng, 2),
                rng.choice(EXPORTS),
                rng.randint(1, 90),
            )
            for _ in range(countries)
        ),
        animals=tuple(
            Animal(
                invented_word(rng, 2).lower(),
                rng.choice(COLORS),
                rng.choice(FOODS),
                rng.choice(HABITATS),
                rng.choice((2, 4, 6, 8)),
            )
            for _ in range(animals)
        ),
    )


def country_facts(c: Country) -> list[str]:
    return [
        f"The capital of {c.name} is {c.capital}.",
        f"The river {c.river} flows through {c.name}.",
        f"{c.name} exports {c.export}.",
        f"About {c.population} million people live in {c.name}.",
        f"{c.capital} is the largest city of {c.name}.",
    ]


def animal_facts(a: Animal) -> list[str]:
    return [
        f"The {a.name} is a {a.color} animal that eats {a.food}.",
        f"The {a.name} lives in the {a.habitat}.",
        f"A {a.name} has {a.legs} legs.",
    ]


def facts_paragraph(rng: random.Random, world: World) -> str:
    """3 to 6 facts about one country or one animal of the world."""
    if rng.random() < 0.6:
        facts = country_facts(rng.choice(world.countries))
    else:
        facts = animal_facts(rng.choice(world.animals))
    return " ".join(rng.sample(facts, k=min(len(facts), rng.randint(3, 6))))


def counting_story(rng: random.Random) -> str:
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    he = pronoun(name)
    a, b, c = rng.randint(1, 20), rng.randint(1, 10), rng.randint(0, 5)
    c = min(c, a + b)
    return (
        f"{name} had {a} {item}s. {he} found {b} more, so {he.lower()} had {a + b}. "
        f"Later {he.lower()} gave {c} to a friend. Now {name} has {a + b - c} {item}s."
    )


def walk_story(rng: random.Random, world: World) -> str:
    name, friend = rng.sample(NAMES, 2)
    animal, place = rng.choice(world.animals), rng.choice(PLACES)
    n = rng.randint(2, 9)
    return (
        f"{name} walked to the {place} with {friend}. On the way they saw {n} "
        f"{animal.color} {animal.name}s. {friend} said that the {animal.name} eats "
        f"{animal.food}. They counted {n} of them, then went home."
    )


def story(rng: random.Random, world: World) -> str:
    return counting_story(rng) if rng.random() < 0.5 else walk_story(rng, world)


def arithmetic_drill(rng: random.Random) -> str:
    """Lines of true equations, e.g. '7 + 5 = 12.'"""
    lines = []
    for _ in range(rng.randint(4, 8)):
        a, b = rng.randint(0, 30), rng.randint(0, 12)
        op = rng.choice("+-*")
        value = {"+": a + b, "-": a - b, "*": a * b}[op]
        lines.append(f"{a} {op} {b} = {value}.")
    return "\n".join(lines)
