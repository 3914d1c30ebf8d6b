"""`rsrl apply` on bad input, as a user runs it: rsrl's message is the last thing printed."""

import subprocess
import sys
from pathlib import Path

import pytest

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


@pytest.mark.parametrize(
    "command, under",
    [("apply", ""), ("apply", "run"), ("plan", "")],
    ids=["apply-a-file", "apply-under-a-file", "plan-a-file"],
)
def test_a_workdir_that_is_a_file_is_a_spec_mistake(tmp_path, command, under):
    taken = tmp_path / "taken"
    taken.write_text("not a directory")
    workdir = taken / under if under else taken
    result = subprocess.run(
        [sys.executable, "-m", "rsrl.cli", command, str(QUICKSTART), f"workdir={workdir}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=120,
    )
    output = result.stdout
    assert result.returncode == 2, output
    assert "Traceback" not in output and "Error" not in output, output
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    problem = f"workdir: {taken} is a file" if under else "workdir: is an existing file"
    assert lines[-1].startswith(problem), output
    assert lines[-1].endswith(f", got '{workdir}'"), output
    assert len(lines) == 2 and "1 problem" in lines[0], output  # nothing ran, Ray never started
    assert taken.read_text() == "not a directory"
