"""Every malformed spec in tests/spec/bad exits 2, names what is wrong, and prints no traceback."""

import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).parent
BAD = sorted((HERE / "bad").glob("*.yaml"))


def expected_message(path: Path) -> str:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# expect: "), f"{path.name} must start with '# expect: ...'"
    return first.removeprefix("# expect: ")


def rsrl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rsrl.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_corpus_is_large_enough():
    assert len(BAD) >= 25


def test_base_spec_is_valid():
    result = rsrl("validate", str(HERE / "base.yaml"))
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_malformed_spec_exits_2_with_field_path(path: Path):
    result = rsrl("validate", str(path))
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert expected_message(path) in result.stderr, output
    assert "Traceback" not in output


@pytest.mark.parametrize("command", ["plan", "apply"])
def test_every_command_rejects_a_bad_spec(command):
    result = rsrl(command, str(HERE / "bad" / "group_size_one.yaml"))
    assert result.returncode == 2
    assert "rl.group_size" in result.stderr and "Traceback" not in result.stderr


def test_bad_override_exits_2():
    result = rsrl("validate", str(HERE / "base.yaml"), "objective.betaa=0.1")
    assert result.returncode == 2
    assert "did you mean 'beta'" in result.stderr


def test_missing_spec_file_exits_2():
    result = rsrl("validate", "no/such/spec.yaml")
    assert result.returncode == 2 and "no such spec file" in result.stderr


@pytest.mark.parametrize("command", ["validate", "plan", "apply"])
def test_an_alias_bomb_is_refused_at_once(command):
    start = time.monotonic()
    result = rsrl(command, str(HERE / "bad" / "alias_bomb.yaml"))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "expands to more than" in result.stderr and "Traceback" not in result.stderr
    assert time.monotonic() - start < 20  # the interpreter and imports; the bomb took minutes


def test_an_environment_resolver_in_an_override_exits_2(monkeypatch):
    monkeypatch.setenv("RSRL_TEST_SECRET", "hunter2")
    result = rsrl("validate", "--print", str(HERE / "base.yaml"), "name=${oc.env:RSRL_TEST_SECRET}")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "resolver '${oc.env:...}' is not allowed" in result.stderr
    assert "hunter2" not in result.stdout + result.stderr


def test_a_list_item_past_the_end_names_the_override_and_the_length():
    result = rsrl("validate", str(HERE / "base.yaml"), "stages.pretrain.data.5.weight=2")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert (
        "override 'stages.pretrain.data.5.weight=2': 'stages.pretrain.data' is a list of 2 "
        "item(s) (indices 0 to 1), so it has no item 5"
    ) in result.stderr, result.stderr
