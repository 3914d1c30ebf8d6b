"""Running rsrl's CLI from the e2e tests, and the README's main job with fewer tokens and steps."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
QUICK = [
    "stages.pretrain.tokens=120000",
    "stages.midtrain.tokens=40000",
    "stages.midtrain.seq_len=256",
    # RL as the quickstart runs it (20 steps of 8 prompts x 8 samples): the run the GRPO
    # learning test reads its gain from.
    "rl.eval_every=10",
    "rl.eval_problems=16",
    "eval.suites.0.k=[1,4]",
    "eval.heldout_text.tokens=4096",
]


def rsrl_cli(*args: str) -> subprocess.CompletedProcess:
    """`rsrl ARGS...` in a fresh process, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "rsrl.cli", *args], capture_output=True, text=True, timeout=1200
    )


def apply_quickstart(workdir: Path, *overrides: str) -> subprocess.CompletedProcess:
    """`rsrl apply specs/quickstart.yaml` with QUICK, then `overrides`, into `workdir`."""
    return rsrl_cli(
        "apply", str(REPO / "specs" / "quickstart.yaml"), f"workdir={workdir}", *QUICK, *overrides
    )


def stage_dir(workdir: Path, name: str) -> Path:
    (found,) = workdir.glob(f"{name}-*/")
    return found


def stage_statuses(stdout: str) -> dict[str, str]:
    """Stage -> "cached" | "ran", from the table `rsrl apply` prints when done."""
    rows = stdout.split("done\n", 1)[1].splitlines()[1:]
    return {
        line.split()[0]: line.split()[1]
        for line in rows
        if line.strip() and not line.startswith("report:")
    }
