"""Hugging Face datasets as sources: hub names (hf://NAME[/CONFIG][@SPLIT]) and directories
written by `Dataset.save_to_disk` / `DatasetDict.save_to_disk`.

Both come down to the arrow files of one split on local disk: a saved dataset's own shards,
or the hub dataset's files in the `datasets` cache (HF_DATASETS_CACHE). With HF_HUB_OFFLINE=1
only the cache is used; where the hub is reachable, a dataset not yet cached is downloaded
and prepared into it once, by the process that plans the read. No rows are read there: each
arrow file becomes a read task that a Ray Data worker reads with pyarrow
(`rsrl.data.sources`).

NAME is the hub's `owner/name` (or a bare `name`); a third segment is the config
(`hf://openai/gsm8k/main@test`). Without @SPLIT, a dataset's only split is read, else
`train`. A saved DatasetDict directory reads the same way; point at DIR/SPLIT for another.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rsrl.data.errors import DataError

HF_SCHEME = "hf://"
DEFAULT_SPLIT = "train"
_DATASET_FILES = ("state.json", "dataset_info.json")  # what save_to_disk writes for a Dataset
_DICT_FILE = "dataset_dict.json"  # ... and for a DatasetDict, beside one directory per split


@dataclass(frozen=True)
class HubName:
    """hf://NAME[/CONFIG][@SPLIT], parsed."""

    path: str  # as written
    name: str
    config: str | None
    split: str | None

    @classmethod
    def parse(cls, path: str) -> HubName:
        rest, at, split = path[len(HF_SCHEME) :].partition("@")
        parts = rest.split("/")
        name, config = ("/".join(parts[:2]), parts[2]) if len(parts) == 3 else (rest, None)
        return cls(path, name, config, split if at else None)

    def problem(self) -> str | None:
        """What is wrong with how the name is written, or None."""
        parts = self.name.split("/")
        if not all(parts) or len(parts) > 2 or self.config == "" or self.split == "":
            return (
                f"'{self.path}' is not a hub dataset name; write "
                "hf://OWNER/NAME[/CONFIG][@SPLIT], e.g. hf://openai/gsm8k/main@test"
            )
        return None


def is_hf_source(path: str) -> bool:
    """A hub name or a save_to_disk directory."""
    return path.startswith(HF_SCHEME) or is_saved_dataset(Path(path))


def is_saved_dataset(directory: Path) -> bool:
    return directory.is_dir() and (
        (directory / _DICT_FILE).is_file() or all((directory / f).is_file() for f in _DATASET_FILES)
    )


def hf_problem(path: str) -> str | None:
    """None when `path` names an HF dataset that can be read, else what is wrong. A hub name
    is checked from its metadata (config, splits) without downloading its data."""
    try:
        if path.startswith(HF_SCHEME):
            _hub_builder(HubName.parse(path))
        else:
            _load_saved(_saved_split_dir(Path(path)))
    except DataError as err:
        return str(err)
    return None


def arrow_files(path: str) -> list[str]:
    """The arrow files of the split `path` names, in row order (DataError if it cannot be
    read). A hub dataset not yet cached is downloaded here, where the hub is reachable."""
    try:
        if path.startswith(HF_SCHEME):
            dataset = _load_hub(HubName.parse(path))
        else:
            dataset = _load_saved(_saved_split_dir(Path(path)))
    except DataError as err:
        raise DataError(f"source '{path}': {err}") from None
    return [f["filename"] for f in dataset.cache_files]


