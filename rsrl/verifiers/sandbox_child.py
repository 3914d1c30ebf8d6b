"""The child side of rsrl.verifiers.sandbox: run untrusted code, then its tests, and report.

Run as a script (`python -I -S -B sandbox_child.py`) with a JSON payload on stdin; it
imports only the standard library, never rsrl. Three processes, none of which runs
untrusted code until the last step:

- the keeper (the process the parent started) reads the payload, enters new user (when
  not root), PID, network, IPC and UTS namespaces, forks the init, and holds the wall
  clock: at `wall_s` it SIGKILLs the init, then reaps it. A PID namespace dies with its
  init (the kernel kills every process in it, and the init is reaped only once they are
  all gone), so when the keeper has reaped the init nothing of the run is left.
- the init (PID 1 of the new namespace) enters a new mount namespace, builds a root of
  read-only bind mounts (the system directories, the interpreter) with a private tmpfs on
  /tmp and /dev/shm and a fresh /proc, pivots into it, forks the worker and reaps
  everything until the worker is gone, reports its exit status, and exits.
- the worker sets the resource limits, drops to `nobody` (root host) or drops every
  capability (user namespace), sets no-new-privileges, installs a seccomp filter (no new
  processes, no exec, no sockets, no signals to other processes, no mounts or namespace
  changes, no ptrace), then the audit hook (a tripwire for clear error messages; nothing
  depends on it), then execs the code and each test in the code's namespace and writes
  one verdict line `<nonce> {"passed": k, "total": n, "error": ...}` to a private copy of
  stdout. The nonce is known only to the parent and to this process, so code that exits
  early (sys.exit, os._exit) leaves no verdict and scores 0.

Each layer the kernel refuses is named in the status the parent reads (one JSON object per
line on `status_fd`) and logged there; the run goes on with the layers that hold.
"""

import ctypes
import errno
import json
import os
import platform
import resource
import select
import signal
import struct
import sys

# Events that start processes, open sockets, or undo the limits: refused outright.
REFUSED_EVENTS = frozenset(
    {
        "os.fork",
        "os.forkpty",
        "os.system",
        "os.exec",
        "os.posix_spawn",
        "os.spawn",
        "os.kill",
        "os.killpg",
        "subprocess.Popen",
        "pty.spawn",
        "resource.setrlimit",
        "resource.prlimit",
        "ctypes.dlopen",
        "ctypes.dlsym",
        "ctypes.cdata",
        "socket.__new__",
        "socket.bind",
        "socket.connect",
        "socket.getaddrinfo",
        "socket.sendto",
        "sys.addaudithook",
    }
)
# Events whose first argument is a path: refused when it lies outside the work directory.
PATH_EVENTS = frozenset(
    {
        "os.remove",
        "os.rename",
        "os.rmdir",
        "os.mkdir",
        "os.chmod",
        "os.chown",
        "os.symlink",
        "os.link",
        "os.truncate",
        "os.utime",
        "shutil.rmtree",
        "shutil.copyfile",
        "shutil.move",
    }
)
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND

libc = ctypes.CDLL(None, use_errno=True)

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x20000, 0x4000000, 0x8000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
CLONE_THREAD = 0x10000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_SECCOMP, PR_SET_NO_NEW_PRIVS = 1, 4, 22, 38

# The root the worker sees: these, read-only, plus the interpreter's own installation.
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
SYSTEM_FILES = (
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/localtime",
    "/etc/passwd",
    "/etc/group",
    "/etc/nsswitch.conf",
)
DEVICES = ("null", "zero", "full", "random", "urandom")
WORK_DIR = "/tmp/work"  # inside the private root: on a fresh tmpfs, gone with the namespace

