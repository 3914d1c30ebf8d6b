"""A plugin that fails at import, however it fails (sys.exit, KeyboardInterrupt, an error), is a
spec mistake: every command exits 2 naming the plugin, with no traceback."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

BASE = Path(__file__).resolve().parents[1] / "spec" / "base.yaml"
REPO = BASE.parents[2]


def rsrl(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)])}
    return subprocess.run(
        [sys.executable, "-m", "rsrl.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )


def spec_with(tmp_path: Path, extra: str) -> str:
    path = tmp_path / "spec.yaml"
    path.write_text(BASE.read_text() + f"workdir: {tmp_path / 'run'}\n" + extra)
    return str(path)


def assert_refused(result: subprocess.CompletedProcess, *named: str) -> None:
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output and "interrupted" not in output, output
    for text in named:
        assert text in result.stderr, output


@pytest.mark.parametrize("command", ["validate", "plan", "apply"])
@pytest.mark.parametrize(
    "body, raised",
    [
        ("import sys\nsys.exit()\n", "SystemExit"),
        ("import sys\nsys.exit(0)\n", "SystemExit: 0"),
        ("raise KeyboardInterrupt\n", "KeyboardInterrupt"),
    ],
)
def test_a_plugin_file_that_exits_at_import_is_named(tmp_path, command, body, raised):
    (tmp_path / "quits.py").write_text(body)
    result = rsrl(tmp_path, command, spec_with(tmp_path, f"plugins: [{tmp_path / 'quits.py'}]\n"))
    assert_refused(result, f"plugins[0]: cannot import plugin '{tmp_path / 'quits.py'}': {raised}")
    assert not (tmp_path / "run").exists()


def test_a_plugin_module_that_exits_at_import_is_named(tmp_path):
    (tmp_path / "quitting_plugin.py").write_text("import sys\nsys.exit(3)\n")
    result = rsrl(tmp_path, "validate", spec_with(tmp_path, "plugins: [quitting_plugin]\n"))
    assert_refused(result, "cannot import plugin 'quitting_plugin': SystemExit: 3")


def test_an_entry_point_verifier_that_exits_at_import_is_named(tmp_path):
    """A distribution on the path whose `rsrl.verifiers` entry point quits when imported."""
    (tmp_path / "quitting_verifier.py").write_text(
        "import sys\nsys.exit()\ndef verify(prompt, completion, answer, **fields):\n"
        "    return 1.0\n"
    )
    info = tmp_path / "quitting_verifier-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: quitting-verifier\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[rsrl.verifiers]\nquitter = quitting_verifier:verify\n")
    result = rsrl(tmp_path, "validate", spec_with(tmp_path, ""), "rl.verifier.name=quitter")
    assert_refused(
        result,
        "rl.verifier.name: cannot import the 'quitter' verifier's plugin "
        "(quitting_verifier:verify): SystemExit",
    )
