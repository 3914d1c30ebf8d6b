"""Math final answers: rsrl takes the answer a completion commits to (the last \\boxed{...},
else the rest of the last 'Answer:' line, else the last number) and math-verify (the checker
verl and TRL use) decides whether it means the same as the reference.

math-verify's own time limits use `signal.alarm`, which fails off the main thread (every
comparison would score 0): they are turned off here, and each comparison runs under rsrl's
thread-join limit (`score`) instead. That limit only abandons a comparison: one stuck in a
big-integer operation keeps the GIL and stalls the whole process, so answers whose
evaluation would never finish are refused before math-verify sees them.
"""

from __future__ import annotations

import functools
import logging
import re
from fractions import Fraction
from typing import Any

from rsrl.verifiers.registry import VerifyResult
from rsrl.verifiers.score import score

_NUMBER = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?(?:/\d+)?")
_ANSWER_MARK = re.compile(r"answer\s*(?:is)?\s*[:=]?[ \t]*", re.IGNORECASE)
# Plain numbers compare exactly without math-verify. A comma only separates thousands
# ("1,000" is 1000); "1,2" is two numbers, left to math-verify (a set).
# Fraction() expands exponents exactly ("1e99999999" never returns): bound them.
_PLAIN_NUMBER = re.compile(
    r"[+-]?(?:(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d*)?|\.\d+)(?:e[+-]?\d{1,3})?(?:/\d+)?",
    re.IGNORECASE,
)
_LATEX_FRAC = re.compile(r"\\[dt]?frac\{([^{}]*)\}\{([^{}]*)\}")
_INTEGER_FRACTION = re.compile(r"(-?)\((-?\d+)\)/\((\d+)\)")
# Evaluating these exactly never returns (10^{10^{10}}, (10^{100})!): refused before comparing.
MAX_EXPONENT = 100
MAX_FUNCTION_ARGUMENT = 1000
# math-verify's LaTeX parser takes seconds on long or deeply bracketed text (ten nested
# parentheses: ~7 s), and a timed-out comparison keeps its CPU: such answers are not parsed.
MAX_ANSWER_CHARS = 256
MAX_NESTING = 8
# Bounds one comparison wherever it is called from (Cons@n votes call answers_equal directly).
EQUAL_TIMEOUT_S = 5.0


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
    """A boxed LaTeX answer as plain text: dollars dropped, \\frac{a}{b} as (a)/(b)."""
    return _LATEX_FRAC.sub(r"(\1)/(\2)", _without_dollars(latex)).strip()


def _without_dollars(text: str) -> str:
    """Math-mode and currency dollars dropped: `$\\frac{1}{2}$`, `\\$5` and `$5` read as math."""
    return text.replace("\\$", "").replace("$", "")


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


def answers_equal(answer: str, reference: str) -> bool:
    """Whether `answer` means the same as `reference` (the gold answer, which math-verify
    treats asymmetrically: `x=5` answers a reference of `5`)."""
    if answer.strip() == reference.strip():
        return True
    fa, fb = as_number(answer), as_number(reference)
    if fa is not None and fb is not None:
        return fa == fb
    known = _verdict_from_parsed(answer, reference)
    if known is not None:
        return known
    _math_verify()  # imported here, not on the clock: the first import can take seconds
    return score(_equivalent, "", answer, reference, timeout_s=EQUAL_TIMEOUT_S).score == 1.0


def _verdict_from_parsed(answer: str, reference: str) -> bool | None:
    """The verdict when both texts were parsed before and it needs no math-verify call;
    decided here, without `score`'s thread (Cons@64 makes thousands of comparisons, and
    each thread hand-off waits for the scheduler on a busy machine)."""
    gold, predicted = _PARSED.get(reference), _PARSED.get(answer)
    if gold is None or predicted is None:
        return None
    if not gold or not predicted:
        return False
    return _same_monomial(gold, predicted)


def as_number(text: str) -> Fraction | None:
    """A plain number, or a fraction of integers (`\\frac{3}{4}`, `(3)/(4)`), exactly; parsing
    one in math-verify takes ~10 ms."""
    text = text.replace(" ", "").rstrip(".")
    fraction = _INTEGER_FRACTION.fullmatch(_LATEX_FRAC.sub(r"(\1)/(\2)", text))
    if fraction:
        text = "{}{}/{}".format(*fraction.groups())
    if not _PLAIN_NUMBER.fullmatch(text):
        return None
    try:
        return Fraction(text.replace(",", ""))
    except (ValueError, ZeroDivisionError):
        return None


def _equivalent(prompt: str, answer: str, reference: str) -> float:
    """math-verify's verdict as a score (called through `score`, hence the verifier shape)."""
    math_verify, _ = _math_verify()
    gold, predicted = _parse(reference), _parse(answer)
    if not gold or not predicted:
        return 0.0
    same = _same_monomial(gold, predicted)
    if same is not None:
        return float(same)
    return float(math_verify.verify(list(gold), list(predicted), timeout_seconds=None))