def fingerprint(path: str) -> str:
    """A short hash that changes when the data of `path` changes: a saved split's state.json
    (datasets' own `_fingerprint` and file list) and its files' sizes; for a hub dataset,
    the cache directory its current revision prepares into (config, version, hash)."""
    try:
        if path.startswith(HF_SCHEME):
            builder = _hub_builder(HubName.parse(path))
            payload = "/".join(Path(builder.cache_dir).parts[-3:])
        else:
            split_dir = _saved_split_dir(Path(path))
            state = (split_dir / "state.json").read_text()
            sizes = sorted((f.name, f.stat().st_size) for f in split_dir.glob("*.arrow"))
            payload = json.dumps([state, sizes])
    except DataError as err:
        raise DataError(f"source '{path}': {err}") from None
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def _saved_split_dir(directory: Path) -> Path:
    """The directory of the split a save_to_disk directory holds (a DatasetDict: its only
    split, or train)."""
    if not (directory / _DICT_FILE).is_file():
        return directory
    try:
        splits = list(json.loads((directory / _DICT_FILE).read_text())["splits"])
    except (ValueError, KeyError, TypeError) as err:
        raise DataError(f"'{directory / _DICT_FILE}' is not a DatasetDict's ({err})") from None
    split = _default_split(splits)
    if split is None:
        raise DataError(
            f"saved DatasetDict '{directory}' has splits {', '.join(splits)} and no "
            f"'{DEFAULT_SPLIT}': point at one of them, e.g. {directory / splits[0]}"
        )
    if not is_saved_dataset(directory / split):
        raise DataError(f"saved DatasetDict '{directory}' lacks its split directory '{split}'")
    return directory / split


def _default_split(splits: list[str]) -> str | None:
    if len(splits) == 1:
        return splits[0]
    return DEFAULT_SPLIT if DEFAULT_SPLIT in splits else None


def _load_saved(split_dir: Path) -> Any:
    import datasets

    try:
        dataset = datasets.load_from_disk(str(split_dir))
    except (OSError, ValueError, datasets.exceptions.DatasetsError) as err:
        raise DataError(f"'{split_dir}' is not a readable saved dataset ({err})") from None
    return _flat(dataset)


def _hub_builder(hub: HubName) -> Any:
    """The dataset's builder (metadata only), its split checked where the hub lists them."""
    import datasets

    problem = hub.problem()
    if problem:
        raise DataError(problem)
    try:
        builder = datasets.load_dataset_builder(hub.name, hub.config)
    except (OSError, ValueError, datasets.exceptions.DatasetsError) as err:
        raise DataError(_hub_error(hub, err)) from None
    splits = list(builder.info.splits or [])
    split = _split_of(hub, splits)
    if splits and split not in splits:
        wanted = f"split '{split}'" if split else f"'{DEFAULT_SPLIT}' split"
        raise DataError(
            f"dataset '{hub.name}' has no {wanted}; its splits: {', '.join(splits)} "
            f"(write @SPLIT, e.g. {HF_SCHEME}{hub.name}@{splits[0]})"
        )
    return builder


def _split_of(hub: HubName, splits: list[str]) -> str | None:
    return hub.split or _default_split(splits)


def _load_hub(hub: HubName) -> Any:
    import datasets

    builder = _hub_builder(hub)
    split = _split_of(hub, list(builder.info.splits or [])) or DEFAULT_SPLIT
    try:
        dataset = datasets.load_dataset(hub.name, hub.config, split=split)
    except (OSError, ValueError, datasets.exceptions.DatasetsError) as err:
        raise DataError(_hub_error(hub, err)) from None
    return _flat(dataset)


def _flat(dataset: Any) -> Any:
    """`dataset`, if its rows are its files' rows in order (no indices mapping)."""
    if dataset._indices is not None:  # save_to_disk and load_dataset(split=NAME) never leave one
        raise DataError("has an indices mapping: save it with save_to_disk() (which flattens it)")
    return dataset


def _hub_error(hub: HubName, err: Exception) -> str:
    import datasets

    config = f" (config '{hub.config}')" if hub.config else ""
    if datasets.config.HF_HUB_OFFLINE:
        where = (
            "is not in the local datasets cache and the hub is offline (HF_HUB_OFFLINE=1): "
            "load it once where the hub is reachable, or save it with save_to_disk and "
            "give that directory"
        )
    elif isinstance(err, ConnectionError):
        where = (
            "could not be fetched: the hub is unreachable; set HF_HUB_OFFLINE=1 to use the cache"
        )
    else:
        where = "cannot be loaded"
    detail = " ".join(str(err).split())
    return f"dataset '{hub.name}'{config} {where} ({detail})"
