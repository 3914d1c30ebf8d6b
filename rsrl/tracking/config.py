"""The `logging:` section: experiment trackers. Not part of any stage key."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from rsrl.config import Problems, check_choices

WandbMode = Literal["online", "offline", "disabled"]  # offline: `wandb sync` later
OnError = Literal["fail", "warn"]  # what a tracker unreachable at start does


@dataclass
class WandbSpec:
    project: str | None = None  # default: the spec's name
    entity: str | None = None  # user or team; default: the API key's own
    group: str | None = None  # default: one group per pipeline run (apply or sweep trial)
    mode: WandbMode = "online"


@dataclass
class MlflowSpec:
    # http(s)://server, sqlite:///abs/path.db, file:///abs/dir or a plain path; default:
    # $MLFLOW_TRACKING_URI, else MLflow's own default
    tracking_uri: str | None = None
    experiment: str | None = None  # default: the spec's name


@dataclass
class LoggingSpec:
    """Experiment trackers: every stage that runs is one run in each."""

    wandb: WandbSpec | None = None
    mlflow: MlflowSpec | None = None
    on_error: OnError = "fail"

    def check(self, path: str = "logging") -> list[str]:
        """Values only: whether a tracker is reachable is checked when a run starts."""
        p = Problems(path)
        check_choices(self, p)
        for name, tracker in (("wandb", self.wandb), ("mlflow", self.mlflow)):
            if tracker is None:
                continue
            t = Problems(f"{path}.{name}")
            check_choices(tracker, t)
            for field_name, value in vars(tracker).items():
                if field_name != "mode":
                    t.need(
                        value is None or bool(value.strip()),
                        field_name,
                        value,
                        "must not be empty (leave it out for the default)",
                    )
            p.lines += t.lines
        return p.lines
