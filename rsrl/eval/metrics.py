"""Sample-based metrics of a policy on verifiable problems: Pass@k, Avg@k, Cons@k.

For one problem, n completions are sampled and c of them are correct.

- `pass_at_k(n, c, k)`: the unbiased estimator of the chance that at least one of k
  completions is correct, 1 - C(n-c, k) / C(n, k) (Chen et al. 2021), averaged over all
  k-subsets of the n samples; far less noisy than drawing k samples once.
- `avg_at_k(correct)`: the mean correctness of the n samples (Avg@n = mean Pass@1).
- `cons_at_k(answers, correct_answer)`: majority vote over the extracted final answers.

Dataset-level numbers are plain means of the per-problem values (`mean_over_problems`,
`mean_pass_at_k`, `mean_pass_at_k_curve`).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence


def _check_counts(n: int, c: int, k: int) -> None:
    for name, value in (("n", n), ("c", c), ("k", k)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{name} must be an int >= 0, got {value!r}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if k > n:
        raise ValueError(f"k={k} exceeds the number of samples n={n}")
    if c > n:
        raise ValueError(f"c={c} correct samples exceed the number of samples n={n}")


def pass_at_k(n: int, c: int, k: int) -> float:
    """1 - C(n-c, k) / C(n, k): the chance that a random k-subset of the n samples holds a
    correct one. Raises ValueError for k > n, c > n, or k < 1.

    The ratio is computed as the product prod_{i=n-c+1..n} (1 - k/i), whose factors are all
    in [0, 1): no huge binomials, no cancellation for large n.
    """
    _check_counts(n, c, k)
    if n - c < k:  # every k-subset must contain a correct sample
        return 1.0
    all_wrong = 1.0
    for i in range(n - c + 1, n + 1):
        all_wrong *= 1.0 - k / i
    return 1.0 - all_wrong


def pass_at_k_curve(n: int, c: int, ks: Sequence[int]) -> list[float]:
    """`pass_at_k(n, c, k)` for each k of `ks`, in order."""
    return [pass_at_k(n, c, k) for k in ks]


def avg_at_k(correct: Sequence[bool]) -> float:
    """The share of correct samples (Avg@k over the k = len(correct) samples of a problem)."""
    if len(correct) == 0:
        raise ValueError("avg_at_k needs at least one sample")
    return sum(map(bool, correct)) / len(correct)


def majority_answer(
    answers: Sequence[str | None], equal: Callable[[str, str], bool] = operator.eq
) -> str | None:
    """The most frequent answer, or None when no sample gave one.

    Answers are grouped by `equal` against each group's first member, in sample order (so
    "0.5" and "1/2" count together under a numeric `equal`). None (no extractable answer)
    never forms a group, so it never wins. Ties: the group whose first member came earliest
    in the sample order wins — deterministic for a given order, and favouring no answer.
    """
    groups: list[list[str]] = []  # in order of first appearance
    group_of: dict[
        str, list[str]
    ] = {}  # `equal` is deterministic: a repeated text is not re-compared
    for answer in answers:
        if answer is None:
            continue
        group = group_of.get(answer) or next((g for g in groups if equal(g[0], answer)), None)
        if group is None:
            group = []
            groups.append(group)
        group.append(answer)
        group_of[answer] = group
    if not groups:
        return None
    # max() keeps the first of equal counts: the earliest-seen group wins ties.
    return max(groups, key=len)[0]


def cons_at_k(
    answers: Sequence[str | None],
    correct_answer: str,
    equal: Callable[[str, str], bool] = operator.eq,
) -> float:
    """1.0 when the majority answer (`majority_answer`, same `equal` and tie-break) equals
    `correct_answer`, else 0.0; 0.0 when no sample gave an answer."""
    if len(answers) == 0:
        raise ValueError("cons_at_k needs at least one sample")
    winner = majority_answer(answers, equal)
    return float(winner is not None and equal(winner, correct_answer))


def mean_over_problems(values: Sequence[float]) -> float:
    """The dataset-level value of a per-problem metric: the mean over problems."""
    if len(values) == 0:
        raise ValueError("no problems to average over")
    return sum(values) / len(values)


def mean_pass_at_k(counts: Sequence[tuple[int, int]], k: int) -> float:
    """Mean Pass@k over problems given as (n, c) pairs."""
    return mean_over_problems([pass_at_k(n, c, k) for n, c in counts])


def mean_pass_at_k_curve(counts: Sequence[tuple[int, int]], ks: Sequence[int]) -> list[float]:
    """Mean Pass@k over problems (as (n, c) pairs) for each k of `ks`."""
    return [mean_pass_at_k(counts, k) for k in ks]
