"""benchmarks/sweep_tables.py: verdicts read the way the issue defines them, and the tables in
README.md and RESULTS.md are exactly what the script renders from the committed results."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location(
    "sweep_tables", ROOT / "benchmarks" / "sweep_tables.py"
)
assert _spec and _spec.loader
tables = importlib.util.module_from_spec(_spec)
sys.modules["sweep_tables"] = tables  # dataclasses look their module up while defining
_spec.loader.exec_module(tables)

LOWER_ENTROPY = tables.Direction("sharper", "beta -0.25", tables.ENTROPY, -1)
NOT_HURT = tables.Direction("ppl", "beta -0.25", tables.PERPLEXITY, 0)


def comparison(diff, low, high, p_holm, seeds_needed=None, seeds=8, p=0.01, se=0.02):
    return {
        "diff": diff,
        "se": se,
        "ci_low": low,
        "ci_high": high,
        "p": p,
        "p_holm": p_holm,
        "seeds": seeds,
        "seeds_needed": seeds_needed,
    }


@pytest.mark.parametrize(
    ("c", "direction", "expected"),
    [
        (comparison(-0.1, -0.15, -0.05, 0.001), LOWER_ENTROPY, "agrees"),
        (comparison(+0.1, 0.05, 0.15, 0.001), LOWER_ENTROPY, "contradicts"),
        # Uncorrected interval excludes 0 but Holm does not: no decision.
        (comparison(-0.1, -0.19, -0.01, 0.2, 14), LOWER_ENTROPY, "undecided: needs 14 seeds"),
        # Enough seeds for the difference alone, not among all the comparisons.
        (
            comparison(-0.1, -0.19, -0.01, 0.2, 6, p=0.0036),
            LOWER_ENTROPY,
            "undecided: p 0.0036 alone; needs 10 seeds under Holm",
        ),
        (comparison(0.001, -0.01, 0.012, 0.9), LOWER_ENTROPY, "bounded (within ±0.02)"),
        (comparison(0.1, -0.2, 0.4, 0.9), NOT_HURT, "bounded (within ±0.5)"),
        (comparison(-2.0, -3.0, -1.0, 0.01), NOT_HURT, "agrees"),  # lower perplexity
        (comparison(2.0, 1.0, 3.0, 0.01), NOT_HURT, "contradicts"),
        (comparison(0.3, -0.9, 1.5, 0.6, None), NOT_HURT, "undecided: no difference seen"),
        (comparison(0.3, None, None, None), NOT_HURT, "undecided: one seed, no interval"),
    ],
)
def test_verdicts(c, direction, expected):
    assert tables.verdict(c, direction, alpha=0.05, tests=32) == expected


def test_arm_labels_match_by_value_inside_the_objective():
    assert tables.arm_label({"beta": 0.0, "topk": {"k": 100, "lam_tail": 0.0}}) == "CE"
    assert tables.arm_label({"beta": 0.0, "topk": {"k": 100, "lam_tail": -0.1}}) == "lam_tail -0.1"
    with pytest.raises(ValueError, match="no arm"):
        tables.arm_label({"beta": 0.7})


def test_write_between_markers_replaces_only_the_block(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(f"intro\n{tables.BEGIN}\nold\n{tables.END}\noutro\n")
    tables.write_between_markers(page, "new")
    assert page.read_text() == f"intro\n{tables.BEGIN}\nnew\n{tables.END}\noutro\n"
    (tmp_path / "bare.md").write_text("no markers")
    with pytest.raises(SystemExit, match="markers"):
        tables.write_between_markers(tmp_path / "bare.md", "new")


@pytest.mark.skipif(not tables.DEFAULT_RESULTS.exists(), reason="no committed sweep results")
def test_readme_and_results_tables_are_the_committed_sweeps():
    rendered = tables.render(
        json.loads(tables.DEFAULT_RESULTS.read_text()),
        str(tables.DEFAULT_RESULTS.relative_to(ROOT)),
    )
    for target in tables.TARGETS:
        block = target.read_text().split(tables.BEGIN, 1)[1].split(tables.END, 1)[0]
        assert block.strip() == rendered.strip(), f"{target.name}: rerun sweep_tables.py --write"
