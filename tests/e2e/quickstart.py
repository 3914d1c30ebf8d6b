"""Running rsrl's CLI from the e2e tests, and the README's main job with fewer tokens and steps."""

import re
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
    """Stage -> "ran" | "cached": the end lines of the stages that ran, then the table of
    those cached that `rsrl apply` prints under its 'done in' line."""
    statuses = {m[1]: "ran" for m in re.finditer(r"^(\S+): done in ", stdout, re.MULTILINE)}
    for line in stdout.split("\ndone in ", 1)[1].splitlines()[2:]:  # the line, the header
        cells = line.split()
        if line.startswith("  ") and len(cells) == 3 and cells[1] == "cached":
            statuses[cells[0]] = "cached"
    return statuses
