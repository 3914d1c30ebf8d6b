"""Where a data source points: a file, a directory, a glob, a built-in corpus (synth://NAME),
or a Hugging Face dataset (hf://NAME[/CONFIG][@SPLIT] or a save_to_disk directory)."""

from __future__ import annotations

import glob
from collections.abc import Iterator
from pathlib import Path

from rsrl.data.synth import CORPUS_NAMES
from rsrl.errors import did_you_mean

SYNTH_SCHEME = "synth://"
GLOB_CHARS = "*?["


def is_synthetic(path: str) -> bool:
    return path.startswith(SYNTH_SCHEME)


def synth_name(path: str) -> str:
    return path[len(SYNTH_SCHEME) :]


def check_data_path(path: str, want_dir: bool = False) -> str | None:
    """None when `path` names data that exists, else a message saying what is wrong."""
    from rsrl.data import hf  # here: rsrl.spec imports this module, and hf imports rsrl.spec

    if not path:
        return "is empty: give a file, a directory, a glob, synth://NAME or hf://NAME"
    if is_synthetic(path):
        name = synth_name(path)
        if name in CORPUS_NAMES:
            return None
        return (
            f"unknown built-in corpus '{name}'{did_you_mean(name, CORPUS_NAMES)}; "
            f"available: {', '.join(SYNTH_SCHEME + n for n in CORPUS_NAMES)}"
        )
    if path.startswith(hf.HF_SCHEME):
        return hf.hf_problem(path)
    if any(c in path for c in GLOB_CHARS):
        return None if glob.glob(path, recursive=True) else f"no files match the glob '{path}'"
    target = Path(path)
    if not target.exists():
        return f"'{path}' does not exist (relative paths are read from the current directory)"
    if want_dir and not target.is_dir():
        return f"'{path}' is not a directory"
    if not want_dir and hf.is_saved_dataset(target):
        return hf.hf_problem(path)
    if target.is_dir() and not want_dir and next(_data_files(target), None) is None:
        return (
            f"directory '{path}' holds no {', '.join(FORMATS)} files (hidden and "
            "_-prefixed files are skipped) and is not a save_to_disk dataset"
        )
    return None


# The file formats a source may hold, by suffix (checked longest first).
FORMATS = {
    ".jsonl.gz": "jsonl",
    ".jsonl": "jsonl",
    ".txt.gz": "txt",
    ".txt": "txt",
    ".parquet": "parquet",
}


def file_format(path: Path) -> str | None:
    """jsonl | txt | parquet by suffix, else None."""
    name = path.name.lower()
    return next((fmt for suffix, fmt in FORMATS.items() if name.endswith(suffix)), None)


def _data_files(directory: Path) -> Iterator[Path]:
    """The files of known formats below `directory`, skipping hidden and `_`-prefixed ones
    (such as _SUCCESS); lazily, so that a check can stop at the first."""
    return (
        p
        for p in directory.rglob("*")
        if p.is_file() and file_format(p) and not p.name.startswith((".", "_"))
    )


def resolve_files(path: str) -> list[Path]:
    """The files a (non-synth) source names, sorted so that reading order is reproducible.

    A directory contributes its files of known formats, recursively, skipping hidden and
    `_`-prefixed ones (such as _SUCCESS); a glob or a file must name only known formats.
    """
    from rsrl.data.errors import DataError

    problem = check_data_path(path)
    if problem:
        raise DataError(f"source '{path}': {problem}")
    if any(c in path for c in GLOB_CHARS):
        files = [Path(p) for p in sorted(glob.glob(path, recursive=True)) if Path(p).is_file()]
    elif Path(path).is_dir():
        files = sorted(_data_files(Path(path)))
    else:
        files = [Path(path)]
    unknown = [str(f) for f in files if file_format(f) is None]
    if unknown:
        raise DataError(
            f"source '{path}': unsupported file '{unknown[0]}'; use {', '.join(FORMATS)} files"
        )
    if not files:
        raise DataError(f"source '{path}': no {', '.join(FORMATS)} files found")
    return files
