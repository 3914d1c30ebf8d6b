"""The child side of rsrl.verifiers.sandbox: run untrusted code, then its tests, and report.

Run as a script (`python -I -S -B sandbox_child.py`) with a JSON payload on stdin; it
imports only the standard library, never rsrl. In order, before any untrusted code runs:
read the payload, close stdin, set the resource limits, drop to an unprivileged user (when
asked), install an audit hook that refuses sockets, new processes, writes outside the work
directory, limit changes and ctypes. Then exec the code, exec each test in the code's
namespace, and write one verdict line `<nonce> {"passed": k, "total": n, "error": ...}` to
a private copy of stdout. The nonce is known only to the parent and to this process, so
code that exits early (sys.exit, os._exit) leaves no verdict and scores 0.

Audit hooks (PEP 578) are a tripwire, not a security boundary: code that can reach the
interpreter's internals can get around them. The hard limits are the kernel's: rlimits,
the unprivileged user, the parent's process-group kill and, where available, an empty
network namespace.
"""

import json
import os
import resource
import sys

# Events that start processes, open sockets, or undo the limits: refused outright.
REFUSED_EVENTS = frozenset({
    "os.fork", "os.forkpty", "os.system", "os.exec", "os.posix_spawn", "os.spawn",
    "os.kill", "os.killpg", "subprocess.Popen", "pty.spawn", "resource.setrlimit",
    "resource.prlimit", "ctypes.dlopen", "ctypes.dlsym", "ctypes.cdata",
    "socket.__new__", "socket.bind", "socket.connect", "socket.getaddrinfo",
    "socket.sendto", "sys.addaudithook",
})
# Events whose first argument is a path: refused when it lies outside the work directory.
PATH_EVENTS = frozenset({
    "os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.symlink",
    "os.link", "os.truncate", "os.utime", "shutil.rmtree", "shutil.copyfile", "shutil.move",
})
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


def set_limits(limits: dict, dropping_privileges: bool) -> None:
    cpu = max(1, int(limits["cpu_s"] + 0.999))
    memory = limits["memory_mb"] << 20
    rlimits = {
        resource.RLIMIT_CPU: (cpu, cpu + 1),  # SIGXCPU at the soft limit, SIGKILL at hard
        resource.RLIMIT_AS: (memory, memory),
        resource.RLIMIT_FSIZE: (limits["output_bytes"], limits["output_bytes"]),
        resource.RLIMIT_NOFILE: (64, 64),
        resource.RLIMIT_CORE: (0, 0),
    }
    if dropping_privileges:  # the kernel ignores RLIMIT_NPROC for root
        rlimits[resource.RLIMIT_NPROC] = (limits["max_processes"], limits["max_processes"])
    for which, value in rlimits.items():
        resource.setrlimit(which, value)


def drop_privileges(uid: int, gid: int) -> None:
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)


def make_audit_hook(work_dir: str):
    root = os.path.realpath(work_dir)

    def inside(path) -> bool:
        if isinstance(path, int):  # an fd this process already holds
            return True
        path = os.fsdecode(path)
        full = os.path.realpath(os.path.join(root, path))
        return full == root or full.startswith(root + os.sep)

    def hook(event: str, args: tuple) -> None:
        if event in REFUSED_EVENTS:
            raise PermissionError(f"sandbox: {event} is not allowed")
        if event == "open" and args[2] & WRITE_FLAGS and not inside(args[0]):
            raise PermissionError(f"sandbox: writing {args[0]!r} is not allowed")
        if event in PATH_EVENTS and args and not inside(args[0]):
            raise PermissionError(f"sandbox: {event} on {args[0]!r} is not allowed")

    return hook


def run(code: str, tests: list) -> dict:
    namespace = {"__name__": "solution"}  # `if __name__ == "__main__":` blocks stay off
    try:
        exec(compile(code, "<solution>", "exec"), namespace)
    except BaseException as err:  # SystemExit too: leaving early fails every test
        return {"passed": 0, "total": len(tests), "error": f"solution: {describe(err)}"}
    passed, first_error = 0, ""
    for i, test in enumerate(tests):
        try:
            exec(compile(test, f"<test {i}>", "exec"), namespace)
            passed += 1
        except BaseException as err:
            first_error = first_error or f"test {i}: {describe(err)}"
    return {"passed": passed, "total": len(tests), "error": first_error}


def describe(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}"[:300]


def main() -> None:
    payload = json.loads(sys.stdin.read())
    sys.stdin.close()
    verdict_fd = os.dup(1)  # the code may replace or close sys.stdout
    drop = payload["drop_to"]
    set_limits(payload["limits"], dropping_privileges=drop is not None)
    if drop is not None:
        drop_privileges(*drop)
    sys.addaudithook(make_audit_hook(payload["work_dir"]))
    verdict = run(payload["code"], payload["tests"])
    try:
        sys.stdout.flush()
    except BaseException:  # the code closed or replaced it; the verdict has its own fd
        pass
    os.write(verdict_fd, f"\n{payload['nonce']} {json.dumps(verdict)}\n".encode())
    os._exit(0)  # skip interpreter teardown: the code may have left hooks behind


if __name__ == "__main__":
    main()
