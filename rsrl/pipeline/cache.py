"""The stage cache: a finished stage leaves a manifest; a started one leaves its directory."""

from __future__ import annotations

import json
import time
from enum import Enum
from pathlib import Path

from rsrl.files import write_json_atomic
from rsrl.pipeline.plan import Stage

MANIFEST = "manifest.json"


class Status(str, Enum):
    CACHED = "cached"  # finished earlier: skipped
    RESUMABLE = "resumable"  # started earlier: continues from what it left
    WILL_RUN = "will run"


def stage_status(stage: Stage, workdir: Path) -> Status:
    out = stage.out_dir(workdir)
    if (out / MANIFEST).is_file():
        return Status.CACHED
    if out.is_dir() and any(out.iterdir()):
        return Status.RESUMABLE
    return Status.WILL_RUN


def read_manifest(out_dir: Path) -> dict:
    return json.loads((out_dir / MANIFEST).read_text())


def write_manifest(stage: Stage, out_dir: Path, result: dict) -> None:
    manifest = {"stage": stage.name, "kind": stage.kind, "key": stage.key,
                "inputs": list(stage.inputs), "config": stage.config,
                "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "result": result}
    write_json_atomic(out_dir / MANIFEST, manifest)
