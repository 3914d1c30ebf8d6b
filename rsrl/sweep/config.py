"""The `sweep:` section: what Ray Tune searches, with how many seeds, compared with what."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from rsrl.config import Problems, check_choices
from rsrl.layout import MODEL_STAGES

Mode = Literal["max", "min"]
METRIC_ROOTS = ("eval", *MODEL_STAGES)


@dataclass
class SearchDimSpec:
    """Exactly one of these: a grid of values, a random choice, or a range."""

    grid: list[Any] | None = None
    choice: list[Any] | None = None
    uniform: list[float] | None = None  # [low, high]
    loguniform: list[float] | None = None  # [low, high], low > 0

    def check(self, path: str) -> list[str]:
        p = Problems(path)
        kinds = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        given = [name for name, value in kinds.items() if value is not None]
        if len(given) != 1:
            p.add("", f"give exactly one of {', '.join(kinds)}; got {given or 'none'}")
            return p.lines
        kind, values = given[0], kinds[given[0]]
        if kind in ("grid", "choice"):
            p.need(len(values) >= 1, kind, values, "must list at least one value")
        else:
            ok = len(values) == 2 and values[0] < values[1]
            ok = ok and (kind == "uniform" or values[0] > 0)
            rule = "must be [low, high] with low < high"
            p.need(ok, kind, values, rule + (" and low > 0" if kind == "loguniform" else ""))
        return p.lines


@dataclass
class SweepSpec:
    space: dict[str, SearchDimSpec] = field(default_factory=dict)  # dotted spec path -> dim
    metric: str = ""  # e.g. eval.arith.pass@4 or pretrain.entropy
    mode: Mode = "max"
    # Draws of the choice/uniform/loguniform dimensions (seeded by the spec's seed); each
    # draw is an arm, crossed with the grid and run with every seed. Only with such a
    # dimension: without one, a draw repeats the same trials.
    num_samples: int = 1
    max_concurrent: int = 1
    # Every point of the grid with seeds seed, seed+1, ... (initialisation, data order,
    # sampling); results are aggregated over seeds.
    seeds: int = 1
    # The arm every other arm is compared with, paired by seed: e.g. {objective.beta: 0.0},
    # or nested, {objective: {beta: 0.0}}; matched by value (0 is 0.0)
    baseline: dict[str, Any] | None = None
    show: list[str] = field(default_factory=list)  # more metrics, each compared too

    def random_paths(self) -> list[str]:
        """The dimensions drawn at random (choice, uniform, loguniform), not gridded."""
        return [path for path, dim in self.space.items() if dim.grid is None]

    def baseline_point(self) -> dict[str, Any]:
        """The baseline arm's value of each swept path that `baseline` gives one, whether it
        names the path dotted ({objective.beta: 0}) or nested ({objective: {beta: 0}})."""
        baseline = self.baseline or {}
        point = {}
        for path in self.space:
            node: Any = baseline
            if path in baseline:
                node = baseline[path]
            else:
                for part in path.split("."):
                    node = node.get(part, _MISSING) if isinstance(node, Mapping) else _MISSING
            if node is not _MISSING:
                point[path] = node
        return point

    def check(self, path: str = "sweep") -> list[str]:
        """Everything but whether the space's keys name spec paths (the spec checks that)."""
        p = Problems(path)
        p.at_least(self, ("seeds",), 1, strict=False)
        p.need(
            "seed" not in self.space,
            "space.seed",
            "seed",
            "is not searched directly: set sweep.seeds to run every point with several seeds",
        )
        for key, dim in self.space.items():
            p.lines += dim.check(f"{path}.space.{key}")
        root = self.metric.split(".", 1)[0]
        p.need(
            root in METRIC_ROOTS and "." in self.metric,
            "metric",
            self.metric,
            f"must be a dotted metric under {', '.join(METRIC_ROOTS)} (e.g. eval.arith.pass@4)",
        )
        check_choices(self, p)
        p.at_least(self, ("num_samples",), 1, strict=False)
        p.need(
            self.num_samples == 1 or bool(self.random_paths()),
            "num_samples",
            self.num_samples,
            "draws the choice/uniform/loguniform dimensions, and sweep.space has none: every "
            "draw would repeat the same trials and count as extra seeds; for replicates set "
            "sweep.seeds instead",
        )
        p.at_least(self, ("max_concurrent",), 1, strict=False)
        if self.baseline:
            self._check_baseline(p)
        return p.lines

    def _check_baseline(self, p: Problems) -> None:
        """The baseline is one arm: a value for every swept path, each among the grid values
        (or the choices: whether the draws include it is checked when the sweep draws them),
        compared by value. Otherwise no arm would match and nothing would be compared."""
        for key in self.baseline or {}:
            if key not in self.space and not any(path.startswith(f"{key}.") for path in self.space):
                p.add(
                    f"baseline.{key}",
                    f"must name a path of sweep.space ({', '.join(self.space) or 'none'})",
                )
        point = self.baseline_point()
        for path, dim in self.space.items():
            values = dim.grid if dim.grid is not None else dim.choice
            if path not in point:
                p.add(
                    "baseline",
                    f"gives no value for {path}: the baseline is one arm, with a value for every "
                    "path of sweep.space",
                )
            elif values is None:
                p.add(
                    f"baseline.{path}",
                    "no arm repeats a value drawn from a range: sweep this path with grid or "
                    "choice to compare with a baseline",
                )
            elif value_key(point[path]) not in {value_key(v) for v in values}:
                kind = "grid" if dim.grid is not None else "choice"
                p.need(
                    False,
                    f"baseline.{path}",
                    point[path],
                    f"must be one of the {kind} values of sweep.space.{path} ({values})",
                )


_MISSING = object()


def value_key(value: Any) -> Any:
    """A hashable stand-in for a swept value that compares by value: YAML's 0 and 0.0 are
    one arm, and so are mappings with the same items in any order (json.dumps tells both
    apart)."""
    if isinstance(value, Mapping):
        return frozenset((str(k), value_key(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return tuple(value_key(v) for v in value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return value
