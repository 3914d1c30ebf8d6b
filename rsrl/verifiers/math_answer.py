"""Math final answers: take the answer from \\boxed{...}, 'Answer:' or the last number, then
compare as integers, decimals, fractions, or (last resort) sympy-equivalent expressions."""

from __future__ import annotations

import re
from fractions import Fraction

from rsrl.verifiers.registry import VerifyResult

_NUMBER = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?(?:/\d+)?")
_ANSWER_LINE = re.compile(r"answer\s*(?:is)?\s*[:=]?\s*(.+)", re.IGNORECASE)
# sympify evaluates Python: only plain algebra goes near it, never arbitrary model output.
_ALGEBRA = re.compile(r"[0-9a-z+\-*/^(). ]{1,64}", re.IGNORECASE)


def extract_answer(completion: str) -> str | None:
    """The final answer a completion commits to, or None when it gives none."""
    boxed = _last_boxed(completion)
    if boxed is not None:
        return boxed.strip()
    lines = _ANSWER_LINE.findall(completion)
    if lines:
        return lines[-1].strip().rstrip(".").strip()
    numbers = _NUMBER.findall(completion)
    return numbers[-1] if numbers else None


def _last_boxed(text: str) -> str | None:
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth, i = 1, start + len("\\boxed{")
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i:j]
    return None


def _as_fraction(text: str) -> Fraction | None:
    text = text.replace(",", "").replace(" ", "").rstrip(".")
    try:
        return Fraction(text)
    except (ValueError, ZeroDivisionError):
        return None


def answers_equal(a: str, b: str) -> bool:
    if a.strip() == b.strip():
        return True
    fa, fb = _as_fraction(a), _as_fraction(b)
    if fa is not None and fb is not None:
        return fa == fb
    return _sympy_equal(a, b)


def _sympy_equal(a: str, b: str) -> bool:
    import sympy

    if not (_ALGEBRA.fullmatch(a) and _ALGEBRA.fullmatch(b)):
        return False
    try:
        diff = sympy.simplify(sympy.sympify(a) - sympy.sympify(b))
    except (sympy.SympifyError, TypeError, ValueError, SyntaxError, AttributeError):
        return False
    return diff == 0


def verify_math(prompt: str, completion: str, answer: str, **fields) -> VerifyResult:
    got = extract_answer(completion)
    if got is None:
        return VerifyResult(0.0, "no final answer found")
    ok = answers_equal(got, str(answer))
    return VerifyResult(float(ok), "" if ok else f"answer {got!r} != {answer!r}")
