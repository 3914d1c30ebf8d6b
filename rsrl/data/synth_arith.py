"""Arithmetic problems with verifiable answers and step-by-step solutions, in five levels.

1 add/sub   "What is 14 - 6?"                                       one step
2 count     "How many times does plum appear in: fig, plum, plum?"   a running count
3 two-step  "What is 3 + 4 * 5?"                                     operator precedence
4 linear    "Solve for x: 3x + 5 = 20."                              two inverse operations
5 word      "Mia has 12 pears. She buys 3 bags of 4 pears each ..."  three steps

Each problem belongs to the train or the eval split by a stable hash of its question, so
eval-arith never shares a question with rl-arith or with the worked solutions in the
pre-/mid-training corpora, whatever the seed.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass

from rsrl.data.prompt_format import ANSWER_PREFIX, format_worked_example

ANSWER_INSTRUCTION = f"Give the final answer as '{ANSWER_PREFIX}N'."
EVAL_BUCKETS = 8  # one question in EVAL_BUCKETS goes to the eval split

NAMES = (
    "Mia",
    "Leo",
    "Ava",
    "Noah",
    "Ella",
    "Sam",
    "Ivy",
    "Omar",
    "Lina",
    "Ben",
    "Zoe",
    "Finn",
    "Nora",
    "Ravi",
    "Ada",
    "Tom",
)
PRONOUNS = {
    "Mia": "She",
    "Ava": "She",
    "Ella": "She",
    "Ivy": "She",
    "Lina": "She",
    "Zoe": "She",
    "Nora": "She",
    "Ada": "She",
}
ITEMS = (
    "apple",
    "pear",
    "plum",
    "fig",
    "lemon",
    "marble",
    "stamp",
    "shell",
    "coin",
    "book",
    "pencil",
    "card",
)


@dataclass(frozen=True)
class Problem:
    question: str
    steps: tuple[str, ...]
    answer: int
    difficulty: int
    task: str

    @property
    def prompt(self) -> str:
        return f"{self.question} {ANSWER_INSTRUCTION}"

    @property
    def solution(self) -> str:
        return " ".join(self.steps) + f" {ANSWER_PREFIX}{self.answer}"

    def worked_example(self) -> str:
        return format_worked_example(self.prompt, self.solution)

    def record(self) -> dict:
        return {
            "prompt": self.prompt,
            "answer": str(self.answer),
            "solution": self.solution,
            "difficulty": self.difficulty,
            "task": self.task,
        }


def pronoun(name: str) -> str:
    return PRONOUNS.get(name, "He")


def add_sub(rng: random.Random) -> Problem:
    a, b = rng.randint(0, 20), rng.randint(0, 20)
    if rng.random() < 0.5:
        a, b = max(a, b), min(a, b)
        r, op = a - b, "-"
    else:
        r, op = a + b, "+"
    return Problem(f"What is {a} {op} {b}?", (f"{a} {op} {b} = {r}.",), r, 1, "add-sub")


def count_items(rng: random.Random) -> Problem:
    target = rng.choice(ITEMS)
    items = [rng.choice(ITEMS) for _ in range(rng.randint(3, 7))]
    items.insert(rng.randint(0, len(items)), target)  # at least one
    steps, running = [], 0
    for item in items:
        running += item == target
        steps.append(f"{item} {running}.")
    question = f"How many times does {target} appear in: {', '.join(items)}?"
    return Problem(question, tuple(steps), running, 2, "count")


def two_step(rng: random.Random) -> Problem:
    a, b, c = rng.randint(1, 12), rng.randint(1, 12), rng.randint(1, 12)
    form = rng.randrange(3)
    if form == 0:
        steps = (f"{b} * {c} = {b * c}.", f"{a} + {b * c} = {a + b * c}.")
        return Problem(f"What is {a} + {b} * {c}?", steps, a + b * c, 3, "two-step")
    if form == 1:
        c = rng.randint(1, a * b)
        steps = (f"{a} * {b} = {a * b}.", f"{a * b} - {c} = {a * b - c}.")
        return Problem(f"What is {a} * {b} - {c}?", steps, a * b - c, 3, "two-step")
    steps = (f"{a} + {b} = {a + b}.", f"{a + b} * {c} = {(a + b) * c}.")
    return Problem(f"What is ({a} + {b}) * {c}?", steps, (a + b) * c, 3, "two-step")


def linear_equation(rng: random.Random) -> Problem:
    a, x, b = rng.randint(2, 9), rng.randint(0, 12), rng.randint(1, 20)
    if rng.random() < 0.5:
        c = a * x + b
        steps = (
            f"Subtract {b} from both sides: {a}x = {c - b}.",
            f"Divide both sides by {a}: x = {x}.",
        )
        return Problem(f"Solve for x: {a}x + {b} = {c}.", steps, x, 4, "linear")
    c = a * x - b
    steps = (f"Add {b} to both sides: {a}x = {c + b}.", f"Divide both sides by {a}: x = {x}.")
    return Problem(f"Solve for x: {a}x - {b} = {c}.", steps, x, 4, "linear")


def word_problem(rng: random.Random) -> Problem:
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    a, bags, per_bag = rng.randint(2, 30), rng.randint(2, 6), rng.randint(2, 9)
    total = a + bags * per_bag
    given = rng.randint(1, total)
    question = (
        f"{name} has {a} {item}s. {pronoun(name)} buys {bags} bags of {per_bag} "
        f"{item}s each and gives away {given}. How many {item}s does {name} have now?"
    )
    steps = (
        f"{bags} * {per_bag} = {bags * per_bag}.",
        f"{a} + {bags * per_bag} = {total}.",
        f"{total} - {given} = {total - given}.",
    )
    return Problem(question, steps, total - given, 5, "word")


LEVELS: tuple[Callable[[random.Random], Problem], ...] = (
    add_sub,
    count_items,
    two_step,
    linear_equation,
    word_problem,
)


def is_eval_question(question: str) -> bool:
    """The split a question belongs to, by a hash that no seed or Python version changes."""
    digest = hashlib.blake2b(question.encode(), digest_size=8).digest()
    return digest[0] % EVAL_BUCKETS == 0


def random_problem(rng: random.Random, eval_split: bool = False) -> Problem:
    """A problem of a random level from the requested split."""
    while True:
        problem = rng.choice(LEVELS)(rng)
        if is_eval_question(problem.question) == eval_split:
            return problem


def unique_problems(rng: random.Random, per_level: int, eval_split: bool) -> list[Problem]:
    """`per_level` distinct problems of each level, easiest first, from one split."""
    problems: list[Problem] = []
    for make in LEVELS:
        seen: set[str] = set()
        for _ in range(per_level * 200):  # level 1 has ~670 questions: stop, don't spin
            problem = make(rng)
            if problem.question not in seen and is_eval_question(problem.question) == eval_split:
                seen.add(problem.question)
                problems.append(problem)
                if len(seen) == per_level:
                    break
        else:
            raise ValueError(f"{make.__name__}: fewer than {per_level} distinct questions")
    return problems