# Per architecture: the seccomp audit arch, and the syscall numbers the filter handles
# (from the kernel's unistd headers; aarch64 has no fork or vfork).
ARCHES = {
    "x86_64": (
        0xC000003E,
        {
            "fork": 57,
            "vfork": 58,
            "execve": 59,
            "execveat": 322,
            "clone": 56,
            "clone3": 435,
            "kill": 62,
            "tkill": 200,
            "tgkill": 234,
            "rt_sigqueueinfo": 129,
            "rt_tgsigqueueinfo": 297,
            "pidfd_send_signal": 424,
            "ptrace": 101,
            "process_vm_readv": 310,
            "process_vm_writev": 311,
            "mount": 165,
            "umount2": 166,
            "pivot_root": 155,
            "chroot": 161,
            "unshare": 272,
            "setns": 308,
            "socket": 41,
            "bpf": 321,
            "perf_event_open": 298,
            "userfaultfd": 323,
            "keyctl": 250,
            "add_key": 248,
            "request_key": 249,
            "io_uring_setup": 425,
            "open_by_handle_at": 304,
            "name_to_handle_at": 303,
            "kexec_load": 246,
            "kexec_file_load": 320,
            "init_module": 175,
            "finit_module": 313,
            "delete_module": 176,
            "mount_setattr": 442,
            "open_tree": 428,
            "move_mount": 429,
            "fsopen": 430,
            "fsconfig": 431,
            "fsmount": 432,
            "fspick": 433,
            "capset": 126,
        },
    ),
    "aarch64": (
        0xC00000B7,
        {
            "execve": 221,
            "execveat": 281,
            "clone": 220,
            "clone3": 435,
            "kill": 129,
            "tkill": 130,
            "tgkill": 131,
            "rt_sigqueueinfo": 138,
            "rt_tgsigqueueinfo": 240,
            "pidfd_send_signal": 424,
            "ptrace": 117,
            "process_vm_readv": 270,
            "process_vm_writev": 271,
            "mount": 40,
            "umount2": 39,
            "pivot_root": 41,
            "chroot": 51,
            "unshare": 97,
            "setns": 268,
            "socket": 198,
            "bpf": 280,
            "perf_event_open": 241,
            "userfaultfd": 282,
            "keyctl": 219,
            "add_key": 217,
            "request_key": 218,
            "io_uring_setup": 425,
            "open_by_handle_at": 265,
            "name_to_handle_at": 264,
            "kexec_load": 104,
            "kexec_file_load": 294,
            "init_module": 105,
            "finit_module": 273,
            "delete_module": 106,
            "mount_setattr": 442,
            "open_tree": 428,
            "move_mount": 429,
            "fsopen": 430,
            "fsconfig": 431,
            "fsmount": 432,
            "fspick": 433,
            "capset": 91,
        },
    ),
}
ARCH = ARCHES.get(platform.machine())
# Refused with EPERM; clone3 with ENOSYS, so the C library falls back to clone, whose
# flags the filter can see (threads are allowed, new processes are not).
DENIED_SYSCALLS = (
    "fork",
    "vfork",
    "execve",
    "execveat",
    "pidfd_send_signal",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "unshare",
    "setns",
    "socket",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "keyctl",
    "add_key",
    "request_key",
    "open_by_handle_at",
    "name_to_handle_at",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "mount_setattr",
    "open_tree",
    "move_mount",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
)
ENOSYS_SYSCALLS = ("clone3", "io_uring_setup")
SIGNAL_SYSCALLS = ("kill", "tkill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo")


class Refused(OSError):
    """The kernel refused a sandbox layer (its errno says why)."""


def check(result: int, what: str) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise Refused(err, f"{what}: {os.strerror(err)}")
    return result


def report(status_fd: int, **fields) -> None:
    os.write(status_fd, (json.dumps(fields) + "\n").encode())


# --- the keeper ---------------------------------------------------------------------------


def enter_namespaces(as_root: bool, missing: list) -> dict:
    """New user (unless root), PID, network, IPC and UTS namespaces; which ones it got."""
    got = {"user": False, "PID": False}
    if not as_root:
        uid, gid = os.getuid(), os.getgid()
        try:
            check(libc.unshare(CLONE_NEWUSER), "unshare(user)")
            got["user"] = True  # even unmapped, its capabilities are dropped in the worker
            with open("/proc/self/setgroups", "w") as f:
                f.write("deny")
            with open("/proc/self/uid_map", "w") as f:
                f.write(f"0 {uid} 1")
            with open("/proc/self/gid_map", "w") as f:
                f.write(f"0 {gid} 1")
        except OSError as err:
            missing += [
                f"{name} namespace (no user namespace: {err})"
                for name in ("user", "PID", "network", "IPC", "UTS")
            ]
            return got
    for flag, name in [
        (CLONE_NEWPID, "PID"),
        (CLONE_NEWNET, "network"),
        (CLONE_NEWIPC, "IPC"),
        (CLONE_NEWUTS, "UTS"),
    ]:
        try:
            check(libc.unshare(flag), f"unshare({name})")
            got[name] = True
        except Refused as err:
            missing.append(f"{name} namespace ({err.strerror})")
    return got


def keep(init: int, wall_s: float) -> tuple[bool, int]:
    """Wait up to `wall_s` for the init, SIGKILL it if still running; (timed out, status)."""
    try:
        pidfd = os.pidfd_open(init)
    except OSError:
        pidfd = None
    if pidfd is not None:
        exited = bool(select.select([pidfd], [], [], wall_s)[0])
        os.close(pidfd)
    else:
        exited = poll_exit(init, wall_s)
    if not exited:
        os.kill(init, signal.SIGKILL)
    _, status = os.waitpid(init, 0)
    return not exited, status


def poll_exit(pid: int, timeout_s: float) -> bool:
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
            return True
        time.sleep(0.01)
    return False


# --- the init: a private root -------------------------------------------------------------


