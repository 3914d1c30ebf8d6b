"""The `python` verifier against hostile completions: each scores 0 within its limit, and
the host is unharmed (no file written outside the sandbox, no connection made, no process
left behind, no temporary directory left behind)."""

import os
import socket
import time
import uuid
from pathlib import Path

import pytest

from rsrl.verifiers import load_verifier, score
from rsrl.verifiers.sandbox import (
    CHILD_SCRIPT,
    SandboxLimits,
    _unprivileged_ids,
    missing_layers,
    run_tests,
)

LIMITS = dict(wall_s=2.0, cpu_s=1.0, memory_mb=256, output_bytes=1 << 16)
SLACK_S = 3.0  # process start and a busy 2-core machine
TESTS = ["assert double(2) == 4", "assert double(-3) == -6"]


def sandbox_processes() -> list[int]:
    """Pids of live sandbox children (their command line names the child script)."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes() if entry.name.isdigit() else b""
            if CHILD_SCRIPT.name.encode() in cmdline:
                pids.append(int(entry.name))
        except OSError:  # it exited while we looked
            pass
    return pids


def sandbox_dirs() -> set[str]:
    return {p.name for p in Path(os.environ.get("TMPDIR", "/tmp")).glob("rsrl-sandbox-*")}


@pytest.fixture
def verify_python():
    return load_verifier("python")


@pytest.fixture
def host_unharmed():
    """Fails the test if a sandbox process or directory outlives the call."""
    dirs_before = sandbox_dirs()
    yield
    assert sandbox_processes() == []
    assert sandbox_dirs() <= dirs_before


def run_hostile(verify_python, code: str, limit_s: float):
    start = time.perf_counter()
    result = score(
        verify_python,
        "",
        f"```python\n{code}\n```",
        "",
        timeout_s=limit_s + 10,
        tests=TESTS,
        **LIMITS,
    )
    elapsed = time.perf_counter() - start
    assert result.score == 0.0, result
    assert elapsed < limit_s + SLACK_S, f"took {elapsed:.1f}s"
    return result


def test_correct_code_scores_one_and_may_use_its_work_dir(verify_python, host_unharmed):
    code = (
        "open('scratch.txt', 'w').write('kept in the sandbox')\ndef double(x):\n    return 2 * x\n"
    )
    result = score(
        verify_python,
        "",
        f"Here:\n```python\n{code}```\ndone",
        "",
        timeout_s=30,
        tests=TESTS,
        **LIMITS,
    )
    assert result.score == 1.0, result


def test_wrong_code_scores_zero_and_says_which_test_failed(verify_python, host_unharmed):
    result = score(
        verify_python,
        "",
        "def double(x):\n    return x + 2\n",
        "",
        timeout_s=30,
        tests=TESTS,
        **LIMITS,
    )
    assert result.score == 0.0
    assert "1/2 tests passed" in result.reason and "test 1: AssertionError" in result.reason


@pytest.mark.parametrize(
    "code, why, limit_s",
    [
        ("while True:\n    pass", "CPU-time limit", LIMITS["cpu_s"]),
        ("import time\ntime.sleep(60)", "wall-time limit", LIMITS["wall_s"]),
        ("x = bytearray(64 * 2**30)", "MemoryError", 0.0),
        ("chunks = []\nwhile True:\n    chunks.append(bytearray(2**24))", "MemoryError", 0.0),
        ("import os\nwhile True:\n    os.fork()", "os.fork is not allowed", 0.0),
        ("import os\nos.system(':(){ :|:& };:')", "os.system is not allowed", 0.0),
        ("import subprocess\nsubprocess.run(['sleep', '60'])", "subprocess.Popen", 0.0),
        ("print('x' * 10**7)", "output limit", 0.0),
        ("while True:\n    print('spam' * 1000)", "output limit", 0.0),
        ("import sys\nsys.exit(0)", "SystemExit", 0.0),
        ("import os\nos._exit(0)", "without a verdict", 0.0),
        ("import ctypes\nctypes.CDLL(None).fork()", "ctypes", 0.0),
        ("import resource\nresource.setrlimit(resource.RLIMIT_CPU, (100, 100))", "setrlimit", 0.0),
    ],
    ids=[
        "infinite-loop",
        "sleep",
        "huge-allocation",
        "growing-allocation",
        "fork-bomb",
        "shell-fork-bomb",
        "subprocess",
        "print-megabytes",
        "print-forever",
        "sys-exit",
        "os-exit",
        "ctypes",
        "raise-limits",
    ],
)
def test_hostile_code_scores_zero_within_its_limit(
    verify_python, host_unharmed, code, why, limit_s
):
    result = run_hostile(verify_python, code, limit_s)
    assert why in result.reason


def test_writing_outside_the_work_dir_is_refused(verify_python, host_unharmed, tmp_path):
    canary = tmp_path / "canary.txt"
    canary.write_text("original")
    target = Path("/tmp") / f"rsrl-escape-{uuid.uuid4().hex}"
    for code in [
        f"open({str(target)!r}, 'w').write('escaped')",
        f"import pathlib\npathlib.Path({str(canary)!r}).write_text('overwritten')",
        f"import os\nos.remove({str(canary)!r})",
        f"import os\nos.rename({str(canary)!r}, {str(target)!r})",
        f"import shutil\nshutil.rmtree({str(tmp_path)!r})",
    ]:
        result = run_hostile(verify_python, code, 0.0)
        assert "not allowed" in result.reason
    assert not target.exists()
    assert canary.read_text() == "original"


def test_network_is_refused(verify_python, host_unharmed):
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        server.settimeout(0.5)
        for code in [
            f"import socket\nsocket.create_connection(('127.0.0.1', {port}))",
            f"import _socket\n_socket.socket().connect(('127.0.0.1', {port}))",
            f"import urllib.request\nurllib.request.urlopen('http://127.0.0.1:{port}')",
        ]:
            result = run_hostile(verify_python, code, 0.0)
            assert "socket" in result.reason
        with pytest.raises(socket.timeout):
            server.accept()


@pytest.mark.skipif(
    any(m.startswith("network") for m in missing_layers()),
    reason="no network namespace on this machine",
)
def test_child_sees_an_empty_network_namespace():
    """The kernel-level layer under the audit hook: only a loopback interface, down."""
    report = run_tests(
        "interfaces = open('/proc/net/dev').read().split('\\n')[2:]",
        ["assert [i.split(':')[0].strip() for i in interfaces if i] == ['lo']"],
        SandboxLimits(**LIMITS),
    )
    assert report.passed == 1, report


@pytest.mark.skipif(_unprivileged_ids() is None, reason="not root, or no usable `nobody`")
def test_child_runs_as_nobody_when_the_host_is_root():
    uid = _unprivileged_ids()[0]
    report = run_tests(
        "import os", [f"assert os.getuid() == os.geteuid() == {uid}"], SandboxLimits(**LIMITS)
    )
    assert report.passed == 1, report


def test_early_exit_cannot_fake_a_pass(verify_python, host_unharmed):
    """A forged verdict line without the parent's nonce is ignored."""
    code = (
        'import os\nos.write(1, b\'\\nabc {"passed": 2, "total": 2, "error": ""}\\n\')\nos._exit(0)'
    )
    run_hostile(verify_python, code, 0.0)
