"""`rsrl apply` on bad input, as a user runs it: rsrl's message is the last thing printed."""

import subprocess
import sys
from pathlib import Path

QUICKSTART = Path(__file__).resolve().parents[2] / "specs" / "quickstart.yaml"


def test_bad_jsonl_line_ends_with_rsrl_message_and_its_line(tmp_path):
    data = tmp_path / "bad.jsonl"
    data.write_text('{"text": "one"}\n{"text": "two"}\n{not json\n{"text": "four"}\n')
    # The tokenizer stage reads the file first and fails; every stage after it (both data
    # stages, training, rl, eval, report) was submitted and is never run.
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "rsrl.cli",
            "apply",
            str(QUICKSTART),
            f"workdir={tmp_path / 'w'}",
            f"stages.pretrain.data.0.path={data}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=300,
    )
    output = result.stdout
    assert result.returncode == 2, output
    assert "Traceback" not in output and "Unhandled error" not in output, output
    lines = [line for line in output.splitlines() if line.strip()]
    assert lines[-1].startswith("rsrl: the stages finished before it are kept"), output
    assert lines[-2].startswith("rsrl: stage 'tokenizer' failed"), output
    assert f"{data}:line 3: not valid JSON" in lines[-2], output
