"""Weights & Biases: one W&B run per stage, in the pipeline run's group, through `wandb.init`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rsrl.tracking.base import CHECK_TIMEOUT_S, StageRun

MAX_TAG_CHARS = 64  # W&B refuses longer tags


@dataclass
class WandbTracker:
    project: str
    entity: str | None
    group: str | None  # the spec's; None: the pipeline run's own
    mode: str  # online | offline | disabled
    dir: str  # where runs are written locally ($WANDB_DIR, else the workdir)
    name: str = "wandb"

    def check(self) -> None:
        """Online: the API key is there and the server accepts it. Offline runs need neither."""
        if self.mode == "online":
            import wandb

            wandb.Api(timeout=CHECK_TIMEOUT_S)  # verifies the key with the server

    def open(self, group: str, tags: Mapping[str, str]) -> None:
        self.group = self.group or group  # W&B keeps no record of the group itself

    def close(self, ok: bool) -> None:
        pass

    def start(self, run: StageRun) -> WandbRun:
        import wandb

        return WandbRun(
            wandb.init(
                project=self.project,
                entity=self.entity,
                group=self.group,
                job_type=run.stage,
                name=run.name,
                config={"stage": run.stage, "stage_key": run.key, **run.config},
                tags=[f"{k}={v}"[:MAX_TAG_CHARS] for k, v in run.tags.items()],
                mode=self.mode,  # type: ignore[arg-type]  # validated: online | offline | disabled
                dir=self.dir,
                reinit="create_new",
                settings=wandb.Settings(quiet=True),  # one run per stage: no banner for each
            )
        )


@dataclass
class WandbRun:
    run: Any  # wandb.Run

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        self.run.log(dict(metrics), step=step)

    def finish(self, metrics: Mapping[str, float], ok: bool) -> None:
        import wandb

        self.run.summary.update(dict(metrics))
        self.run.finish(exit_code=0 if ok else 1)
        wandb.teardown()  # the actor is stopped next: its W&B service goes now, quietly
