"""Pass@k, Avg@k and Cons@k against exact combinatorics in fractions."""

import itertools
from fractions import Fraction
from math import comb

import pytest

from rsrl.eval.metrics import (
    avg_at_k,
    cons_at_k,
    majority_answer,
    mean_over_problems,
    mean_pass_at_k,
    mean_pass_at_k_curve,
    pass_at_k,
    pass_at_k_curve,
)
from rsrl.verifiers.math_answer import answers_equal

SMALL_N = range(1, 11)


def exact_pass_at_k(n: int, c: int, k: int) -> Fraction:
    return 1 - Fraction(comb(n - c, k), comb(n, k))


def enumerated_pass_at_k(n: int, c: int, k: int) -> Fraction:
    """The definition itself: the share of k-subsets of the samples holding a correct one."""
    samples = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(samples, k))
    return Fraction(sum(any(s) for s in subsets), len(subsets))


@pytest.mark.parametrize("n", SMALL_N)
def test_pass_at_k_is_exact_for_every_small_n_c_k(n):
    for c in range(n + 1):
        for k in range(1, n + 1):
            exact = exact_pass_at_k(n, c, k)
            assert exact == enumerated_pass_at_k(n, c, k)
            assert pass_at_k(n, c, k) == pytest.approx(float(exact), abs=1e-12, rel=1e-12)


def test_pass_at_k_edges():
    assert pass_at_k(16, 0, 16) == 0.0
    assert pass_at_k(16, 16, 1) == 1.0
    assert pass_at_k(16, 1, 16) == 1.0  # n - c < k: every subset holds the correct one
    assert pass_at_k(16, 4, 1) == pytest.approx(0.25)  # Pass@1 is the share correct
    assert pass_at_k(10, 3, 8) == 1.0


def test_pass_at_k_is_stable_for_large_n():
    # C(1000, 500) overflows a float; the product form does not need it.
    n, c, k = 1000, 3, 500
    assert pass_at_k(n, c, k) == pytest.approx(float(exact_pass_at_k(n, c, k)), rel=1e-12)
    assert pass_at_k(10_000, 1, 1) == pytest.approx(1e-4, rel=1e-12)


@pytest.mark.parametrize(
    "n,c,k", [(4, 1, 5), (4, 5, 1), (4, 1, 0), (-1, 0, 1), (4, -1, 1), (4.0, 1, 1), (4, True, 1)]
)
def test_pass_at_k_rejects_impossible_counts(n, c, k):
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)


def test_pass_at_k_curve_is_the_pointwise_estimator_and_never_decreases():
    for n in SMALL_N:
        for c in range(n + 1):
            curve = pass_at_k_curve(n, c, range(1, n + 1))
            assert curve == [pass_at_k(n, c, k) for k in range(1, n + 1)]
            assert all(a <= b + 1e-15 for a, b in zip(curve, curve[1:]))


def test_dataset_means_are_means_over_problems():
    counts = [(8, 0), (8, 1), (8, 8), (8, 3)]
    for k in (1, 2, 8):
        exact = sum(exact_pass_at_k(n, c, k) for n, c in counts) / len(counts)
        assert mean_pass_at_k(counts, k) == pytest.approx(float(exact), abs=1e-12)
    assert mean_pass_at_k_curve(counts, [1, 2]) == [
        mean_pass_at_k(counts, 1),
        mean_pass_at_k(counts, 2),
    ]
    assert mean_pass_at_k(counts, 1) == pytest.approx(12 / 32)
    assert mean_over_problems([1.0, 0.0, 0.5]) == 0.5
    with pytest.raises(ValueError):
        mean_over_problems([])


def test_avg_at_k():
    assert avg_at_k([True, False, False, True]) == 0.5
    assert avg_at_k([False]) == 0.0
    with pytest.raises(ValueError):
        avg_at_k([])


def test_avg_at_n_equals_pass_at_1():
    for n in SMALL_N:
        for c in range(n + 1):
            correct = [True] * c + [False] * (n - c)
            assert avg_at_k(correct) == pytest.approx(pass_at_k(n, c, 1), abs=1e-15)


def test_cons_at_k_majority():
    assert cons_at_k(["3", "4", "3"], "3") == 1.0
    assert cons_at_k(["3", "4", "4"], "3") == 0.0
    # One correct answer among many different wrong ones: plurality, not absolute majority.
    assert cons_at_k(["1", "2", "7", "7", None, None, None], "7") == 1.0


def test_cons_at_k_none_never_wins():
    assert cons_at_k([None, None, None, "5"], "5") == 1.0
    assert cons_at_k([None, None, None], "5") == 0.0
    assert majority_answer([None, None]) is None


def test_cons_at_k_ties_go_to_the_earliest_seen_answer():
    assert majority_answer(["4", "3", "3", "4"]) == "4"
    assert cons_at_k(["4", "3", "3", "4"], "3") == 0.0
    assert cons_at_k(["3", "4", "4", "3"], "3") == 1.0
    # A group is ranked by its first appearance, not by its last member.
    assert majority_answer(["a", "b", "c", "c", "b", "a"]) == "a"
    # Deterministic: the same samples give the same winner every time.
    samples = ["x", None, "y", "y", "x", None]
    assert {majority_answer(samples) for _ in range(5)} == {"x"}


def test_cons_at_k_groups_equivalent_answers():
    answers = ["0.5", "2", "1/2", "2"]  # 0.5 and 1/2 are one answer under answers_equal
    assert majority_answer(answers, answers_equal) == "0.5"
    assert cons_at_k(answers, "1/2", equal=answers_equal) == 1.0
    assert cons_at_k(answers, "1/2") == 0.0  # string equality: "2" wins with two votes
    with pytest.raises(ValueError):
        cons_at_k([], "1")


def test_majority_compares_each_distinct_text_once_per_group():
    compared = []

    def equal(a, b):
        compared.append((a, b))
        return a == b

    assert majority_answer(["7", "3", "7", "7", "3", "5"], equal) == "7"
    assert compared == [("7", "3"), ("7", "5"), ("3", "5")]
