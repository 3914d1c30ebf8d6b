"""The `math` verifier on MATH-style answers: a table of equivalent answers that must score 1
and equal-looking different answers that must score 0, and scoring off the main thread."""

import logging
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from rsrl.verifiers import load_verifier, score
from rsrl.verifiers.math_answer import answers_equal

# (the answer a completion boxes, the reference answer, whether they are the same answer)
CASES = [
    # fractions
    ("\\dfrac{1}{2}", "\\frac{1}{2}", True),
    ("\\dfrac{3}{4}", "0.75", True),
    ("\\tfrac{2}{4}", "\\frac12", True),
    ("\\frac{1}{3}", "0.33", False),
    ("\\dfrac{2}{3}", "\\frac{3}{2}", False),
    ("-\\frac{6}{8}", "-0.75", True),
    ("2(3)", "23", False),  # a product, not digits
    # radicals
    ("2\\sqrt{2}", "\\sqrt{8}", True),
    ("\\frac{\\sqrt{2}}{2}", "\\frac{1}{\\sqrt{2}}", True),
    ("3\\sqrt{2}", "\\sqrt{18}", True),
    ("2\\sqrt{3}", "\\sqrt{6}", False),
    ("\\sqrt{3}", "3", False),
    # intervals: the brackets matter
    ("(1, 2]", "(1,2]", True),
    ("(-\\infty, 3)", "(-\\infty,3)", True),
    ("x \\in [0,1)", "[0,1)", True),
    ("(1,2]", "[1,2]", False),
    ("(1,2)", "[1,2]", False),
    # sets: order does not matter, members do
    ("\\{3,2,1\\}", "\\{1,2,3\\}", True),
    ("1, 2, 3", "\\{1,2,3\\}", True),
    ("\\{1,2\\}", "\\{1,2,3\\}", False),
    ("1,2", "12", False),  # two numbers, not twelve
    # percentages: math-verify accepts the number with or without its percent reading
    ("50\\%", "50", True),
    ("50\\%", "0.5", True),
    ("5\\%", "50", False),
    # thousands separators: a comma before three digits groups thousands, a point is decimal
    ("1,000", "1000", True),
    ("1{,}000{,}000", "1000000", True),
    ("10,000", "1000", False),
    ("1,000", "1.000", False),
    # units and degrees are dropped, not converted
    ("10\\text{ cm}", "10", True),
    ("30^\\circ", "30", True),
    ("12 apples", "12", True),
    ("5\\text{ meters}", "6", False),
    ("30^\\circ", "60", False),
    # dollars
    ("\\$5", "5", True),
    ("\\$1.50", "1.5", True),
    ("\\$15", "5", False),
    # multiple-choice letters
    ("(B)", "B", True),
    ("\\text{(C)}", "C", True),
    ("\\textbf{(A)}", "A", True),
    ("B", "A", False),
    ("(D)", "C", False),
    # algebraic equivalence
    ("(x+1)^2", "x^2+2x+1", True),
    ("2(x+1)", "2x+2", True),
    ("2^{n-1}", "\\frac{2^n}{2}", True),
    ("x+1", "y+1", False),
    ("x^2-1", "(x-1)^2", False),
    # an equation for its value
    ("x=5", "5", True),
    ("x = -3", "-3", True),
    ("x=5", "6", False),
    # plain integers and decimals
    ("7", "7.0", True),
    ("0.5", "\\frac{1}{2}", True),
    ("0.5", "0.05", False),
    ("-3", "3", False),
    ("3.14", "\\pi", False),
]


@pytest.mark.parametrize("answer, reference, equal", CASES)
def test_math_scores_equivalent_answers_1_and_different_ones_0(answer, reference, equal):
    completion = f"Working... so the final answer is $\\boxed{{{answer}}}$."
    assert load_verifier("math")("", completion, reference).score == float(equal)


@pytest.mark.parametrize(
    "completion, reference, expected",
    [
        ("So x = 1/2. Answer: $\\frac{1}{2}$", "0.5", 1.0),
        ("Answer: 50%", "50\\%", 1.0),
        ("The answer is x = 5.", "5", 1.0),
        ("It costs \\$1,000 in all. Answer: \\$1,000", "1000", 1.0),
        ("First \\boxed{\\dfrac{1}{2}}, on reflection \\boxed{\\dfrac{1}{3}}", "\\frac13", 1.0),
        ("First \\boxed{\\dfrac{1}{2}}, on reflection \\boxed{\\dfrac{1}{3}}", "\\frac12", 0.0),
    ],
)
def test_math_takes_the_last_boxed_or_answer_line_then_compares(completion, reference, expected):
    assert load_verifier("math")("", completion, reference).score == expected


@pytest.mark.parametrize(
    "hostile",
    [
        "10^{10^{10}}",
        "(10^{100})!",
        "9!!!!",
        "\\binom{10^{100}}{10^{50}}",
        "\\Gamma(10^{100})",
        "(" * 20 + "1" + ")" * 20,
        "x" * 2000,
    ],
)
def test_math_refuses_answers_too_costly_to_compare_without_timing_out(hostile, caplog):
    answers_equal("\\frac12", "0.5")  # math-verify imported
    start = time.perf_counter()
    with caplog.at_level(logging.WARNING, logger="rsrl"):
        assert not answers_equal(hostile, "1")
    assert "timed out" not in caplog.text
    assert time.perf_counter() - start < 5


def test_math_scores_correctly_off_the_main_thread():
    """Rollouts are scored from worker threads, where signal-based timeouts cannot work."""
    verify = load_verifier("math")
    pairs = [(a, r, e) for a, r, e in CASES if "\\" in a + r]  # ones math-verify decides
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = pool.map(
            lambda case: score(verify, "", f"\\boxed{{{case[0]}}}", case[1], timeout_s=30),
            pairs,
        )
        scores = [result.score for result in results]
    assert scores == [float(equal) for _, _, equal in pairs]


MONOMIALS = ["3", "fig plum 3", "Answer: 4 fig", "3x/x", "x^0 3", "0 x", "x=3", "-x + x + 3"]
MONOMIALS += ["fig", "gif", "fig plum", "2 x y", "y x 2", "x^2", "x x", "x^{-1}", "1.5 x", "pi x"]


@pytest.mark.parametrize("reference", MONOMIALS)
@pytest.mark.parametrize("answer", MONOMIALS)
def test_the_monomial_shortcut_agrees_with_math_verify(answer, reference):
    """Cons@64 compares every sample with every answer group: products of variables skip
    math-verify's simplification, with math-verify's own verdict."""
    import math_verify

    from rsrl.verifiers.math_answer import _equivalent, _parse

    gold, predicted = _parse(reference), _parse(answer)
    expected = float(math_verify.verify(list(gold), list(predicted), timeout_seconds=None))
    assert _equivalent("", answer, reference) == expected


def test_monomials_are_decided_without_math_verify():
    from rsrl.verifiers.math_answer import _parse, _same_monomial

    assert _same_monomial(_parse("fig"), _parse("gif")) is True  # f*i*g both
    assert _same_monomial(_parse("3"), _parse("fig plum 3")) is False
    assert _same_monomial(_parse("2 x y"), _parse("y x 2")) is True
    assert _same_monomial(_parse("3"), _parse("4")) is None  # numbers: math-verify's tolerance
    assert _same_monomial(_parse("1.5 x"), _parse("x")) is None  # floats likewise
    assert _same_monomial(_parse("x=3"), _parse("3")) is None  # relations likewise
