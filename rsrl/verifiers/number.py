"""Numeric final answers: the answer a completion commits to (found as `math` finds it) is a
plain number or integer fraction equal to the reference. No symbolic equivalence, so no
math-verify: microseconds a sample, for tasks whose answers are numbers (GSM8K-style,
synth-arith's counting). On a small model's garbage output `math` spends ~10 ms a sample,
and Cons@64 compares each answer with every answer group."""

from __future__ import annotations

from rsrl.verifiers.math_answer import as_number, extract_answer
from rsrl.verifiers.registry import VerifyResult


def numbers_equal(answer: str, reference: str) -> bool:
    """Whether `answer` is the same number as `reference` ("0.5" and "1/2" are)."""
    if answer.strip() == reference.strip():
        return True
    a, b = as_number(answer), as_number(reference)
    return a is not None and a == b


def verify_number(prompt: str, completion: str, answer: str, **fields) -> VerifyResult:
    got = extract_answer(completion)
    if got is None:
        return VerifyResult(0.0, "no final answer found")
    ok = numbers_equal(got, str(answer))
    return VerifyResult(float(ok), "" if ok else f"answer {got!r} != {answer!r}")