def _same_monomial(gold: tuple, predicted: tuple) -> bool | None:
    """Two products of rational numbers and integer powers of variables, at least one with a
    variable ('fig plum 3' reads as f*i*g*p*l*u*m*3): equal exactly when sympy's canonical
    products are, known without math-verify's simplification (~10 ms a pair; Cons@k
    compares every sample with every answer group). None for any other shape (sums,
    relations such as x=5, floats, trigonometry): math-verify decides those."""
    a, b = _only_monomial(gold), _only_monomial(predicted)
    if a is None or b is None or not (a.free_symbols or b.free_symbols):
        return None
    return bool(a == b)


def _only_monomial(readings: tuple) -> Any:
    """The one sympy reading of an answer multiplied out, when it is a monomial with rational
    coefficients; None otherwise."""
    import sympy

    exprs = [r for r in readings if isinstance(r, sympy.Basic)]
    if len(exprs) != 1 or not isinstance(exprs[0], sympy.Expr) or exprs[0].atoms(sympy.Float):
        return None
    return _evaluated_monomial(exprs[0])


def _evaluated_monomial(expr: Any) -> Any:
    """`expr`, multiplied out, when it is a product of numbers and integer powers of symbols
    (parsed unevaluated: 3x/x is still (3*x)/x); None for any other shape."""
    import sympy

    if expr.is_Symbol or expr.is_number:
        return expr
    if expr.is_Pow and expr.exp.is_Integer:
        base = _evaluated_monomial(expr.base)
        return None if base is None or base == 0 else sympy.Pow(base, expr.exp)
    if expr.is_Mul:
        factors = [_evaluated_monomial(a) for a in expr.args]
        return None if any(f is None for f in factors) else sympy.Mul(*factors)
    return None


# Texts parsed so far (a reference is compared with every sample of its group, and a Cons@k
# answer with every group), cleared when full.
_PARSED: dict[str, tuple] = {}
MAX_PARSED = 8192


def _parse(text: str) -> tuple:
    """`text` read as LaTeX into sympy, () when it does not parse or is too costly to compare.
    Remembered in _PARSED."""
    readings = _PARSED.get(text)  # one lookup: verifier threads share the dict
    if readings is None:
        readings = _read_latex(text)
        if len(_PARSED) >= MAX_PARSED:
            _PARSED.clear()
        _PARSED[text] = readings
    return readings


def _read_latex(text: str) -> tuple:
    """LaTeX only: math-verify's plain-expression reader runs sympy's `parse_expr`, which
    evaluates Python, and answers are model output."""
    if len(text) > MAX_ANSWER_CHARS or _nesting(text) > MAX_NESTING:
        return ()
    math_verify, latex = _math_verify()
    readings = math_verify.parse(
        f"${_without_dollars(text)}$",
        [latex],
        fallback_mode="no_fallback",
        parsing_timeout=None,
    )
    return tuple(readings) if all(_cheap_to_compare(r) for r in readings) else ()


def _nesting(text: str) -> int:
    """The deepest bracket nesting in `text`, (), [] and {} together."""
    depth = deepest = 0
    for char in text:
        depth += 1 if char in "([{" else -1 if char in ")]}" else 0
        deepest = max(deepest, depth)
    return deepest


@functools.cache
def _math_verify() -> tuple[Any, Any]:
    """math-verify and its LaTeX extraction settings, imported on first use (about a second).
    Its only warnings say that its signal timeouts are off, which is on purpose here."""
    import math_verify
    from math_verify.parser import LatexExtractionConfig

    logging.getLogger("math_verify").setLevel(logging.ERROR)
    return math_verify, LatexExtractionConfig()


def _cheap_to_compare(expr: Any) -> bool:
    """Numeric exponents that multiply to at most MAX_EXPONENT down nested powers (so no
    power towers), and functions of numbers (factorial, binomial, ...) only of plain numbers
    up to MAX_FUNCTION_ARGUMENT. Symbolic exponents and arguments (2^{n-1}, n!) pass."""
    import sympy

    if not isinstance(expr, sympy.Basic):
        return True
    for power in expr.atoms(sympy.Pow):
        if not power.exp.free_symbols and not power.exp.is_Number:
            return False  # 10^{10^{10}}
    if _power_growth(expr) > MAX_EXPONENT:
        return False
    for call in expr.atoms(sympy.Function):
        if not call.free_symbols and not all(_plain_argument(arg) for arg in call.args):
            return False
    return True


def _power_growth(expr: Any) -> float:
    """The product of numeric exponents down nested powers: (9^{99})^{99} is 9801."""
    if expr.is_Pow and expr.exp.is_Number:
        return max(1.0, float(abs(expr.exp))) * _power_growth(expr.base)
    return max((_power_growth(arg) for arg in expr.args), default=1.0)


def _plain_argument(arg: Any) -> bool:
    import sympy

    if arg.atoms(sympy.Pow, sympy.Function):
        return False
    return all(abs(n) <= MAX_FUNCTION_ARGUMENT for n in arg.atoms(sympy.Integer))


def verify_math(prompt: str, completion: str, answer: str, **fields) -> VerifyResult:
    got = extract_answer(completion)
    if got is None:
        return VerifyResult(0.0, "no final answer found")
    ok = answers_equal(got, str(answer))
    return VerifyResult(float(ok), "" if ok else f"answer {got!r} != {answer!r}")
