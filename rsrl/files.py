"""Files written atomically: to a temp file in the same directory, then renamed, so a reader
(another stage, a resumed run, a browser) never sees half a file.

A full disk (or quota) while rsrl writes becomes one `DiskFull` naming the path
(`names_full_disk`), instead of whatever the library doing the writing says."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

FULL_DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
# Libraries that hide the errno (torch's zip writer, safetensors) still say so in words.
FULL_DISK_WORDS = ("No space left on device", "Disk quota exceeded", "StorageFull")
LOW_SPACE_BYTES = 16 * 2**20  # a write failing with less free than this: the disk is full


class DiskFull(RuntimeError):
    """rsrl could not write `path`: its disk is full. Not a transient fault: not retried."""

    def __init__(self, path: str | Path):
        super().__init__(str(path))  # in args: the error can be copied and pickled
        self.path = str(path)

    def __str__(self) -> str:
        return (
            f"could not write {self.path}: no space left on device; free space on that "
            f"disk, or point the spec's workdir at one with room, then run `rsrl apply` "
            f"again (what was written before, the last checkpoint included, is kept)"
        )


def is_disk_full(err: BaseException, path: str | Path | None = None) -> bool:
    """Whether `err` (or an error it wraps) says the disk is full, or, for a write error
    that does not say why, whether `path`'s disk has (almost) no space left."""
    seen: BaseException | None = err
    for _ in range(8):
        if seen is None:
            break
        if isinstance(seen, DiskFull) or (
            isinstance(seen, OSError) and seen.errno in FULL_DISK_ERRNOS
        ):
            return True
        if any(words in str(seen) for words in FULL_DISK_WORDS):
            return True
        seen = seen.__cause__ or seen.__context__
    if path is None or not isinstance(err, (OSError, RuntimeError)):
        return False
    try:
        found = Path(path)
        while not found.exists() and found != found.parent:
            found = found.parent
        usage = os.statvfs(found)
    except OSError:
        return False
    return usage.f_bavail * usage.f_frsize < LOW_SPACE_BYTES


@contextlib.contextmanager
def names_full_disk(path: str | Path) -> Iterator[None]:
    """Raise DiskFull(path) for a full-disk error inside the block; others pass as they are."""
    try:
        yield
    except DiskFull:
        raise
    except Exception as err:
        if is_disk_full(err, path):
            raise DiskFull(path) from err
        raise


def write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with names_full_disk(path):
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
        except BaseException:
            os.unlink(tmp)  # the old file stays as it was
            raise
        os.replace(tmp, path)


def write_json_atomic(path: Path, payload: dict) -> None:
    write_text_atomic(path, json.dumps(payload, indent=2, sort_keys=True, default=str))


def read_jsonl(path: Path) -> list[dict]:
    """The rows of a JSON-lines file; [] when it does not exist."""
    path = Path(path)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]
