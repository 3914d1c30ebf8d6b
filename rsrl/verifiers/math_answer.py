"""Math final answers: take the answer from \\boxed{...}, 'Answer:' or the last number, then
compare as integers, decimals, fractions, or (last resort) sympy-equivalent expressions."""

from __future__ import annotations

import re
from fractions import Fraction

from rsrl.verifiers.registry import VerifyResult

_NUMBER = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?(?:/\d+)?")
_ANSWER_MARK = re.compile(r"answer\s*(?:is)?\s*[:=]?[ \t]*", re.IGNORECASE)
# sympify evaluates Python: only plain algebra goes near it, never arbitrary model output.
_ALGEBRA = re.compile(r"[0-9a-z+\-*/^(). ]{1,64}", re.IGNORECASE)
# Fraction() expands exponents exactly ("1e99999999" never returns): bound them.
_PLAIN_NUMBER = re.compile(
    r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d{1,3})?(?:/\d+)?", re.IGNORECASE
)
# Powers are evaluated exactly too ("9^9^9" never returns): small literal exponents only,
# and no scientific notation on the sympy path at all (Float("1e99999999") never returns).
MAX_EXPONENT = 100
_SCIENTIFIC = re.compile(r"\de", re.IGNORECASE)
_LATEX_FRAC = re.compile(r"\\[dt]?frac\{([^{}]*)\}\{([^{}]*)\}")


def extract_answer(completion: str) -> str | None:
    """The final answer a completion commits to, or None when it gives none."""
    boxed = _last_boxed(completion)
    if boxed is not None:
        return _plain(boxed)
    # The rest of the line after the last 'Answer:' (a line may hold more than one).
    marks = list(_ANSWER_MARK.finditer(completion))
    if marks:
        rest = completion[marks[-1].end() :].split("\n", 1)[0].strip().rstrip(".").strip()
        if rest:
            return rest
    numbers = _NUMBER.findall(completion)
    return numbers[-1] if numbers else None


def _plain(latex: str) -> str:
    """A boxed LaTeX answer as plain text: math dollars dropped, \\frac{a}{b} as (a)/(b)."""
    return _LATEX_FRAC.sub(r"(\1)/(\2)", latex.replace("$", "")).strip()


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
    if not _PLAIN_NUMBER.fullmatch(text):
        return None
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

    if not all(_ALGEBRA.fullmatch(t) and not _SCIENTIFIC.search(t) for t in (a, b)):
        return False
    try:
        exprs = [sympy.sympify(text, evaluate=False) for text in (a, b)]
        if not all(_powers_are_small(expr) for expr in exprs):
            return False
        diff = sympy.simplify(exprs[0] - exprs[1])
    except (sympy.SympifyError, TypeError, ValueError, SyntaxError, AttributeError):
        return False
    return diff == 0


def _powers_are_small(expr) -> bool:
    """No power towers, no nested powers, every exponent a literal of at most MAX_EXPONENT."""
    import sympy

    for power in expr.atoms(sympy.Pow):
        exponent = power.exp
        if not exponent.is_Number or abs(exponent) > MAX_EXPONENT:
            return False
        if power.base.atoms(sympy.Pow):
            return False
    return True


def verify_math(prompt: str, completion: str, answer: str, **fields) -> VerifyResult:
    got = extract_answer(completion)
    if got is None:
        return VerifyResult(0.0, "no final answer found")
    ok = answers_equal(got, str(answer))
    return VerifyResult(float(ok), "" if ok else f"answer {got!r} != {answer!r}")
