"""Escapes from the `python` sandbox that get around the audit hook (issue 14).

Every hostile completion runs twice: with the child's audit hook (the normal case) and
without it, so what holds is shown to hold by the kernel's layers alone (namespaces,
seccomp, the user switch, rlimits). Each must score 0 within its limit, leave no process
behind (neither a sandbox interpreter nor anything whose command line carries the run's
marker), write nothing the host can see, leak no secret into the verdict, and leave the
test process alive.
"""

import os
import time
import uuid
from pathlib import Path

import pytest

import rsrl
from rsrl.verifiers import sandbox
from rsrl.verifiers.sandbox import CHILD_SCRIPT, SandboxLimits, missing_layers, run_tests

LIMITS = SandboxLimits(wall_s=1.5, cpu_s=1.0, memory_mb=256, output_bytes=1 << 16, tmp_mb=8)
SLACK_S = 3.0  # process start and a busy 2-core machine
TESTS = ["assert double(2) == 4"]
SECRET = "rsrl-fake-ray-token-" + uuid.uuid4().hex

# {out}: a path under the host's /tmp; {marker}: unique to the case, for the process scan.
SPAWN = "/bin/sh -c 'while :; do echo {marker} >> {out}; sleep 0.05; done'"
FORK_WRITER = (
    "import os, time\n"
    "def writer():\n"
    "    while True:\n"
    "        open('{out}', 'a').write('{marker}')\n"
    "        time.sleep(0.05)\n"
)
HOSTILE = {
    # process creation, by every route we know of
    "subprocess": f"import subprocess\nsubprocess.Popen({SPAWN!r}, shell=True)\n"
    "raise SystemExit('SPAWNED')",
    "os-system": f"import os\nif os.system({SPAWN + ' &'!r}) == 0:\n"
    "    raise SystemExit('SPAWNED')",
    "os-fork": FORK_WRITER + "if os.fork() == 0:\n    writer()\nraise SystemExit('SPAWNED')",
    "os-forkpty": FORK_WRITER + "if os.forkpty()[0] == 0:\n    writer()\n"
    "raise SystemExit('SPAWNED')",
    "os-posix-spawn": f"import os, shlex\n"
    f"os.posix_spawn('/bin/sh', shlex.split({SPAWN!r}), dict())\n"
    "raise SystemExit('SPAWNED')",
    "os-execv": f"import os, shlex\nos.execv('/bin/sh', shlex.split({SPAWN!r}))",
    "posixsubprocess": (
        f"import _posixsubprocess, os, shlex\nr, w = os.pipe()\n"
        f"args = [a.encode() for a in shlex.split({SPAWN!r})]\n"
        "_posixsubprocess.fork_exec(args, [args[0]], True, (w,), None, None, -1, -1, -1, -1,"
        " -1, -1, r, w, True, True, -1, None, None, None, -1, None, False)\n"
        "raise SystemExit('SPAWNED')"
    ),
    "ctypes-fork": FORK_WRITER + "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
    "pid = libc.fork()\nif pid == 0:\n    writer()\n"
    "if pid > 0:\n    raise SystemExit('SPAWNED')\n"
    "raise OSError(ctypes.get_errno(), 'fork')",
    "ctypes-raw-clone": FORK_WRITER + "import ctypes, signal\n"
    "libc = ctypes.CDLL(None, use_errno=True)\n"
    "pid = libc.syscall(56, signal.SIGCHLD, 0, 0, 0, 0)\n"
    "if pid == 0:\n    writer()\n"
    "if pid > 0:\n    raise SystemExit('SPAWNED')\n"
    "raise OSError(ctypes.get_errno(), 'clone')",
    "ctypes-execve": f"import ctypes, shlex\nlibc = ctypes.CDLL(None, use_errno=True)\n"
    f"argv = [a.encode() for a in shlex.split({SPAWN!r})] + [None]\n"
    "libc.execv(b'/bin/sh', (ctypes.c_char_p * len(argv))(*argv))\n"
    "raise OSError(ctypes.get_errno(), 'execv')",
    "multiprocessing": FORK_WRITER + "import multiprocessing\n"
    "multiprocessing.Process(target=writer).start()\n"
    "raise SystemExit('SPAWNED')",
    "daemon-double-fork": FORK_WRITER + "if os.fork() == 0:\n    os.setsid()\n"
    "    if os.fork() == 0:\n        writer()\n"
    "    os._exit(0)\nraise SystemExit('SPAWNED')",
    "fork-bomb": "import ctypes\nlibc = ctypes.CDLL(None)\nwhile True:\n    libc.fork()",
    # writes outside a private tmp
    "write-tmp": "open('{out}', 'w').write('{marker}')",
    "write-dev-shm": "open('/dev/shm/{marker}', 'w').write('{marker}')",
    "write-home": "open('/root/{marker}', 'w').write('{marker}')",
    "write-repo": "open('{repo}/{marker}', 'w').write('{marker}')",
    "overwrite-world-writable": "open('{canary}', 'w').write('{marker}')",
    "fill-private-tmp": "i = 0\nwhile True:\n    open(f'/tmp/f{{i}}', 'wb').write(b'x' * 60000)\n"
    "    i += 1",
    # secrets
    "read-root-only-token": "raise ValueError(open('{secret}').read())",
    "read-world-readable-token": "raise ValueError(open('{readable}').read())",
    "read-environment": "import os\nraise ValueError(repr(dict(os.environ)))",
    "read-init-environ": "raise ValueError(open('/proc/1/environ').read())",
    "read-host-process-environ": "raise ValueError(open('/proc/{host_pid}/environ').read())",
    # signals to the parent and to everything
    "kill-parent": "import os\nos.kill(os.getppid(), 9)",
    "kill-pid-1": "import os\nos.kill(1, 9)",
    "kill-everything": "import os\nos.kill(-1, 9)",
    "kill-host-pid": "import os\nos.kill({host_pid}, 9)",
    # resources
    "memory-hog": "chunks = []\nwhile True:\n    chunks.append(bytearray(2**24))",
    "infinite-loop": "while True:\n    pass",
    "huge-output": "while True:\n    print('spam' * 1000)",
}
# Cases that only hold with the mount namespace (the private root) or the PID namespace.
NEEDS_MOUNT_NS = {
    "write-tmp",
    "write-dev-shm",
    "read-world-readable-token",
    "overwrite-world-writable",
}


