"""What every section of the spec shares, so that a knob is declared once, in one file.

A section is a dataclass next to the code that uses it (`rsrl/<component>/config.py`). Its
allowed values are `Literal` types, checked here for every section alike; its `check(path)`
returns its other problems as 'dotted.path: message' lines; a field that changes how a
stage runs but not what it produces is declared `field(..., metadata=NOT_IN_KEY)` and left
out of the stage's cache key. `rsrl.spec` assembles the sections and raises all problems at
once. Plain Python only: a spec is checked before torch is imported.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Iterable
from typing import Any, Literal

from rsrl.errors import did_you_mean

# field(metadata=NOT_IN_KEY): how a stage runs (logging, checkpoints, batching), not what it
# produces, so changing it reuses the cached stage (rsrl.pipeline.plan).
NOT_IN_KEY = {"key": False}


def in_key(f: dataclasses.Field) -> bool:
    return f.metadata.get("key", True) is not False


class Problems:
    """Collects 'path.name: message' lines for one section at `path`."""

    def __init__(self, path: str = "") -> None:
        self.path = path
        self.lines: list[str] = []

    def at(self, name: str) -> str:
        """The dotted path of field `name` ('' is the section itself, '[i]' a list item)."""
        if not self.path or not name:
            return self.path or name
        return f"{self.path}{name}" if name.startswith("[") else f"{self.path}.{name}"

    def add(self, name: str, message: str) -> None:
        self.lines.append(f"{self.at(name)}: {message}")

    def need(self, ok: bool, name: str, value: Any, rule: str) -> None:
        if not ok:
            self.add(name, f"{rule}, got {value!r}")

    def at_least(self, section: Any, names: Iterable[str], low: float, strict: bool) -> None:
        """Each field of `names` must be >= low (> low when `strict`)."""
        for name in names:
            value = getattr(section, name)
            ok = value > low if strict else value >= low
            self.need(ok, name, value, f"must be {'>' if strict else '>='} {low:g}")

    def one_of(self, value: Any, allowed: Iterable[str], name: str) -> None:
        allowed = list(allowed)
        if value not in allowed:
            hint = did_you_mean(str(value), allowed)
            self.add(name, f"unknown value {value!r}{hint}; allowed: {', '.join(allowed)}")


def choices(section: Any, name: str) -> tuple[str, ...] | None:
    """The allowed values of field `name` when it is typed with a Literal (or a list of one)."""
    literal = _literal(typing.get_type_hints(type(section))[name])
    return typing.get_args(literal) if literal is not None else None


def check_choices(section: Any, p: Problems) -> None:
    """Each Literal-typed field of `section` (not the sections in it) holds an allowed value."""
    for f in dataclasses.fields(section):
        allowed = choices(section, f.name)
        value = getattr(section, f.name)
        if allowed is None or value is None:
            continue
        if isinstance(value, list):
            for i, item in enumerate(value):
                p.one_of(item, allowed, f"{f.name}[{i}]")
        else:
            p.one_of(value, allowed, f.name)


def _literal(tp: Any) -> Any:
    """The Literal inside `tp` (through Optional and list), else None."""
    if typing.get_origin(tp) is Literal:
        return tp
    for arg in typing.get_args(tp):
        found = _literal(arg)
        if found is not None:
            return found
    return None
