"""Run untrusted Python (a completion's code and an item's tests) in a limited subprocess.

What holds, and by what:
- wall time: the parent waits on a pidfd for `wall_s`, then SIGKILLs the child's whole
  process group (the child starts its own session); the group is killed after a normal
  exit too, so nothing it left behind lives on.
- CPU time, memory, output: RLIMIT_CPU, RLIMIT_AS (`memory_mb`), RLIMIT_FSIZE (stdout and
  stderr go to a file, so printing megabytes hits the same cap as writing a large file).
- user: when the parent is root the child drops to `nobody` before the code runs, so the
  kernel refuses writes to most of the file system, and RLIMIT_NPROC caps processes.
- network: an empty network namespace (`unshare --net`, or `--user --map-root-user --net`
  when not root) where the kernel allows it; otherwise only the audit hook below, and a
  warning is logged once.
- fresh temporary work directory as cwd and HOME, removed afterwards; minimal environment.
- the child's audit hook (see sandbox_child.py) refuses sockets, fork/exec/subprocess,
  writes and file operations outside the work directory, rlimit changes and ctypes.

What does not hold: the audit hook is a tripwire, not a boundary (PEP 578), and without a
namespace or a user switch code that gets around it can reach the network or write
wherever the parent's user can. Reads are not confined. For untrusted code at scale run the
verifiers inside a container or a VM (gVisor, nsjail, firecracker); this is the layer
that keeps a policy's mistakes and reward hacks from harming the host running training.

No signals are installed in the parent, so `run_tests` is safe to call from any thread.
"""

from __future__ import annotations

import json
import logging
import os
import pwd
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path

log = logging.getLogger("rsrl")

CHILD_SCRIPT = Path(__file__).with_name("sandbox_child.py")
MAX_CODE_CHARS = 200_000
VERDICT_TAIL_BYTES = 8192  # the verdict line is the last thing the child writes


@dataclass(frozen=True)
class SandboxLimits:
    """Per-run limits; defaults fit short programs with a few asserts."""

    wall_s: float = 5.0
    cpu_s: float = 5.0
    memory_mb: int = 512
    output_bytes: int = 1 << 20  # stdout + stderr, and any single file the code writes
    max_processes: int = 256  # RLIMIT_NPROC for `nobody` (shared by concurrent runs)


@dataclass(frozen=True)
class TestReport:
    passed: int
    total: int
    error: str  # first failure, or why the run gave no verdict; "" when all passed


def run_tests(code: str, tests: list[str], limits: SandboxLimits = SandboxLimits()) -> TestReport:
    """Exec `code`, then each of `tests` in its namespace, in a sandboxed subprocess."""
    if len(code) > MAX_CODE_CHARS:
        return TestReport(0, len(tests), f"code longer than {MAX_CODE_CHARS} characters")
    nonce = secrets.token_hex(16)
    with tempfile.TemporaryDirectory(prefix="rsrl-sandbox-") as root:
        work_dir = Path(root) / "work"
        work_dir.mkdir()
        drop_to = _unprivileged_ids()
        if drop_to is not None:
            os.chmod(root, 0o711)  # `nobody` may pass through to work/, not touch output
            os.chown(work_dir, *drop_to)
        payload = {"code": code, "tests": tests, "nonce": nonce, "limits": asdict(limits),
                   "work_dir": str(work_dir), "drop_to": drop_to}
        output_path = Path(root) / "output"
        status = _run_child(payload, work_dir, output_path, limits.wall_s)
        return _report(output_path, nonce, status, len(tests), limits)


def _run_child(payload: dict, work_dir: Path, output_path: Path, wall_s: float) -> int | None:
    """The child's wait status (negative: killed by that signal), or None on wall timeout."""
    python = _child_python(payload["drop_to"])
    command = [*_network_isolation(), python, "-I", "-S", "-B", str(CHILD_SCRIPT)]
    env = {"PATH": os.defpath, "HOME": str(work_dir), "TMPDIR": str(work_dir),
           "LANG": "C.UTF-8"}
    with open(output_path, "wb") as output:
        child = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=output,
                                 stderr=subprocess.STDOUT, cwd=work_dir, env=env,
                                 start_new_session=True)
    try:
        _send(child, json.dumps(payload).encode())
        exited = _wait_unreaped(child.pid, wall_s)
    finally:
        _kill_group(child.pid)  # the exited leader stays unreaped, so its pgid is still ours
        status = child.wait()
    return status if exited else None