def processes_with(*needles: bytes) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes() if entry.name.isdigit() else b""
        except OSError:  # it exited while we looked
            continue
        if any(needle in cmdline for needle in needles):
            pids.append(int(entry.name))
    return pids


@pytest.fixture(params=[True, False], ids=["audit-hook", "kernel-only"])
def audit_hook(request, monkeypatch):
    monkeypatch.setattr(sandbox, "AUDIT_HOOK", request.param)
    return request.param


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_completion_scores_zero_and_leaves_the_host_unharmed(
    case, audit_hook, tmp_path, monkeypatch
):
    missing = missing_layers()
    if case in NEEDS_MOUNT_NS and any(m.startswith("mount") for m in missing):
        pytest.skip("no mount namespace on this machine")
    marker = f"rsrl-escape-{uuid.uuid4().hex}"
    out = Path("/tmp") / marker
    repo = Path(rsrl.__file__).resolve().parents[1]
    secret = tmp_path / "ray_auth_token"
    secret.write_text(SECRET)
    secret.chmod(0o600)
    readable = tmp_path / "world_readable_token"
    readable.write_text(SECRET)
    readable.chmod(0o644)
    tmp_path.chmod(0o777)
    canary = tmp_path / "canary"
    canary.write_text("original")
    canary.chmod(0o666)
    monkeypatch.setenv("RAY_AUTH_TOKEN", SECRET)
    code = HOSTILE[case].format(
        out=out,
        marker=marker,
        repo=repo,
        secret=secret,
        readable=readable,
        canary=canary,
        host_pid=os.getpid(),
    )
    start = time.perf_counter()
    report = run_tests(code, TESTS, LIMITS)
    elapsed = time.perf_counter() - start
    time.sleep(0.2)  # anything that escaped would write again by now
    try:
        assert report.passed == 0, report
        assert elapsed < LIMITS.wall_s + SLACK_S, f"took {elapsed:.1f}s"
        assert "SPAWNED" not in report.error, report
        assert SECRET not in report.error, report
        assert processes_with(marker.encode(), CHILD_SCRIPT.name.encode()) == []
        assert not out.exists()
        assert not Path("/dev/shm", marker).exists()
        assert not Path("/root", marker).exists()
        assert not (repo / marker).exists()
        assert canary.read_text() == "original"
    finally:
        for path in [out, Path("/dev/shm", marker), Path("/root", marker), repo / marker]:
            path.unlink(missing_ok=True)


def test_the_sandbox_has_every_layer_on_this_machine():
    """Where the kernel allows them all (CI's machines do), none is quietly missing."""
    if os.environ.get("RSRL_SANDBOX_DEGRADED_OK"):
        pytest.skip("RSRL_SANDBOX_DEGRADED_OK is set")
    assert missing_layers() == ()


@pytest.mark.skipif(bool(missing_layers()), reason="a sandbox layer is missing here")
def test_the_worker_sees_only_its_private_root():
    checks = [
        "assert os.getpid() == 2 and os.getppid() == 1",
        "assert sorted(p for p in os.listdir('/proc') if p.isdigit()) == ['1', '2']",
        "assert os.getcwd() == '/tmp/work' and os.listdir('/tmp') == ['work']",
        "assert not os.path.exists('/work') and not os.path.exists('/root/.ssh')",
        "assert 'Seccomp:\\t2' in open('/proc/self/status').read()",
        "assert 'NoNewPrivs:\\t1' in open('/proc/self/status').read()",
        "import json, decimal, sqlite3",
    ]
    report = run_tests("import os", checks, LIMITS)
    assert report.passed == len(checks), report
