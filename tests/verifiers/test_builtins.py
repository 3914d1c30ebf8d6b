"""Built-in verifiers' edge cases, the `score` wrapper's failure handling, and plugins by name."""

import logging
import time

import pytest

from rsrl.errors import SpecError
from rsrl.spec.load import load_spec
from rsrl.verifiers import VerifyResult, available_verifiers, load_verifier, score
from rsrl.verifiers.math_answer import answers_equal, extract_answer
from rsrl.verifiers.python_code import extract_code


@pytest.mark.parametrize(
    "completion, expected",
    [
        ("3 + 4 = 7. Answer: 7", "7"),
        ("Answer: 12.", "12"),
        ("The answer is -5", "-5"),
        ("so x = 2 and then 3 more: 5", "5"),
        ("\\boxed{\\frac{3}{4}} and later 9", "(3)/(4)"),
        ("first \\boxed{1} then \\boxed{{2}}", "{2}"),
        ("Answer: 1 then Answer: 2", "2"),
        ("1,234 apples", "1,234"),
        ("no digits here", None),
        ("\\boxed{unclosed", None),
    ],
)
def test_math_extracts_the_final_answer(completion, expected):
    assert extract_answer(completion) == expected


@pytest.mark.parametrize(
    "a, b, equal",
    [
        ("7", "7", True),
        ("0.75", "3/4", True),
        ("1,000", "1000", True),
        ("-3", "-3.0", True),
        (".5", "1/2", True),
        ("1e3", "1000", True),
        ("(3)/(4)", "0.75", True),
        ("(x+1)^2", "x^2 + 2*x + 1", True),
        ("sqrt(4)", "2", True),
        ("7", "8", False),
        ("1/0", "1", False),
        ("x", "y", False),
        ("12 or 13", "12", False),  # "12 apples" is 12: math-verify drops unit words
        ("__import__('os')", "0", False),
    ],
)
def test_math_compares_numbers_and_algebra(a, b, equal):
    assert answers_equal(a, b) is equal


@pytest.mark.parametrize("hostile", ["1e99999999", "9^9^9", "9**9**9", "(9^99)^99", "2^999999"])
def test_math_refuses_answers_that_would_never_finish_evaluating(hostile):
    start = time.perf_counter()
    assert not answers_equal(hostile, "1")
    assert time.perf_counter() - start < 5


def test_math_verifier_reasons():
    verify = load_verifier("math")
    assert verify("", "Answer: 4", "4") == VerifyResult(1.0, "")
    assert verify("", "I am not sure", "4") == VerifyResult(0.0, "no final answer found")
    assert "'5' != '4'" in verify("", "Answer: 5", "4").reason


@pytest.mark.parametrize(
    "completion, answer, expected",
    [
        ("  Paris \n", "Paris", 1.0),
        ("paris", "Paris", 0.0),
        ("42", 42, 1.0),
        ("", "", 1.0),
        ("Paris.", "Paris", 0.0),
    ],
)
def test_exact_strips_whitespace_only(completion, answer, expected):
    assert load_verifier("exact")("", completion, answer) == expected


@pytest.mark.parametrize(
    "completion, answer, expected",
    [
        ("2 + 1 = 3. Answer: 3", "3", 1.0),
        ("Answer: 0.5", "1/2", 1.0),
        ("\\boxed{\\frac{1}{2}}", "0.5", 1.0),
        ("Answer: 1,000", "1000", 1.0),
        ("Answer: 3 apples", "3", 0.0),  # not a plain number
        ("Answer: x = 3", "3", 0.0),  # no symbolic reading: `math` scores this 1
        ("Answer: 4", "3", 0.0),
        ("no number here", "3", 0.0),
    ],
)
def test_number_compares_plain_numbers_exactly(completion, answer, expected):
    assert load_verifier("number")("", completion, answer).score == expected


def test_number_groups_cons_votes_by_value():
    from rsrl.eval.metrics import majority_answer
    from rsrl.eval.suite import answer_rule

    _, equal = answer_rule("number")
    assert majority_answer(["1/2", "7", "0.5", "7", "\\frac{1}{2}"], equal) == "1/2"


def test_python_extracts_the_last_python_block():
    text = "```text\nnot code\n```\n```python\nx = 1\n```\n```py\nx = 2\n```\n```\nx = 3\n```"
    assert extract_code(text) == "x = 2\n"
    assert extract_code("```\ny = 1\n```") == "y = 1\n"
    assert extract_code("z = 3") == "z = 3"


def test_python_takes_tests_from_the_answer_when_the_item_has_none():
    verify = load_verifier("python")
    assert verify("", "def f():\n    return 1", "assert f() == 1").score == 1.0
    assert verify("", "def f():\n    return 1", "", tests=[]).reason == "item has no tests"


def test_score_turns_a_raising_verifier_into_zero_with_a_logged_reason(caplog):
    def broken(prompt, completion, answer, **fields):
        raise RuntimeError("bad item")

    with caplog.at_level(logging.WARNING, logger="rsrl"):
        result = score(broken, "p", "c", "a", timeout_s=5)
    assert result == VerifyResult(0.0, "verifier raised RuntimeError: bad item")
    assert "bad item" in caplog.text


def test_score_times_out_a_hanging_verifier_from_any_thread():
    def hangs(prompt, completion, answer, **fields):
        time.sleep(30)

    start = time.perf_counter()
    result = score(hangs, "p", "c", "a", timeout_s=0.2)
    assert result.score == 0.0 and "timed out after 0.2s" in result.reason
    assert time.perf_counter() - start < 2


@pytest.mark.parametrize(
    "returned, expected",
    [
        (1, VerifyResult(1.0)),
        (True, VerifyResult(1.0)),
        (0.5, VerifyResult(0.5)),
        (VerifyResult(0.25, "partial"), VerifyResult(0.25, "partial")),
    ],
)
def test_score_accepts_numbers_and_results(returned, expected):
    assert score(lambda *a, **k: returned, "p", "c", "a", timeout_s=5) == expected


@pytest.mark.parametrize("returned", [float("nan"), float("inf"), None, "yes"])
def test_score_rejects_what_is_not_a_finite_score(returned):
    result = score(lambda *a, **k: returned, "p", "c", "a", timeout_s=5)
    assert result.score == 0.0 and result.reason.startswith("verifier returned")


def test_score_passes_item_fields_to_the_verifier():
    seen = {}

    def records(prompt, completion, answer, **fields):
        seen.update(fields)
        return 1.0

    score(records, "p", "c", "a", timeout_s=5, tests=["t"], difficulty=3)
    assert seen == {"tests": ["t"], "difficulty": 3}


def test_entry_point_plugin_is_usable_by_name_from_a_spec(repo):
    """plugins/rsrl_verifier_example is installed by `make install` via its entry point."""
    assert {"exact", "math", "number", "python", "palindrome"} <= set(available_verifiers())
    spec = load_spec(repo / "specs/quickstart.yaml", ["rl.verifier.name=palindrome"])
    assert spec.rl.verifier.name == "palindrome"
    verify = load_verifier(spec.rl.verifier.name, spec.plugins)
    assert score(verify, "reverse abc", "it is cba", "abc", timeout_s=5).score == 1.0
    assert score(verify, "reverse abc", "it is abc", "abc", timeout_s=5).score == 0.0


def test_a_spec_naming_an_unknown_verifier_is_rejected(repo):
    with pytest.raises(SpecError, match="rl.verifier.name"):
        load_spec(repo / "specs/quickstart.yaml", ["rl.verifier.name=no-such-verifier"])
