"""One eval suite: sample n completions per prompt, score them, and summarise.

A sample is correct when its verifier gives it full credit (score >= 1). Cons@n votes
over final answers: for the `math` verifier the answer `extract_answer` finds, compared
with `answers_equal` (so "0.5" and "1/2" vote together); for any other verifier the
stripped completion itself, compared as text.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rsrl.eval.config import SuiteSpec
from rsrl.eval.metrics import avg_at_k, cons_at_k, majority_answer, mean_over_problems, pass_at_k
from rsrl.eval.uncertainty import bootstrap_interval, standard_error

CORRECT_SCORE = 1.0
Problem = dict[str, Any]  # one row of the per-problem table


def answer_rule(verifier: str) -> tuple[Callable[[str], str | None], Callable[[str, str], bool]]:
    """(extract the final answer of a completion, are two answers the same) for Cons@n."""
    if verifier == "math":
        from rsrl.verifiers.math_answer import answers_equal, extract_answer

        return extract_answer, answers_equal
    if verifier == "number":
        from rsrl.verifiers.math_answer import extract_answer
        from rsrl.verifiers.number import numbers_equal

        return extract_answer, numbers_equal
    return (lambda completion: completion.strip() or None), operator.eq


@dataclass(frozen=True)
class SuiteResult:
    summary: dict  # the suite's entry of metrics.json
    values: dict[str, list[float]]  # metric -> its value on each problem, in problem order


def run_suite(
    group,
    tokenizer,
    suite: SuiteSpec,
    prompts: list[dict],
    verify,
    seed: int,
    problems_dir: Path | None = None,
    relative_to: Path | None = None,
) -> SuiteResult:
    """Sample and score one suite on the group's current weights. The per-problem table
    goes to `problems_dir/<suite>.parquet` (named relative to `relative_to` in the summary)
    unless `problems_dir` is None."""
    outputs = sample_suite(group, tokenizer, suite, prompts, seed)
    problems = [
        score_problem(suite, verify, item, completions, i)
        for i, (item, completions) in enumerate(zip(prompts, outputs))
    ]
    problems_file = ""
    if problems_dir is not None:
        path = problems_dir / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', suite.name)}.parquet"
        write_problems(problems, path)
        problems_file = str(path.relative_to(relative_to or problems_dir))
    return SuiteResult(
        summarise_suite(suite, problems, problems_file), per_problem_values(suite, problems)
    )


def sample_suite(group, tokenizer, suite: SuiteSpec, prompts: list[dict], seed: int) -> list[list]:
    """`suite.n_samples` completions for each prompt, rendered with the prompt template."""
    from rsrl.models.tokenizer import render_prompt

    texts = [render_prompt(tokenizer, item["prompt"]) for item in prompts]
    return group.generate(
        texts,
        n=suite.n_samples,
        temperature=suite.temperature,
        top_p=suite.top_p,
        max_new_tokens=suite.max_new_tokens,
        seed=seed,
    )


def score_problem(
    suite: SuiteSpec, verify, item: dict, completions: Sequence, index: int
) -> Problem:
    """The per-problem row: every completion with its score and answer, and the metrics."""
    from rsrl.verifiers import score

    fields = {k: v for k, v in item.items() if k not in ("prompt", "answer")}
    texts = [c.text for c in completions]
    verdicts = [
        score(
            verify,
            item["prompt"],
            text,
            item["answer"],
            timeout_s=suite.verifier.timeout_s,
            **{**suite.verifier.options, **fields},
        )
        for text in texts
    ]
    scores = [v.score for v in verdicts]
    correct = [s >= CORRECT_SCORE for s in scores]
    extract, equal = answer_rule(suite.verifier.name)
    answers = [extract(text) for text in texts]
    n, c = len(texts), sum(correct)
    return {
        "index": index,
        "prompt": item["prompt"],
        "answer": item["answer"],
        "n": n,
        "correct": c,
        "mean_score": sum(scores) / n,
        "avg": avg_at_k(correct),
        "cons": cons_at_k(answers, item["answer"], equal),
        "majority_answer": majority_answer(answers, equal),
        **{f"pass@{k}": pass_at_k(n, c, k) for k in suite.k},
        "completions": texts,
        "scores": scores,
        "reasons": [v.reason for v in verdicts],
        "answers": answers,
        "finish_reasons": [str(comp.finish_reason) for comp in completions],
        "lengths": [len(comp.token_ids) for comp in completions],
    }


def summarise_suite(suite: SuiteSpec, problems: Sequence[Problem], problems_file: str) -> dict:
    """The suite's entry of metrics.json (layout in `rsrl.eval.results`): each metric with
    its standard error over problems (`<metric>_se`), Pass@k with a bootstrap interval too."""
    n = suite.n_samples
    counts = [(p["n"], p["correct"]) for p in problems]
    summary: dict[str, Any] = {"problems": len(problems), "n_samples": n, "k": list(suite.k)}
    for name, values in per_problem_values(suite, problems).items():
        summary[name] = mean_over_problems(values)
        summary[f"{name}_se"] = standard_error(values)
        if name.startswith("pass@"):
            summary[f"{name}_ci"] = bootstrap_interval(values)
    curve = [[pass_at_k(n_, c, k) for n_, c in counts] for k in range(1, n + 1)]
    summary["curve"] = [mean_over_problems(values) for values in curve]
    summary["curve_se"] = [standard_error(values) for values in curve]
    summary["problems_file"] = problems_file
    return summary


def per_problem_values(suite: SuiteSpec, problems: Sequence[Problem]) -> dict[str, list[float]]:
    """{metric: its value on each problem, in problem order}: what the suite's means, errors
    and paired differences are taken over."""
    n = suite.n_samples
    return {
        f"avg@{n}": [p["avg"] for p in problems],
        f"cons@{n}": [p["cons"] for p in problems],
        "mean_score": [p["mean_score"] for p in problems],
        **{f"pass@{k}": [pass_at_k(p["n"], p["correct"], k) for p in problems] for k in suite.k},
    }


def write_problems(problems: Sequence[Problem], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(list(problems)), path)
