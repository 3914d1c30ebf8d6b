"""MLflow: a parent run per pipeline run, a nested run per stage, through `MlflowClient`.

MLflow refuses some characters in metric and parameter names that rsrl's have: `@`
becomes `_at_` (`eval.arith.pass_at_4`), any other one `_`.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from rsrl.tracking.base import CHECK_TIMEOUT_S, StageRun, flat_params

GROUP_TAG = "rsrl.group"  # on the parent run and each stage's run
PARENT_TAG = "mlflow.parentRunId"  # MLflow's own: nests a run under another in its UI


def mlflow_name(name: str) -> str:
    return re.sub(r"[^\w./\- ]", "_", name.replace("@", "_at_"))


@dataclass
class MlflowTracker:
    tracking_uri: str
    experiment: str
    experiment_id: str | None = None  # set by check()
    parent_run_id: str | None = None  # set by open()
    name: str = "mlflow"

    def client(self) -> Any:
        from mlflow.tracking import MlflowClient

        return MlflowClient(self.tracking_uri)

    def check(self) -> None:
        """The store answers, and the experiment exists or can be made."""
        with _few_retries():
            client = self.client()
            found = client.get_experiment_by_name(self.experiment)
            self.experiment_id = (
                found.experiment_id if found else client.create_experiment(self.experiment)
            )

    def open(self, group: str, tags: Mapping[str, str]) -> None:
        run = self.client().create_run(
            self.experiment_id, run_name=group, tags={GROUP_TAG: group, **_tags(tags)}
        )
        self.parent_run_id = run.info.run_id

    def close(self, ok: bool) -> None:
        self.client().set_terminated(self.parent_run_id, "FINISHED" if ok else "FAILED")

    def start(self, run: StageRun) -> MlflowRun:
        from mlflow.entities import Param

        client = self.client()
        tags = {GROUP_TAG: run.group, "rsrl.stage": run.stage, **_tags(run.tags)}
        if self.parent_run_id:
            tags[PARENT_TAG] = self.parent_run_id
        run_id = client.create_run(self.experiment_id, run_name=run.name, tags=tags).info.run_id
        params = {"stage": run.stage, "stage_key": run.key, **flat_params(run.config)}
        client.log_batch(run_id, params=[Param(mlflow_name(k), v) for k, v in params.items()])
        return MlflowRun(client, run_id)


@dataclass
class MlflowRun:
    client: Any  # MlflowClient
    run_id: str

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(mlflow_name(k), v, now, step) for k, v in metrics.items()]
        self.client.log_batch(self.run_id, metrics=batch)

    def finish(self, metrics: Mapping[str, float], ok: bool) -> None:
        self.log(metrics, int(metrics.get("steps", 0)))
        self.client.set_terminated(self.run_id, "FINISHED" if ok else "FAILED")


def _tags(tags: Mapping[str, str]) -> dict[str, str]:
    return {mlflow_name(k): v for k, v in tags.items()}


@contextlib.contextmanager
def _few_retries() -> Iterator[None]:
    """MLflow retries an unreachable server for minutes by default: the start check should
    answer in seconds. Variables the user set are left as they are."""
    quick = {
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": str(CHECK_TIMEOUT_S),
    }
    added = {k: v for k, v in quick.items() if k not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for k in added:
            os.environ.pop(k, None)


def resolve_tracking_uri(given: str | None) -> str:
    """The store's URI as the stage actors must see it: MLflow's default when not given, a
    plain path made absolute (they may run in another directory)."""
    if given is None:
        import mlflow

        given = mlflow.get_tracking_uri()
    return given if urlparse(given).scheme else Path(given).resolve().as_uri()
