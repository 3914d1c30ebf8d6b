"""The paper's pre-training observation at toy scale, through the real pipeline.

Same tiny model, same synthetic data, same steps; only the objective changes:
beta in {-0.25, 0, 0.5} (lam = 0), and CE with lam_tail = -0.1. Expected (arXiv 2512.22955):
held-out global entropy ordered beta=-0.25 < 0 < 0.5 with perplexities within 10% of each
other, and lam_tail=-0.1 lowering the tail mass against CE. Every run shares one workdir, so
the tokenizer and the data are prepared once (the stage cache) and only pretrain + eval run.

    python benchmarks/entropy_order.py [--tokens 400000] [--workdir runs/entropy-order]
        [--runs NAME ...]     # a subset of the four (a smoke run: --tokens 8192 --runs beta=-0.25)
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from rsrl.eval.results import read_eval_metrics
from rsrl.pipeline.apply import apply_plan
from rsrl.pipeline.plan import compile_plan
from rsrl.pipeline.session import connect
from rsrl.spec import load_spec

REPO = Path(__file__).resolve().parents[1]
BATCH_TOKENS = 4096
RUNS = {
    "beta=-0.25": ["objective.beta=-0.25"],
    "beta=0 (CE)": ["objective.beta=0.0"],
    "beta=0.5": ["objective.beta=0.5"],
    "CE, lam_tail=-0.1": ["objective.beta=0.0", "objective.topk.lam_tail=-0.1"],
}


def heldout_after_pretrain(workdir: Path, tokens: int, overrides: list[str]) -> dict:
    spec = load_spec(
        REPO / "specs" / "quickstart.yaml",
        [
            f"workdir={workdir}",
            "stages.midtrain=null",
            "rl=null",
            "eval.suites=[]",
            "objective.topk.lam_tail=0.0",
            f"stages.pretrain.tokens={tokens}",
            "stages.pretrain.seq_len=128",
            f"stages.pretrain.batch_tokens={BATCH_TOKENS}",
            # 10 warm-up steps, fewer when --tokens leaves the stage fewer than 20 steps
            # (the decay takes the second half)
            f"stages.pretrain.lr.warmup_steps={min(10, tokens // BATCH_TOKENS // 2)}",
            "stages.pretrain.lr.peak=2e-3",
            "stages.pretrain.lr.final=2e-4",
            "stages.pretrain.lr.decay_fraction=0.5",
            "eval.heldout_text.tokens=16384",
            *overrides,
        ],
    )
    outcomes = apply_plan(compile_plan(spec))
    eval_dir = next(o.out_dir for o in outcomes if o.stage == "eval")
    return read_eval_metrics(eval_dir)["heldout"]["pretrain"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=400_000)
    parser.add_argument("--workdir", type=Path, default=REPO / "runs" / "entropy-order")
    parser.add_argument(
        "--runs",
        nargs="+",
        choices=list(RUNS),
        default=list(RUNS),
        help="the runs to make (default: all four); a verdict needs the runs it compares",
    )
    args = parser.parse_args()
    connect()
    results = {
        name: heldout_after_pretrain(args.workdir, args.tokens, RUNS[name]) for name in args.runs
    }
    print(f"tiny-dense, {args.tokens} pre-training tokens each, held-out synth://heldout")
    print(f"{'run':<20}{'perplexity':>12}{'entropy':>10}{'local ent.':>12}{'tail mass':>11}")
    for name, r in results.items():
        print(
            f"{name:<20}{r['perplexity']:>12.3f}{r['entropy']:>10.3f}"
            f"{r['local_entropy']:>12.3f}{r['tail_mass']:>11.4f}"
        )
    betas = ("beta=-0.25", "beta=0 (CE)", "beta=0.5")
    if all(n in results for n in betas):
        ent = [results[n]["entropy"] for n in betas]
        ordered = ent[0] < ent[1] < ent[2]
        print(f"entropy ordered beta=-0.25 < 0 < 0.5: {'yes' if ordered else 'NO'}")
    if len(results) > 1:
        ppl = [r["perplexity"] for r in results.values()]
        print(f"perplexity spread: {max(ppl) / min(ppl) - 1:.1%} (expected within 10%)")
    if "CE, lam_tail=-0.1" in results and "beta=0 (CE)" in results:
        tail = results["CE, lam_tail=-0.1"]["tail_mass"] / results["beta=0 (CE)"]["tail_mass"]
        print(f"tail mass, lam_tail=-0.1 / CE: {tail:.2f} (expected < 1)")


if __name__ == "__main__":
    main()
