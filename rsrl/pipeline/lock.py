"""File locks that keep two runs from writing the same place at once.

- The workdir lock: one `rsrl apply` per workdir; a second one fails with a clear message
  (or waits, with --wait).
- The stage lock: held while a stage runs, so runs that share a workdir on purpose (the
  trials of a sweep) never run the same stage twice at once; the later one waits, then
  finds the stage cached.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from rsrl.errors import SpecError

LOCK_FILE = ".rsrl.lock"


class WorkdirBusy(RuntimeError):
    pass


@contextmanager
def file_lock(path: Path, wait: bool, poll_s: float = 1.0) -> Iterator[None]:
    """Hold an exclusive lock on `path`; raise WorkdirBusy at once when held and not `wait`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not wait:
                    f.seek(0)
                    raise WorkdirBusy(f"pid {f.read().strip() or 'unknown'}") from None
                time.sleep(poll_s)
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def check_workdir(workdir: Path, given: str) -> None:
    """Raise SpecError when no directory can be at `workdir` (the spec's `workdir`, as `given`):
    a file is there, or where a directory above it would be. Checked before the lock, whose
    mkdir would fail on it with a bare FileExistsError or NotADirectoryError."""
    for path in (workdir, *workdir.parents):
        if path.is_dir():
            return
        if path.exists() or path.is_symlink():  # a file, a broken symlink, a socket, ...
            problem = (
                "is an existing file, not a directory"
                if path == workdir
                else f"{path} is a file, so no directory can be made under it"
            )
            raise SpecError(f"workdir: {problem}; name a new or existing directory, got {given!r}")


@contextmanager
def workdir_lock(workdir: Path, wait: bool = False) -> Iterator[None]:
    try:
        with file_lock(workdir / LOCK_FILE, wait):
            yield
    except WorkdirBusy as busy:
        raise WorkdirBusy(
            f"another rsrl run holds {workdir} ({busy}); wait for it to finish, "
            f"pass --wait, or use another workdir"
        ) from None


def stage_lock(out_dir: Path) -> AbstractContextManager[None]:
    return file_lock(out_dir.with_name(f".{out_dir.name}.lock"), wait=True)
