"""The verifier registry: built-ins, the `rsrl.verifiers` entry-point group, and spec plugins.

A verifier is `verify(prompt: str, completion: str, answer: str, **fields) -> float | VerifyResult`.
A plugin is a module name or a .py file listed under `plugins:`; importing it registers its
verifiers with `@register_verifier("name")`.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path

ENTRY_POINT_GROUP = "rsrl.verifiers"


@dataclass(frozen=True)
class VerifyResult:
    score: float
    reason: str = ""


Verifier = Callable[..., float | VerifyResult]

# Built-ins live in their own modules and are imported only when used.
_BUILTINS = {
    "exact": "rsrl.verifiers.exact:verify_exact",
    "math": "rsrl.verifiers.math_answer:verify_math",
    "number": "rsrl.verifiers.number:verify_number",
    "python": "rsrl.verifiers.python_code:verify_python",
}
_registered: dict[str, Verifier] = {}


def register_verifier(name: str) -> Callable[[Verifier], Verifier]:
    """Decorator for plugin modules: `@register_verifier("mine") def verify(...)`."""

    def add(fn: Verifier) -> Verifier:
        _registered[name] = fn
        return fn

    return add


def available_verifiers(plugins: Sequence[str] = ()) -> list[str]:
    """Every verifier name; plugins that fail to import are skipped (see plugin_problem)."""
    for plugin in plugins:
        plugin_problem(plugin)  # imports it, registering its verifiers
    names = set(_BUILTINS) | set(_registered) | {ep.name for ep in _entry_points()}
    return sorted(names)


def load_verifier(name: str, plugins: Sequence[str] = ()) -> Verifier:
    _import_plugins(plugins)
    if name in _registered:
        return _registered[name]
    if name in _BUILTINS:
        return _import_object(_BUILTINS[name])
    for ep in _entry_points():
        if ep.name == name:
            return ep.load()
    raise KeyError(f"unknown verifier '{name}'; available: {', '.join(available_verifiers())}")


def plugin_problem(plugin: str) -> str | None:
    """None when `plugin` can be imported, else why not."""
    return _import_problem(f"plugin '{plugin}'", lambda: _import_plugin(plugin))


def entry_point_problem(name: str) -> str | None:
    """None when verifier `name` is not an entry point (or is shadowed, as in load_verifier) or
    its module imports, else why not."""
    if name in _registered or name in _BUILTINS:
        return None
    for ep in _entry_points():
        if ep.name == name:
            return _import_problem(f"the '{name}' verifier's plugin ({ep.value})", ep.load)
    return None


def _import_problem(what: str, load: Callable[[], object]) -> str | None:
    # BaseException: a plugin's sys.exit() or KeyboardInterrupt at import is its failure too;
    # let through, it would end `rsrl validate` with exit 0 and no word (or "interrupted").
    try:
        load()
    except BaseException as err:  # user code: any failure is a spec problem, reported by name
        detail = f": {err}" if str(err) else ""
        return f"cannot import {what}: {type(err).__name__}{detail}"
    return None


def _entry_points():
    return entry_points(group=ENTRY_POINT_GROUP)


def _import_object(target: str) -> Verifier:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def _import_plugins(plugins: Sequence[str]) -> None:
    for plugin in plugins:
        _import_plugin(plugin)


def _import_plugin(plugin: str) -> None:
    if not plugin.endswith(".py"):
        importlib.import_module(plugin)
        return
    path = Path(plugin).resolve()
    module_name = f"rsrl_plugin_{path.stem}"
    if module_name in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None or not path.is_file():
        raise FileNotFoundError(f"no such plugin file: {plugin}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules[module_name] = module
