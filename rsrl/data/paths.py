"""Where a data source points: a file, a directory, a glob, or a built-in corpus (synth://NAME)."""

from __future__ import annotations

import glob
from pathlib import Path

from rsrl.data.synth import CORPUS_NAMES
from rsrl.spec.errors import did_you_mean

SYNTH_SCHEME = "synth://"
GLOB_CHARS = "*?["


def is_synthetic(path: str) -> bool:
    return path.startswith(SYNTH_SCHEME)


def synth_name(path: str) -> str:
    return path[len(SYNTH_SCHEME):]


def check_data_path(path: str, want_dir: bool = False) -> str | None:
    """None when `path` names data that exists, else a message saying what is wrong."""
    if not path:
        return "is empty: give a file, a directory, a glob or synth://NAME"
    if is_synthetic(path):
        name = synth_name(path)
        if name in CORPUS_NAMES:
            return None
        return (f"unknown built-in corpus '{name}'{did_you_mean(name, CORPUS_NAMES)}; "
                f"available: {', '.join(SYNTH_SCHEME + n for n in CORPUS_NAMES)}")
    if any(c in path for c in GLOB_CHARS):
        return None if glob.glob(path, recursive=True) else f"no files match the glob '{path}'"
    target = Path(path)
    if not target.exists():
        return f"'{path}' does not exist (relative paths are read from the current directory)"
    if want_dir and not target.is_dir():
        return f"'{path}' is not a directory"
    return None
