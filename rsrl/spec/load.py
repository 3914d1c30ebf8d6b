"""Load a spec: YAML file -> typed `Spec`, with dotted overrides and `${...}` interpolation.

Every failure becomes a `SpecError` that names the field path and says what is allowed;
each section's checks follow in `validate.py`.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, cast

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import (
    ConfigAttributeError,
    ConfigKeyError,
    InterpolationResolutionError,
    OmegaConfBaseException,
    ValidationError,
)

from rsrl.errors import SpecError, did_you_mean
from rsrl.spec.schema import Spec, nested_dataclass
from rsrl.spec.strict_yaml import SpecYAMLError, safe_load_strict
from rsrl.spec.validate import validate


def load_spec(path: str | Path, overrides: Sequence[str] = ()) -> Spec:
    """Read, merge, interpolate and validate a spec. Raises SpecError on any mistake."""
    raw = _read_yaml(Path(path))
    _reject_resolvers(raw, str(path))
    cfg = _merge_onto_schema(raw, str(path))
    for override in overrides:
        _apply_override(cfg, override)
    spec = _to_object(cfg)
    validate(spec)
    return spec


def spec_to_yaml(spec: Spec) -> str:
    """The fully resolved spec as YAML (what `rsrl validate --print` shows, what runs store)."""
    return OmegaConf.to_yaml(OmegaConf.structured(spec))


def spec_to_dict(spec: Spec) -> dict:
    return cast(dict, OmegaConf.to_container(OmegaConf.structured(spec), resolve=True))


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise SpecError(f"{path}: no such spec file")
    text = path.read_text()
    try:
        raw = safe_load_strict(text)
    except SpecYAMLError as err:
        raise SpecError(f"{path}: {err}") from None
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown line"
        raise SpecError(f"{path}: YAML syntax error at {where}: {err.problem}") from None
    if raw is None:
        raise SpecError(f"{path}: the spec file is empty; start from specs/quickstart.yaml")
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: a spec is a YAML mapping of sections, got {type(raw).__name__}")
    return raw


# `${name:args}` calls a resolver; a plain `${dotted.path}` only refers to another value.
_RESOLVER_CALL = re.compile(r"\$\{\s*([A-Za-z_][\w.\-]*)\s*:")


def _reject_resolvers(value: Any, source: str, where: str = "") -> None:
    """Refuse `${oc.env:VAR}` and every other resolver: the resolved spec is printed and
    stored with each run, so a resolver would copy secrets from the environment into it."""
    if isinstance(value, dict):
        for key, item in value.items():
            _reject_resolvers(item, source, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _reject_resolvers(item, source, f"{where}[{i}]")
    elif isinstance(value, str) and (call := _RESOLVER_CALL.search(value)):
        at = f" at '{where}'" if where else ""
        raise SpecError(
            f"{source}: resolver '${{{call.group(1)}:...}}'{at} is not allowed: "
            "the resolved spec is printed and stored with the run, so write the "
            "value itself (only ${dotted.path} references to other keys resolve)"
        )


def _merge_onto_schema(raw: dict, source: str) -> DictConfig:
    schema = OmegaConf.structured(_loose(Spec))
    try:
        return cast(DictConfig, OmegaConf.merge(schema, raw))
    except OmegaConfBaseException as err:
        raise SpecError(_explain(err, source)) from None


_ABSENT = object()


def _apply_override(cfg: DictConfig, override: str) -> None:
    key, sep, value = override.partition("=")
    if not sep or not key:
        raise SpecError(f"override '{override}': write overrides as dotted.path=value")
    try:
        parsed = safe_load_strict(value)
        _reject_resolvers(parsed, f"override '{override}'")
        _check_list_indices(cfg, key.strip(), override)
        OmegaConf.update(cfg, *_through_unset(cfg, key.strip(), parsed), merge=True)
    except SpecYAMLError as err:
        raise SpecError(f"override '{override}': {err}") from None
    except (OmegaConfBaseException, yaml.YAMLError) as err:
        raise SpecError(_explain(err, f"override '{override}'")) from None


def _check_list_indices(cfg: DictConfig, key: str, override: str) -> None:
    """A list item past the end: say so, instead of OmegaConf's 'dict is not a subclass'."""
    parts = key.split(".")
    for i, part in enumerate(parts[1:], start=1):
        prefix = ".".join(parts[:i])
        node = OmegaConf.select(cfg, prefix, default=None)
        if isinstance(node, ListConfig) and part.isdigit() and int(part) >= len(node):
            raise SpecError(
                f"override '{override}': '{prefix}' is a list of {len(node)} item(s) (indices "
                f"0 to {len(node) - 1}), so it has no item {part}; to add items give the whole "
                f"list, e.g. {prefix}='[...]'"
            )


