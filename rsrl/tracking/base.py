"""The interface every tracker implements, and what names a stage's run in it."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from rsrl.errors import SpecError

CHECK_TIMEOUT_S = 10  # how long the start check waits for a tracking server


class TrackerError(SpecError):
    """A tracker is unreachable or refuses its settings: a config error, found at start."""


@dataclass(frozen=True)
class StageRun:
    """What a stage's tracker run is named and grouped by, and its parameters."""

    group: str  # the pipeline run: one `rsrl apply`, or one sweep trial
    stage: str
    key: str
    config: dict  # the stage's spec slice, as in its stage key
    tags: Mapping[str, str]  # a sweep trial's swept values

    @property
    def name(self) -> str:
        return f"{self.stage}-{self.key}"  # as the stage's directory


class TrackerRun(Protocol):
    """One stage's run in one tracker."""

    def log(self, metrics: Mapping[str, float], step: int) -> None: ...

    def finish(self, metrics: Mapping[str, float], ok: bool) -> None: ...


class Tracker(Protocol):
    """One tracker for one pipeline run: checked and opened on the driver, then pickled to
    each stage's tracker actor, which starts the stage's run in it."""

    name: str  # its section of `logging:`

    def check(self) -> None:
        """Raise when the tracker is unreachable or refuses these settings."""

    def open(self, group: str, tags: Mapping[str, str]) -> None:
        """Start the pipeline run's own record, if the tracker keeps one."""

    def close(self, ok: bool) -> None: ...

    def start(self, run: StageRun) -> TrackerRun: ...


def numbers(record: Mapping[str, Any]) -> dict[str, float]:
    """The finite numbers of a metrics record or stage result, without its step and clock
    (what TensorBoard gets too)."""
    return {
        name: float(value)
        for name, value in record.items()
        if name not in ("step", "time")
        and isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
    }


def flat_params(config: Any, prefix: str = "") -> dict[str, str]:
    """A nested spec slice as dotted keys ('stage.lr.peak', 'data.0.path') and string values."""
    items: list[tuple[str, Any]]
    if isinstance(config, Mapping):
        items = [(str(k), v) for k, v in config.items()]
    elif isinstance(config, (list, tuple)):
        items = [(str(i), v) for i, v in enumerate(config)]
    else:
        return {prefix: str(config)}
    if not items:  # an empty list or mapping is a value too, but not at the top
        return {prefix: "[]" if isinstance(config, (list, tuple)) else "{}"} if prefix else {}
    flat: dict[str, str] = {}
    for key, value in items:
        flat.update(flat_params(value, f"{prefix}.{key}" if prefix else key))
    return flat
