"""A verifier as a spec names it (`rl.verifier`, each eval suite's `verifier`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rsrl.config import Problems


@dataclass
class VerifierSpec:
    name: str = "math"  # a built-in, an `rsrl.verifiers` entry point, or from `plugins:`
    timeout_s: float = 10.0
    options: dict[str, Any] = field(default_factory=dict)  # passed to the verifier

    def check(self, path: str, plugins: list[str]) -> list[str]:
        from rsrl.verifiers.registry import available_verifiers, entry_point_problem

        p = Problems(path)
        p.one_of(self.name, available_verifiers(plugins), "name")
        if problem := entry_point_problem(self.name):
            p.add("name", problem)
        p.need(self.timeout_s > 0, "timeout_s", self.timeout_s, "must be > 0")
        return p.lines


def check_plugins(plugins: list[str]) -> list[str]:
    """Each module or .py file of `plugins:` imports."""
    from rsrl.verifiers.registry import plugin_problem

    return [
        f"plugins[{i}]: {problem}"
        for i, plugin in enumerate(plugins)
        if (problem := plugin_problem(plugin))
    ]
