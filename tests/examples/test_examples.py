"""Every script in examples/ runs as a user would run it."""

import re
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run(script: str, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result.stdout


def test_loss_in_your_loop_sharpens_with_negative_beta():
    entropy = {
        m.group(1): float(m.group(2))
        for m in re.finditer(
            r"beta=([+-]\d\.\d\d) lam_tail=\+0\.00: nll \S+ entropy (\S+)",
            run("loss_in_your_loop.py"),
        )
    }
    assert entropy["-0.25"] < entropy["+0.00"] < entropy["+0.50"]


def test_custom_verifier_is_used_by_name():
    out = run("custom_verifier.py").splitlines()
    assert out == [
        "ends-with-answer -> VerifyResult(score=1.0, reason='')",
        "ends-with-answer -> VerifyResult(score=0.5, reason='answer not at the end')",
    ]


def test_apply_programmatically_then_cached(tmp_path):
    first = run("apply_programmatically.py", str(tmp_path))
    assert "held-out perplexity" in first
    second = run("apply_programmatically.py", str(tmp_path))
    statuses = [
        line.split()[1]
        for line in second.splitlines()
        if line.startswith(("tokenizer", "data-", "pretrain", "eval", "report"))
    ]
    assert statuses and all(s == "cached" for s in statuses), second
