"""Where a stage's text, prompts and held-out text come from (docs/data.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rsrl.config import Problems


@dataclass
class DataSourceSpec:
    path: str = ""  # file, directory, glob, synth://NAME, hf://NAME[/CONFIG][@SPLIT] or a
    # save_to_disk directory (docs/data.md)
    weight: float = 1.0  # share of the stage's tokens, relative to the other sources
    text_field: str = "text"
    template: str | None = None  # e.g. "Q: {question}\nA: {answer}" instead of text_field


def check_sources(sources: list[DataSourceSpec], path: str) -> list[str]:
    from rsrl.data.paths import check_data_path
    from rsrl.data.sources import template_problem

    p = Problems(path)
    if not sources:
        p.add("", "needs at least one source, e.g. [{path: synth://pretrain, weight: 1.0}]")
    for i, src in enumerate(sources):
        if problem := check_data_path(src.path):
            p.add(f"[{i}].path", problem)
        p.need(src.weight > 0, f"[{i}].weight", src.weight, "must be > 0")
        problem = template_problem(src.template) if src.template is not None else None
        if problem:
            p.add(f"[{i}].template", f"{problem}, got {src.template!r}")
    return p.lines


@dataclass
class PromptSourceSpec:
    path: str = ""
    prompt_field: str = "prompt"
    answer_field: str = "answer"
    # keep only items whose field matches: {difficulty: [1, 2]} or {task: count}
    where: dict[str, Any] | None = None
    limit: int | None = None  # read only the first `limit` (matching) items (quick evals)

    def check(self, path: str) -> list[str]:
        from rsrl.data.paths import check_data_path

        p = Problems(path)
        if problem := check_data_path(self.path):
            p.add("path", problem)
        if self.limit is not None:
            p.need(self.limit >= 1, "limit", self.limit, "must be >= 1")
        for name, wanted in (self.where or {}).items():
            values = wanted if isinstance(wanted, list) else [wanted]
            p.need(
                len(values) > 0 and all(isinstance(v, (str, int, float, bool)) for v in values),
                f"where.{name}",
                wanted,
                "must be a value or a non-empty list of values",
            )
        return p.lines


@dataclass
class HeldoutSpec:
    path: str = ""
    text_field: str = "text"
    tokens: int = 32768  # how much held-out text to score

    def check(self, path: str) -> list[str]:
        from rsrl.data.paths import check_data_path

        p = Problems(path)
        if problem := check_data_path(self.path):
            p.add("path", problem)
        p.need(self.tokens > 0, "tokens", self.tokens, "must be > 0")
        return p.lines
