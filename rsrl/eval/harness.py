"""Base-model benchmarks through lm-evaluation-harness: its own `hf` model on a checkpoint's
HF export, its own tasks, metrics and standard errors. rsrl scores nothing here: it checks
that the tasks exist, runs them, and files lm-eval's numbers by checkpoint and task.

lm_eval is imported inside the functions, so a spec without `eval.harness` never loads it.
"""

from __future__ import annotations

import importlib.util
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rsrl.eval.config import HarnessSpec

log = logging.getLogger("rsrl")

MODEL = "hf"  # lm-eval's transformers model
MODEL_ARGS = {"dtype": "float32"}
DEVICE = "cpu"
NO_FILTER = "none"  # lm-eval's filter name on metrics that no filter produced


def run_harness(
    harness: HarnessSpec, checkpoints: dict[str, Path]
) -> tuple[dict[str, dict], dict[str, dict[str, str]]]:
    """({checkpoint: {task: {metric: value}}}, {checkpoint: {task: why it failed}}): every
    task on every checkpoint; a task that fails costs only its own results."""
    tasks = task_manager(harness.tasks, harness.include_path)
    results: dict[str, dict] = {}
    errors: dict[str, dict[str, str]] = {}
    for checkpoint, model_dir in checkpoints.items():
        results[checkpoint], failed = score_checkpoint(model_dir, harness, tasks)
        if failed:
            errors[checkpoint] = failed
        for task, values in results[checkpoint].items():
            log.info("eval: harness %s on %s: %s", task, checkpoint, _headline(values))
    return results, errors


def score_checkpoint(
    model_dir: Path, harness: HarnessSpec, tasks: Any
) -> tuple[dict[str, dict[str, float]], dict[str, str]]:
    """({task: {metric: value}}, {task: why it failed}) for one HF export; `tasks` is an
    lm-eval TaskManager that knows every task of `harness`."""
    from lm_eval import simple_evaluate
    from lm_eval.api.registry import get_model

    try:  # as simple_evaluate builds its model from model="hf": loaded once for all tasks
        lm = get_model(MODEL).create_from_arg_obj(
            {"pretrained": str(model_dir), **MODEL_ARGS},
            {"batch_size": harness.batch_size, "device": DEVICE},
        )
    except Exception as err:
        return {}, {task: f"model {model_dir}: {_reason(err)}" for task in harness.tasks}
    results: dict[str, dict[str, float]] = {}
    errors: dict[str, str] = {}
    for task in harness.tasks:  # one at a time: a task whose data fails spoils no other
        try:
            out = simple_evaluate(
                model=lm,
                tasks=[task],
                num_fewshot=harness.num_fewshot,
                limit=harness.limit,
                task_manager=tasks,
                log_samples=False,
            )
        except Exception as err:
            errors[task] = _reason(err)
            log.error("eval: harness task '%s' failed on %s: %s", task, model_dir, errors[task])
            continue
        assert out is not None  # None only on ranks other than 0 of a distributed run
        results.update(lm_eval_metrics(out))
    return results, errors


def lm_eval_metrics(out: dict) -> dict[str, dict[str, float]]:
    """{task: {metric: value}} from simple_evaluate's output: lm-eval's metric names (the
    "acc,none" kind as "acc"; another filter kept as "metric:filter"), numbers only; a
    task (not a group) with the documents it scored and its shots too."""
    metrics = {}
    for task, values in out["results"].items():
        metrics[task] = {
            metric_name(key): float(v)
            for key, v in values.items()
            if "," in key and isinstance(v, (int, float)) and not isinstance(v, bool)
        }
        if task in out.get("n-samples", {}):
            metrics[task]["samples"] = out["n-samples"][task]["effective"]
            metrics[task]["num_fewshot"] = out["n-shot"][task]
    return metrics


def metric_name(key: str) -> str:
    """lm-eval's "acc,none" as "acc", "exact_match,strict-match" as "exact_match:strict-match"."""
    name, _, filter_name = key.partition(",")
    return name if filter_name in ("", NO_FILTER) else f"{name}:{filter_name}"


def stderr_name(metric: str) -> str:
    """The name lm-eval gives the standard error of `metric` (after `metric_name`)."""
    name, sep, filter_name = metric.partition(":")
    return f"{name}_stderr{sep}{filter_name}"


def task_manager(tasks: Sequence[str], include_path: str | None) -> Any:
    """An lm-eval TaskManager for `tasks`: over `include_path` alone when it holds them all
    (fast, offline), else over lm-eval's own tasks too (indexing those is slow)."""
    from lm_eval.tasks import TaskManager

    local = _local_tasks(include_path)
    return TaskManager(include_path=include_path, include_defaults=not set(tasks) <= set(local))


def unknown_tasks(tasks: Sequence[str], include_path: str | None) -> list[str]:
    """The names of `tasks` that lm-eval knows neither under `include_path` nor among its
    own tasks, groups and tags. Quick: lm-eval's own index is built only over the
    directories whose YAMLs mention a name (all of it only when that finds nothing)."""
    local = set(_local_tasks(include_path))
    missing = [t for t in dict.fromkeys(tasks) if t not in local]
    yamls = _builtin_yamls() if missing else {}
    unknown = []
    for name in missing:
        dirs = _dirs_mentioning(name, yamls)
        if not dirs or (name not in _index(dirs) and name not in _index([_builtin_root()])):
            unknown.append(name)
    return unknown


def _local_tasks(include_path: str | None) -> list[str]:
    return _index([Path(include_path)]) if include_path else []


def _index(dirs: Sequence[Path]) -> list[str]:
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=[str(d) for d in dirs], include_defaults=False).all_tasks


def _builtin_root() -> Path:
    spec = importlib.util.find_spec("lm_eval")
    assert spec is not None and spec.submodule_search_locations, "lm_eval is not installed"
    return Path(next(iter(spec.submodule_search_locations))) / "tasks"


def _builtin_yamls() -> dict[Path, str]:
    """lm-eval's own task YAMLs and their text (~14k files, ~7 MB: read in a second or two)."""
    return {path: path.read_text(errors="replace") for path in _builtin_root().glob("**/*.yaml")}


def _dirs_mentioning(name: str, yamls: dict[Path, str]) -> list[Path]:
    """The directories of `yamls` that hold `name` as a word: a task, group or tag is named
    in the YAML that defines it, so no other directory can define it."""
    word = re.compile(rf"(?<![\w-]){re.escape(name)}(?![\w-])")
    dirs = {path.parent for path, text in yamls.items() if word.search(text)}
    return sorted(d for d in dirs if not dirs & set(d.parents))  # a parent indexes its subdirs


def _reason(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0] if lines else ''}"


def _headline(values: dict[str, float]) -> str:
    return ", ".join(
        f"{k} {v:.3f} ± {values[stderr_name(k)]:.3f}"
        for k, v in values.items()
        if stderr_name(k) in values
    )
