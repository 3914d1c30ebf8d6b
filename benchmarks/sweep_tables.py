"""The paper-question tables, generated from a sweep's results.json, never typed by hand.

    .venv/bin/python benchmarks/sweep_tables.py [RESULTS_JSON] [--write | --check]

Reads the results `rsrl sweep specs/sweep-paper.yaml` wrote (committed as
benchmarks/results/sweep-paper.json) and prints three markdown tables: each arm's means over
seeds, each arm minus cross-entropy (paired by seed, Holm-corrected), and one verdict per
direction the paper states. With --write, the tables replace what stands between the
`<!-- sweep-paper:begin -->` and `<!-- sweep-paper:end -->` markers of README.md and
benchmarks/RESULTS.md; with --check, it exits 1 if what stands there differs from them.

A verdict reads a comparison as:
- agrees: Holm-corrected p < alpha, with the paper's sign;
- contradicts: Holm-corrected p < alpha, with the opposite sign;
- bounded: the 95% interval lies within +-delta (delta per metric, stated in the table);
- undecided: none of these; the seeds a paired t-test would need at 80% power are given
  (under Holm when the seeds run would suffice for the comparison alone).
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from pathlib import Path

from rsrl.eval.compare import seeds_needed

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RESULTS = ROOT / "benchmarks" / "results" / "sweep-paper.json"
TARGETS = (ROOT / "README.md", ROOT / "benchmarks" / "RESULTS.md")
BEGIN, END = "<!-- sweep-paper:begin -->", "<!-- sweep-paper:end -->"

ENTROPY = "eval.heldout.pretrain.entropy"
PERPLEXITY = "eval.heldout.pretrain.perplexity"
TAIL = "eval.heldout.pretrain.tail_mass"
AVG = "eval.count.avg@64"
PASS = "eval.count.pass@64"

# The arms by their shaping (beta, lam_top, lam_tail); a key the sweep leaves out is CE's 0.
ARMS = {
    "CE": (0.0, 0.0, 0.0),
    "beta -0.25": (-0.25, 0.0, 0.0),
    "beta 0.5": (0.5, 0.0, 0.0),
    "lam_tail -0.1": (0.0, 0.0, -0.1),
    "lam_top 0.1": (0.0, 0.1, 0.0),
}
# delta of "bounded" per metric: a difference this small would not matter at this scale.
DELTAS = {ENTROPY: 0.02, PERPLEXITY: 0.5, TAIL: 0.002, AVG: 0.02, PASS: 0.02}


@dataclass(frozen=True)
class Direction:
    claim: str
    arm: str
    metric: str
    sign: int  # the paper's: +1 arm above CE, -1 below, 0 no change ("not hurt")


DIRECTIONS = (
    Direction("beta orders pre-trained entropy (sharper)", "beta -0.25", ENTROPY, -1),
    Direction("beta orders pre-trained entropy (flatter)", "beta 0.5", ENTROPY, +1),
    *(Direction("perplexity is not hurt", arm, PERPLEXITY, 0) for arm in list(ARMS)[1:]),
    Direction("lam_tail -0.1 lowers tail mass", "lam_tail -0.1", TAIL, -1),
    Direction("beta -0.25 beats CE after RL", "beta -0.25", AVG, +1),
    Direction("beta -0.25 beats CE after RL", "beta -0.25", PASS, +1),
    Direction("lam_tail -0.1 beats CE after RL", "lam_tail -0.1", AVG, +1),
    Direction("lam_tail -0.1 beats CE after RL", "lam_tail -0.1", PASS, +1),
    Direction("beta 0.5 does not beat CE after RL", "beta 0.5", AVG, -1),
    Direction("beta 0.5 does not beat CE after RL", "beta 0.5", PASS, -1),
)


def arm_label(objective: dict) -> str:
    """The ARMS name of a sweep row's or arm's `objective` value."""
    topk = objective.get("topk") or {}
    shaping = (
        objective.get("beta", 0.0),
        topk.get("lam_top", 0.0),
        topk.get("lam_tail", 0.0),
    )
    for label, arm in ARMS.items():
        if shaping == arm:
            return label
    raise ValueError(f"no arm of this table matches objective {objective}")


def arm_rank(objective: dict) -> int:
    """Position of an arm in ARMS, the order every table lists arms in."""
    return list(ARMS).index(arm_label(objective))


def verdict(c: dict, direction: Direction, alpha: float, tests: int) -> str:
    if c["ci_low"] is None:
        return "undecided: one seed, no interval"
    delta = DELTAS[direction.metric]
    bounded = -delta <= c["ci_low"] and c["ci_high"] <= delta
    if direction.sign == 0 and bounded:
        return f"bounded (within ±{delta:g})"
    if c["p_holm"] is not None and c["p_holm"] < alpha:
        paper = direction.sign or -1  # "not hurt": a lower perplexity agrees too
        return "agrees" if math.copysign(1, c["diff"]) == paper else "contradicts"
    if bounded:
        return f"bounded (within ±{delta:g})"
    needed = c.get("seeds_needed")
    if not needed:
        return "undecided: no difference seen"
    # seeds_needed plans at the uncorrected alpha: a difference it says the seeds run could
    # detect is one that the correction for the whole table took away. Plan again at
    # alpha / tests, the threshold Holm applies to the smallest p (so an upper bound).
    if needed <= c["seeds"]:
        sd = c["se"] * math.sqrt(c["seeds"])
        under_holm = seeds_needed(c["diff"], sd, alpha / tests)
        return f"undecided: p {c['p']:.2g} alone; needs {under_holm} seeds under Holm"
    return f"undecided: needs {needed} seeds"


def _short(metric: str) -> str:
    return metric.removeprefix("eval.").removeprefix("heldout.pretrain.")


def _pm(mean: float | None, se: float | None) -> str:
    if mean is None:
        return "-"
    return f"{mean:.4g}" if se is None or math.isnan(se) else f"{mean:.4g} ± {se:.2g}"


def arms_table(results: dict, metrics: list[str]) -> str:
    lines = [
        "| arm | seeds | " + " | ".join(_short(m) for m in metrics) + " |",
        "| --- | ---: |" + " ---: |" * len(metrics),
    ]
    for arm in sorted(results["arms"], key=lambda a: arm_rank(a["objective"])):
        cells = [_pm(arm.get(m), arm.get(f"{m}_se")) for m in metrics]
        lines.append(
            f"| {arm_label(arm['objective'])} | {arm['seeds']} | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines)


def comparisons_table(results: dict) -> str:
    lines = [
        "| arm - CE | metric | diff [95% CI] | p (Holm) | MDE (80% power) | seeds | seeds needed |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    # Python's sort is stable: the sweep's metric order is kept within each arm.
    for c in sorted(results["comparisons"], key=lambda c: arm_rank(c["arm"]["objective"])):
        lines.append(
            f"| {arm_label(c['arm']['objective'])} | {_short(c['metric'])} | "
            f"{_diff_ci(c)} | {_p(c['p_holm'])} | {_num(c['mde'])} | {c['seeds']} | "
            f"{c['seeds_needed'] or '-'} |"
        )
    return "\n".join(lines)


def verdicts_table(results: dict) -> str:
    alpha = results.get("alpha", 0.05)
    tests = sum(c["p"] is not None for c in results["comparisons"])
    by_key = {(arm_label(c["arm"]["objective"]), c["metric"]): c for c in results["comparisons"]}
    lines = [
        "| paper's direction | arm | metric | diff [95% CI] | p (Holm) | verdict |",
        "| --- | --- | --- | ---: | ---: | --- |",
    ]
    for d in DIRECTIONS:
        c = by_key[(d.arm, d.metric)]
        lines.append(
            f"| {d.claim} | {d.arm} | {_short(d.metric)} | "
            f"{_diff_ci(c)} | {_p(c['p_holm'])} | {verdict(c, d, alpha, tests)} |"
        )
    return "\n".join(lines)


def pass_at_k_table(results: dict, suite: str = "count") -> str:
    arms = sorted(results["arms"], key=lambda a: arm_rank(a["objective"]))
    ks = sorted({int(k) for a in arms for k in a["pass_at_k"][suite]["post_rl"]})
    lines = [
        "| arm | " + " | ".join(f"pass@{k} before -> after RL" for k in ks) + " |",
        "| --- |" + " ---: |" * len(ks),
    ]
    for arm in arms:
        curve = arm["pass_at_k"][suite]
        cells = [
            f"{_interval(curve['pre_rl'][str(k)])} -> {_interval(curve['post_rl'][str(k)])}"
            for k in ks
        ]
        lines.append(f"| {arm_label(arm['objective'])} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _diff_ci(c: dict) -> str:
    if c["diff"] is None:
        return "-"
    if c["ci_low"] is None:
        return f"{c['diff']:+.4f} (one seed)"
    return f"{c['diff']:+.4f} [{c['ci_low']:+.4f}, {c['ci_high']:+.4f}]"


def _interval(point: dict) -> str:
    if point["low"] is None:  # one seed: no interval
        return f"{point['mean']:.3f}"
    return f"{point['mean']:.3f} [{point['low']:.3f}, {point['high']:.3f}]"


def _p(p: float | None) -> str:
    return "-" if p is None else f"{p:.3g}"


def _num(x: float | None) -> str:
    return "-" if x is None or math.isnan(x) else f"{x:.4f}"


def render(results: dict, source: str) -> str:
    counts = sorted({a["seeds"] for a in results["arms"]})
    seeds = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
    metrics = [ENTROPY, PERPLEXITY, TAIL, "eval.pre_rl.count.avg@64", AVG, PASS]
    return "\n\n".join(
        [
            f"Generated by `benchmarks/sweep_tables.py` from `{source}` ({seeds} seeds per arm). "
            f"Paired by seed; p values Holm-corrected over all {len(results['comparisons'])} "
            f"comparisons; MDE: the smallest difference a paired t-test at alpha "
            f"{results.get('alpha', 0.05)} detects with 80% power at the seeds run.",
            verdicts_table(results),
            "Per arm, mean ± standard error over seeds:",
            arms_table(results, metrics),
            "Every arm minus cross-entropy:",
            comparisons_table(results),
            "Pass@k on the counting problems before and after RL, mean over seeds [95% bootstrap "
            "interval over seeds]:",
            pass_at_k_table(results),
        ]
    )


def write_between_markers(path: Path, text: str) -> None:
    content = path.read_text()
    if BEGIN not in content or END not in content:
        raise SystemExit(f"{path}: no {BEGIN} ... {END} markers to write between")
    head, rest = content.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    path.write_text(f"{head}{BEGIN}\n{text}\n{END}{tail}")


def between_markers(path: Path) -> str:
    content = path.read_text()
    if BEGIN not in content or END not in content:
        raise SystemExit(f"{path}: no {BEGIN} ... {END} markers")
    return content.split(BEGIN, 1)[1].split(END, 1)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="?", type=Path, default=DEFAULT_RESULTS)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="update README.md and RESULTS.md")
    mode.add_argument(
        "--check", action="store_true", help="exit 1 if README.md or RESULTS.md differ"
    )
    args = parser.parse_args()
    source = args.results.resolve()
    name = source.relative_to(ROOT) if source.is_relative_to(ROOT) else source
    text = render(json.loads(args.results.read_text()), str(name))
    print(text)
    if args.write:
        for target in TARGETS:
            write_between_markers(target, text)
    if args.check:
        stale = [t for t in TARGETS if between_markers(t).strip() != text.strip()]
        for target in TARGETS:
            state = "differs: rerun with --write" if target in stale else "up to date"
            print(f"{target.relative_to(ROOT)}: {state}")
        if stale:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