def _send(child: subprocess.Popen, data: bytes) -> None:
    try:
        child.stdin.write(data)
        child.stdin.close()
    except BrokenPipeError:  # it died before reading: the missing verdict says so
        pass


def _wait_unreaped(pid: int, timeout_s: float) -> bool:
    """True when `pid` exits within `timeout_s`; it is left a zombie for the group kill."""
    pidfd = os.pidfd_open(pid)
    try:
        readable, _, _ = select.select([pidfd], [], [], timeout_s)
        return bool(readable)
    finally:
        os.close(pidfd)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _report(output_path: Path, nonce: str, status: int | None, total: int,
            limits: SandboxLimits) -> TestReport:
    size = output_path.stat().st_size
    with open(output_path, "rb") as output:
        output.seek(max(0, size - VERDICT_TAIL_BYTES))
        tail = output.read().decode(errors="replace")
    for line in reversed(tail.splitlines()):
        if line.startswith(nonce + " "):
            verdict = json.loads(line[len(nonce) + 1:])
            return TestReport(verdict["passed"], verdict["total"], verdict["error"])
    if size >= limits.output_bytes:
        return TestReport(0, total, f"output limit ({limits.output_bytes} bytes) reached")
    return TestReport(0, total, _why_no_verdict(status, limits, tail))


def _why_no_verdict(status: int | None, limits: SandboxLimits, tail: str) -> str:
    if status is None:
        return f"killed at the wall-time limit ({limits.wall_s:g}s)"
    if status < 0:
        signals = {signal.SIGXCPU: f"CPU-time limit ({limits.cpu_s:g}s)",
                   signal.SIGKILL: f"CPU-time limit ({limits.cpu_s:g}s) or the kernel"}
        why = signals.get(-status, signal.Signals(-status).name)
        return f"killed by {signal.Signals(-status).name}: {why}"
    last = tail.strip().splitlines()[-1:] or [""]
    return f"exited ({status}) without a verdict: {last[0][:200]}"


@cache
def _unprivileged_ids() -> tuple[int, int] | None:
    """(uid, gid) of `nobody` when running as root (so the child can drop to it), else None."""
    if os.geteuid() != 0:
        return None
    try:
        user = pwd.getpwnam("nobody")
    except KeyError:
        log.warning("sandbox: no 'nobody' user; untrusted code runs as root")
        return None
    if _child_python((user.pw_uid, user.pw_gid)) is None:
        return None
    return user.pw_uid, user.pw_gid


@cache
def _child_python(drop_to: tuple[int, int] | None) -> str | None:
    """An interpreter of our Python version that `drop_to` can run with its standard library.

    Ours may live where `nobody` cannot read (a pyenv under /root); then a system `python3`
    of the same major.minor serves. None, with a warning, when neither does.
    """
    if drop_to is None:
        return sys.executable
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    system = os.defpath  # /bin:/usr/bin, not a PATH that may start with pyenv shims
    for python in dict.fromkeys([sys.executable, shutil.which(f"python{version}", path=system),
                                 shutil.which("python3", path=system)]):
        if python and _imports_stdlib_as(python, version, drop_to):
            return python
    log.warning("sandbox: no Python %s whose standard library 'nobody' can read; "
                "untrusted code runs as root", version)
    return None


def _imports_stdlib_as(python: str, version: str, user: tuple[int, int]) -> bool:
    check = f"import json, socket, sys; assert '%d.%d' % sys.version_info[:2] == '{version}'"
    try:
        probe = subprocess.run([python, "-I", "-S", "-c", check], user=user[0], group=user[1],
                               extra_groups=[], cwd="/", capture_output=True)
    except OSError:  # `user` may not even reach the executable
        return False
    return probe.returncode == 0


@cache
def _network_isolation() -> tuple[str, ...]:
    """The `unshare` prefix that gives the child an empty network namespace, if any works."""
    unshare = shutil.which("unshare")
    prefix = ("--net",) if os.geteuid() == 0 else ("--user", "--map-root-user", "--net")
    if unshare is not None:
        probe = subprocess.run([unshare, *prefix, "true"], capture_output=True)
        if probe.returncode == 0:
            return (unshare, *prefix, "--")
    log.warning("sandbox: no network namespace available (unshare failed); "
                "sockets are refused by the child's audit hook only")
    return ()
