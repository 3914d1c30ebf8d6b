"""One `rsrl apply` per workdir at a time: a second one waits or fails, it never interleaves."""

from __future__ import annotations

import fcntl
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

LOCK_FILE = ".rsrl.lock"


class WorkdirBusy(RuntimeError):
    pass


@contextmanager
def workdir_lock(workdir: Path, wait: bool = False, poll_s: float = 1.0) -> Iterator[None]:
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / LOCK_FILE
    with open(path, "a+") as f:
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not wait:
                    f.seek(0)
                    holder = f.read().strip() or "unknown"
                    raise WorkdirBusy(
                        f"another rsrl run holds {workdir} (pid {holder}); wait for it to "
                        f"finish, pass --wait, or use another workdir") from None
                time.sleep(poll_s)
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