def _through_unset(cfg: DictConfig, key: str, value: Any) -> tuple[str, Any]:
    """`a.b.c=v` where `a.b` is unset (null) becomes `a.b={c: v}`, so an optional mapping
    such as `rl.prompts.where` can be given one key at a time on the command line."""
    parts = key.split(".")
    for i in range(1, len(parts)):
        prefix = ".".join(parts[:i])
        if OmegaConf.select(cfg, prefix, default=_ABSENT) is None:
            for name in reversed(parts[i:]):
                value = {name: value}
            return prefix, value
    return key, value


def _to_object(cfg: DictConfig) -> Spec:
    try:
        return cast(Spec, _build(Spec, OmegaConf.to_container(cfg, resolve=True)))
    except OmegaConfBaseException as err:
        raise SpecError(_explain(err, "spec")) from None


@functools.cache
def _loose(cls: type) -> type:
    """`cls` as OmegaConf gets it: each Literal typed by its values' type, so that a value
    outside one is reported by the sections' checks with every other problem, not alone."""
    hints = typing.get_type_hints(cls)
    fields = []
    for f in dataclasses.fields(cls):
        default: Any = f.default
        if f.default_factory is not dataclasses.MISSING:
            factory = f.default_factory
            loose = _loose(factory) if dataclasses.is_dataclass(factory) else factory
            default = dataclasses.field(default_factory=cast(Any, loose))
        fields.append((f.name, _loosen(hints[f.name]), default))
    return dataclasses.make_dataclass(f"Loose{cls.__name__}", fields)


def _loosen(tp: Any) -> Any:
    if typing.get_origin(tp) is Literal:
        return type(typing.get_args(tp)[0])
    if dataclasses.is_dataclass(tp):
        return _loose(cast(type, tp))
    args = typing.get_args(tp)
    if not args:
        return tp
    loose = tuple(_loosen(a) for a in args)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return typing.Union[loose]  # noqa: UP007 (built from a tuple)
    return typing.get_origin(tp)[loose]


def _build(cls: type, data: Any) -> Any:
    """The dataclass `cls` from OmegaConf's plain container of its loose twin."""
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        value, sub = data[f.name], nested_dataclass(cls, f.name)
        if value is not None and sub is not None:
            if isinstance(value, list):
                value = [_build(sub, v) for v in value]
            elif "dict[" in str(hints[f.name]):
                value = {k: _build(sub, v) for k, v in value.items()}
            else:
                value = _build(sub, value)
        values[f.name] = value
    return cls(**values)


def _explain(err: Exception, source: str) -> str:
    """Turn an OmegaConf error into one line: where, what, and what is allowed."""
    key = _field_path(getattr(err, "full_key", "") or "")
    if isinstance(err, (ConfigKeyError, ConfigAttributeError)):
        bad = key.rsplit(".", 1)[-1]
        allowed = _allowed_keys(key)
        hint = did_you_mean(bad, allowed)
        listing = f"; allowed keys: {', '.join(allowed)}" if allowed else ""
        return f"{source}: unknown key '{key}'{hint}{listing}"
    if isinstance(err, InterpolationResolutionError):
        return f"{source}: cannot resolve interpolation at '{key}': {_first_line(err)}"
    if isinstance(err, ValidationError):
        detail = _first_line(err)
        if "is not a ListConfig" in detail:
            detail = "expected a list, e.g. [{path: synth://pretrain, weight: 1.0}]"
        return f"{source}: wrong type at '{key}': {detail}"
    if isinstance(err, yaml.YAMLError):
        return f"{source}: the value is not valid YAML: {_first_line(err)}"
    return f"{source}: invalid value at '{key}': {_first_line(err)}"


def _first_line(err: Exception) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


def _field_path(full_key: str) -> str:
    """OmegaConf writes list items as data[1]; keep that, drop a leading dot."""
    return full_key.lstrip(".")


def _allowed_keys(full_key: str) -> list[str]:
    """The fields of the dataclass that holds `full_key`, found by walking the schema."""
    parts = [p for p in re.split(r"\.|\[\d+\]", full_key) if p][:-1]
    cls: type | None = Spec
    for part in parts:
        cls = nested_dataclass(cls, part) if cls else None
    if cls is None or not dataclasses.is_dataclass(cls):
        return []
    return [f.name for f in dataclasses.fields(cls)]