def mount(source, target, fstype, flags, data=None) -> None:
    args = [None if a is None else os.fsencode(a) for a in (source, target, fstype)]
    check(
        libc.mount(*args, ctypes.c_ulong(flags), None if data is None else data.encode()),
        f"mount {target}",
    )


def syscall(name: str, *args) -> int:
    if ARCH is None:
        raise Refused(errno.ENOSYS, f"{name}: no syscall table for {platform.machine()}")
    return check(libc.syscall(ARCH[1][name], *args), name)


def build_root(new_root: str, tmp_mb: int, worker: tuple, missing: list) -> None:
    """Mount the worker's file system at `new_root` and pivot into it."""
    check(libc.unshare(CLONE_NEWNS), "unshare(mount)")
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    mount("tmpfs", new_root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
    exposed = [*SYSTEM_DIRS, sys.base_prefix, os.path.dirname(os.path.realpath(sys.executable))]
    for path in dict.fromkeys(exposed):
        bind_in(new_root, path)
    for path in SYSTEM_FILES:
        bind_in(new_root, path)
    for name in ("tmp", "proc", "dev", "dev/shm"):
        os.makedirs(os.path.join(new_root, name), exist_ok=True)
    for name in DEVICES:
        bind_in(new_root, f"/dev/{name}")
    for name, target in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ]:
        os.symlink(target, os.path.join(new_root, "dev", name))
    make_read_only(new_root)
    tmpfs = f"size={tmp_mb}m,nr_inodes=16384,mode=0700,uid={worker[0]},gid={worker[1]}"
    for name in ("tmp", "dev/shm"):
        mount(
            "tmpfs", os.path.join(new_root, name), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, tmpfs
        )
    try:  # refused in a user namespace when the host's /proc has parts masked
        mount("proc", os.path.join(new_root, "proc"), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    except Refused as err:
        missing.append(f"/proc ({err}): the worker has none")
    os.chdir(new_root)
    syscall("pivot_root", b".", b".")  # the old root now lies on top: detach it
    check(libc.umount2(b".", MNT_DETACH), "umount old root")
    os.chdir("/")


def bind_in(new_root: str, path: str) -> None:
    """Bind `path` (a directory or a file; skipped when absent) at the same place inside."""
    target = new_root + path
    if os.path.islink(path) and os.path.dirname(path) == "/":  # /lib -> usr/lib and kin
        if not os.path.lexists(target):
            os.symlink(os.readlink(path), target)
        return
    if not os.path.exists(path) or os.path.exists(target):
        return
    if os.path.isdir(path):
        os.makedirs(target)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        open(target, "w").close()
    mount(path, target, None, MS_BIND | MS_REC)


def make_read_only(new_root: str) -> None:
    """Every mount under `new_root` read-only and nosuid (device nodes keep working)."""
    attr = struct.pack("QQQQ", 1 | 2, 0, 0, 0)  # MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID
    buf = ctypes.create_string_buffer(attr)
    at_fdcwd, at_recursive = -100, 0x8000
    if libc.syscall(442, at_fdcwd, os.fsencode(new_root), at_recursive, buf, len(attr)) == 0:
        return
    if ctypes.get_errno() != errno.ENOSYS:
        check(-1, "mount_setattr")
    with open("/proc/self/mountinfo") as f:  # before Linux 5.12: one remount per mount
        points = [line.split()[4] for line in f]
    for point in points:
        if point == new_root or point.startswith(new_root + "/"):
            kept = os.statvfs(point).f_flag & (MS_NODEV | MS_NOEXEC)
            mount(None, point, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | kept)


def init_main(payload: dict, status_fd: int, missing: list, got: dict) -> None:
    """PID 1 of the sandbox (or a plain child without a PID namespace): never returns."""
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # the keeper gone: all gone
    libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    drop = payload["drop_to"]
    work_dir = payload["work_dir"]
    if got["PID"]:
        try:
            build_root(work_dir, payload["limits"]["tmp_mb"], drop or (0, 0), missing)
            work_dir = WORK_DIR
        except OSError as err:
            missing.append(f"mount namespace ({err}): the worker sees the host's file system")
    else:
        missing.append("mount namespace (needs the PID namespace for its /proc)")
    worker = os.fork()
    if worker == 0:
        worker_main(payload, status_fd, missing, work_dir, got["user"])
    while True:  # reap orphans too, until the worker itself is gone
        try:
            pid, status = os.wait()
        except ChildProcessError:
            os._exit(0)
        if pid == worker:
            report(status_fd, worker=os.waitstatus_to_exitcode(status))
            os._exit(0)


# --- the worker ---------------------------------------------------------------------------


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


def drop_capabilities() -> None:
    """No capabilities left (root of a user namespace keeps its uid 0, not its powers)."""
    header = struct.pack("Ii", 0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this thread
    data = ctypes.create_string_buffer(24)  # two all-zero (effective, permitted, inherit)
    syscall("capset", ctypes.create_string_buffer(header), data)


def seccomp_filter(pid: int) -> bytes:
    """A BPF program: kill other ABIs; refuse process creation and the rest (see above)."""
    assert ARCH is not None  # install_seccomp refuses first on an unknown machine
    audit_arch, numbers = ARCH
    allow, kill = 0x7FFF0000, 0x80000000  # SECCOMP_RET_ALLOW, SECCOMP_RET_KILL_PROCESS
    eperm, enosys = 0x00050000 | errno.EPERM, 0x00050000 | errno.ENOSYS
    ld, jeq, jset, jge, ret = 0x20, 0x15, 0x45, 0x35, 0x06
    nr_offset, arch_offset, arg0_offset = 0, 4, 16
    prog = [
        (ld, 0, 0, arch_offset),
        (jeq, 1, 0, audit_arch),
        (ret, 0, 0, kill),
        (ld, 0, 0, nr_offset),
    ]
    if audit_arch == ARCHES["x86_64"][0]:  # the x32 ABI shares the arch: refuse it
        prog += [(jge, 0, 1, 0x40000000), (ret, 0, 0, kill)]
    for name in DENIED_SYSCALLS + ENOSYS_SYSCALLS:
        if name in numbers:
            prog += [
                (jeq, 0, 1, numbers[name]),
                (ret, 0, 0, enosys if name in ENOSYS_SYSCALLS else eperm),
            ]
    # clone: only threads (CLONE_THREAD shares this process; anything else is a new one)
    prog += [
        (jeq, 0, 4, numbers["clone"]),
        (ld, 0, 0, arg0_offset),
        (jset, 0, 1, CLONE_THREAD),
        (ret, 0, 0, allow),
        (ret, 0, 0, eperm),
    ]
    # signals: only to this process (its pid is the first argument of each)
    for name in SIGNAL_SYSCALLS:
        prog += [
            (jeq, 0, 4, numbers[name]),
            (ld, 0, 0, arg0_offset),
            (jeq, 0, 1, pid),
            (ret, 0, 0, allow),
            (ret, 0, 0, eperm),
        ]
    prog.append((ret, 0, 0, allow))
    return b"".join(struct.pack("HBBI", *insn) for insn in prog)


def install_seccomp() -> None:
    if ARCH is None:
        raise Refused(errno.ENOSYS, f"no syscall table for {platform.machine()}")
    program = ctypes.create_string_buffer(seccomp_filter(os.getpid()))
    fprog = struct.pack("HxxxxxxP", len(program.raw) // 8, ctypes.addressof(program))
    check(
        libc.prctl(PR_SET_SECCOMP, 2, ctypes.create_string_buffer(fprog), 0, 0), "seccomp"
    )  # 2: SECCOMP_MODE_FILTER


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


def worker_main(payload: dict, status_fd: int, missing: list, work_dir: str, user_ns: bool) -> None:
    verdict_fd = os.dup(1)  # the code may replace or close sys.stdout
    drop = payload["drop_to"]
    set_limits(payload["limits"], dropping_privileges=drop is not None)
    if drop is not None:
        drop_privileges(*drop)
    elif user_ns:
        drop_capabilities()
    try:
        check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
        install_seccomp()
    except OSError as err:
        missing.append(
            f"seccomp ({err}): the code may start processes, open sockets and "
            "signal other processes of its user"
        )
    report(status_fd, missing=missing)
    os.close(status_fd)
    os.makedirs(work_dir, exist_ok=True)
    os.environ.update(HOME=work_dir, TMPDIR=work_dir)
    os.chdir(work_dir)
    if payload["audit_hook"]:
        sys.addaudithook(make_audit_hook(work_dir))
    verdict = run(payload["code"], payload["tests"])
    try:
        sys.stdout.flush()
    except BaseException:  # the code closed or replaced it; the verdict has its own fd
        pass
    os.write(verdict_fd, f"\n{payload['nonce']} {json.dumps(verdict)}\n".encode())
    os._exit(0)  # skip interpreter teardown: the code may have left hooks behind


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
    status_fd = payload["status_fd"]
    missing: list = []
    got = enter_namespaces(payload["as_root"], missing)
    libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)  # after: it makes /proc/self/uid_map root's
    init = os.fork()
    if init == 0:
        try:
            init_main(payload, status_fd, missing, got)
        except BaseException:  # a failed setup (init or worker): say why, score 0
            import traceback

            traceback.print_exc()
        os._exit(70)
    timed_out, _ = keep(init, payload["limits"]["wall_s"])
    report(status_fd, timed_out=timed_out, missing=missing)
    os._exit(0)


if __name__ == "__main__":
    main()
