"""The plain prompt format shared by the synthetic corpora, the tokenizer's chat template,
RL rollouts and eval.

A prompt is rendered as

    Question: <prompt>
    Solution:

and the model continues with " <steps> Answer: <N>" and EOS. The corpora write their worked
solutions in exactly this shape, so a model trained on them answers prompts rendered this
way in a form the `math` verifier extracts ('Answer: N').
"""

from __future__ import annotations

QUESTION_PREFIX = "Question: "
SOLUTION_PREFIX = "\nSolution:"
ANSWER_PREFIX = "Answer: "


def format_prompt(prompt: str) -> str:
    """The text a policy is given for `prompt`; its completion starts right after it."""
    return f"{QUESTION_PREFIX}{prompt}{SOLUTION_PREFIX}"


def format_worked_example(prompt: str, solution: str) -> str:
    """A prompt and its completion as one training document."""
    return f"{format_prompt(prompt)} {solution}"
