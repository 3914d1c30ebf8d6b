"""Run untrusted Python (a completion's code and an item's tests) in a sandboxed subprocess.

What holds, by the kernel, where it allows each layer (sandbox_child.py builds them; the
details and what does not hold are in docs/rl.md, "The `python` sandbox"):
- processes: the code runs in its own PID namespace under a seccomp filter that refuses
  fork, vfork, exec and every clone that is not a thread, so it can start no process at
  all; and when the run ends (verdict, crash or `wall_s`) the namespace's init is killed,
  which kills everything in the namespace before the call returns.
- files: a mount namespace whose root holds only read-only binds of the system directories
  and the interpreter, a private tmpfs on /tmp and /dev/shm (`tmp_mb` each) and its own
  /proc; nothing of the host outside those directories is visible, nothing is writable.
- user: `nobody` when the parent is root, else root of a user namespace with no
  capabilities; no-new-privileges; no signals to any other process.
- network: an empty network namespace, and no sockets (seccomp).
- CPU time, memory, output: RLIMIT_CPU, RLIMIT_AS (`memory_mb`), RLIMIT_FSIZE (stdout and
  stderr go to a file, so printing megabytes hits the same cap as writing a large file).
- a minimal environment; the child's audit hook (a tripwire for clear messages, on top).

A layer the kernel refuses is logged once per process (`missing_layers()` lists them) and
the run goes on with the rest: never silently. For untrusted code at scale, still run the
verifiers inside a container or VM (gVisor, nsjail, Firecracker): this keeps a policy's
mistakes and reward hacks from harming the host running training, it is not a VM.

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
from typing import Any

log = logging.getLogger("rsrl")

CHILD_SCRIPT = Path(__file__).with_name("sandbox_child.py")
MAX_CODE_CHARS = 200_000
VERDICT_TAIL_BYTES = 8192  # the verdict line is the last thing the child writes
SETUP_S = 5.0  # beyond wall_s, for the keeper to start, build the sandbox and reap it
AUDIT_HOOK = True  # the child's audit hook (a tripwire; tests turn it off to show the rest)


@dataclass(frozen=True)
class SandboxLimits:
    """Per-run limits; defaults fit short programs with a few asserts."""

    wall_s: float = 5.0
    cpu_s: float = 5.0
    memory_mb: int = 512
    output_bytes: int = 1 << 20  # stdout + stderr, and any single file the code writes
    max_processes: int = 256  # RLIMIT_NPROC for `nobody` (shared by concurrent runs)
    tmp_mb: int = 64  # each of the private /tmp and /dev/shm (tmpfs: counts as memory)


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
        output_path = Path(root) / "output"
        status = _run_child(code, tests, nonce, limits, Path(root))
        _warn_missing(status["missing"])
        worker = None if status.get("timed_out", True) else status.get("worker", 70)
        return _report(output_path, nonce, worker, len(tests), limits)


@cache
def missing_layers() -> tuple[str, ...]:
    """The isolation layers the kernel refuses here (empty when all hold); runs one probe."""
    with tempfile.TemporaryDirectory(prefix="rsrl-sandbox-") as root:
        status = _run_child("", [], "probe", SandboxLimits(), Path(root))
    _warn_missing(status["missing"])
    return tuple(status["missing"])


def _run_child(code: str, tests: list[str], nonce: str, limits: SandboxLimits, root: Path) -> dict:
    """Run the child with its output in `root`/output; what it reported (see sandbox_child).

    The keeper (the process started here) holds the wall clock and reaps the sandbox's
    PID namespace; this side waits `SETUP_S` longer, then kills the keeper's process group
    (which the namespace's init belongs to) in case it could not.
    """
    work_dir = root / "work"  # the worker's cwd only when there is no mount namespace
    work_dir.mkdir()
    drop_to = _unprivileged_ids()
    if drop_to is not None:
        os.chmod(root, 0o711)  # `nobody` may pass through to work/, not touch output
        os.chown(work_dir, *drop_to)
    python = _child_python(drop_to)
    assert python is not None  # _unprivileged_ids drops only where an interpreter serves
    command = [python, "-I", "-S", "-B", str(CHILD_SCRIPT)]
    env = {"PATH": os.defpath, "HOME": str(work_dir), "TMPDIR": str(work_dir), "LANG": "C.UTF-8"}
    status_w: int | None
    status_r, status_w = os.pipe2(os.O_CLOEXEC)
    payload = {
        "code": code,
        "tests": tests,
        "nonce": nonce,
        "limits": asdict(limits),
        "work_dir": str(work_dir),
        "drop_to": drop_to,
        "status_fd": status_w,
        "as_root": os.geteuid() == 0,
        "audit_hook": AUDIT_HOOK,
    }
    try:
        with open(root / "output", "wb") as output:
            child = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=output,
                stderr=subprocess.STDOUT,
                cwd=work_dir,
                env=env,
                start_new_session=True,
                pass_fds=(status_w,),
            )
        os.close(status_w)
        status_w = None
        try:
            _send(child, json.dumps(payload).encode())
            _wait_unreaped(child.pid, limits.wall_s + SETUP_S)
        finally:
            _kill_group(child.pid)  # the exited leader stays unreaped: its pgid is ours
            child.wait()
        return _read_status(status_r)
    finally:
        os.close(status_r)
        if status_w is not None:
            os.close(status_w)


def _read_status(fd: int) -> dict:
    """The JSON objects the keeper, the init and the worker wrote, merged."""
    os.set_blocking(fd, False)
    data = b""
    try:
        while chunk := os.read(fd, 65536):
            data += chunk
    except BlockingIOError:  # a writer is still open: only without a PID namespace
        pass
    status: dict[str, Any] = {"missing": []}
    for line in data.decode(errors="replace").splitlines():
        fields = json.loads(line)
        status["missing"] += fields.pop("missing", [])
        status.update(fields)
    status["missing"] = list(dict.fromkeys(status["missing"]))
    return status


_warned: set[str] = set()


def _warn_missing(missing: list[str]) -> None:
    """Log each missing layer once per process: the run goes on without it."""
    for layer in missing:
        if layer not in _warned:
            _warned.add(layer)
            log.warning("sandbox: %s unavailable; untrusted code runs without it", layer)


def _send(child: subprocess.Popen, data: bytes) -> None:
    assert child.stdin is not None  # started with stdin=PIPE
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


def _report(
    output_path: Path, nonce: str, status: int | None, total: int, limits: SandboxLimits
) -> TestReport:
    size = output_path.stat().st_size
    with open(output_path, "rb") as output:
        output.seek(max(0, size - VERDICT_TAIL_BYTES))
        tail = output.read().decode(errors="replace")
    for line in reversed(tail.splitlines()):
        if line.startswith(nonce + " "):
            verdict = json.loads(line[len(nonce) + 1 :])
            return TestReport(verdict["passed"], verdict["total"], verdict["error"])
    if size >= limits.output_bytes:
        return TestReport(0, total, f"output limit ({limits.output_bytes} bytes) reached")
    return TestReport(0, total, _why_no_verdict(status, limits, tail))


def _why_no_verdict(status: int | None, limits: SandboxLimits, tail: str) -> str:
    if status is None:
        return f"killed at the wall-time limit ({limits.wall_s:g}s)"
    if status < 0:
        signals: dict[int, str] = {
            signal.SIGXCPU: f"CPU-time limit ({limits.cpu_s:g}s)",
            signal.SIGKILL: f"CPU-time limit ({limits.cpu_s:g}s) or the kernel",
        }
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
    for python in dict.fromkeys(
        [
            sys.executable,
            shutil.which(f"python{version}", path=system),
            shutil.which("python3", path=system),
        ]
    ):
        if python and _imports_stdlib_as(python, version, drop_to):
            return python
    log.warning(
        "sandbox: no Python %s whose standard library 'nobody' can read; "
        "untrusted code runs as root",
        version,
    )
    return None


def _imports_stdlib_as(python: str, version: str, user: tuple[int, int]) -> bool:
    check = f"import json, socket, sys; assert '%d.%d' % sys.version_info[:2] == '{version}'"
    try:
        probe = subprocess.run(
            [python, "-I", "-S", "-c", check],
            user=user[0],
            group=user[1],
            extra_groups=[],
            cwd="/",
            capture_output=True,
        )
    except OSError:  # `user` may not even reach the executable
        return False
    return probe.returncode == 0
