"""Apply a spec from Python and read its metrics.

    python examples/apply_programmatically.py [WORKDIR]

Runs the quickstart's tokenizer, data and a short pre-training with held-out evaluation
(overrides keep it to a minute or two), then prints the stage outputs and the metrics.
A second run finds every stage cached.
"""

import sys
from pathlib import Path

from rsrl.eval.results import read_eval_metrics
from rsrl.pipeline.apply import apply_plan
from rsrl.pipeline.plan import compile_plan
from rsrl.pipeline.session import connect
from rsrl.spec import load_spec

REPO = Path(__file__).resolve().parents[1]

if __name__ == "__main__":
    workdir = sys.argv[1] if len(sys.argv) > 1 else "runs/example-api"
    spec = load_spec(
        REPO / "specs" / "quickstart.yaml",
        [
            f"workdir={workdir}",
            "stages.midtrain=null",
            "rl=null",
            "eval.suites=[]",
            "stages.pretrain.tokens=40000",
            "stages.pretrain.seq_len=128",
            "eval.heldout_text.tokens=2048",
        ],
    )
    connect()  # embedded Ray, or $RAY_ADDRESS
    for outcome in apply_plan(compile_plan(spec)):
        print(f"{outcome.stage:<14} {outcome.status.value:<9} {outcome.out_dir}")
        if outcome.stage == "eval":
            heldout = read_eval_metrics(outcome.out_dir)["heldout"]["pretrain"]
            print(
                f"held-out perplexity {heldout['perplexity']:.2f}, entropy {heldout['entropy']:.3f}"
            )
