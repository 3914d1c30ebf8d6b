"""The stage cache: a finished stage leaves a manifest; a started one leaves its directory.

A stage is cached only when its manifest parses, is its own and its outputs are all there;
a damaged one (truncated by a full disk, copied from elsewhere) makes the stage broken: it
runs again, resuming from what its directory holds, rather than being trusted or crashing.
"""

from __future__ import annotations

import json
import time
from enum import Enum
from pathlib import Path

from rsrl.files import write_json_atomic
from rsrl.layout import MANIFEST
from rsrl.pipeline.plan import Stage


class Status(str, Enum):
    CACHED = "cached"  # finished earlier: skipped
    RESUMABLE = "resumable"  # started earlier: continues from what it left
    BROKEN = "broken"  # a manifest that does not hold up: re-run, keeping what it left
    WILL_RUN = "will run"


def stage_status(stage: Stage, workdir: Path) -> Status:
    out = stage.out_dir(workdir)
    if (out / MANIFEST).is_file():
        return Status.CACHED if manifest_problem(stage, out) is None else Status.BROKEN
    if out.is_dir() and any(out.iterdir()):
        return Status.RESUMABLE
    return Status.WILL_RUN


def read_manifest(out_dir: Path) -> dict:
    return json.loads((out_dir / MANIFEST).read_text())


def manifest_problem(stage: Stage, out_dir: Path) -> str | None:
    """None when `out_dir`'s manifest parses, is this stage's (name and key) and the outputs
    it lists are all there; else what is wrong, for `rsrl plan` to show."""
    try:
        manifest = read_manifest(out_dir)
    except (OSError, UnicodeDecodeError, ValueError) as err:  # truncated, or not JSON
        return f"{MANIFEST} is unreadable ({type(err).__name__}: {err})"
    if not isinstance(manifest, dict) or not isinstance(manifest.get("result"), dict):
        return f"{MANIFEST} is not a finished stage's manifest (no result)"
    if (manifest.get("stage"), manifest.get("key")) != (stage.name, stage.key):
        return (
            f"{MANIFEST} belongs to {manifest.get('stage')!r} with key "
            f"{manifest.get('key')!r}, not to this stage"
        )
    outputs = manifest.get("outputs", [])  # absent in manifests written before it was kept
    if not isinstance(outputs, list):
        return f"{MANIFEST} lists its outputs as {outputs!r}, not as a list of names"
    missing = [o for o in outputs if not isinstance(o, str) or not (out_dir / o).exists()]
    if missing:
        return f"outputs listed in {MANIFEST} are missing: {', '.join(map(str, missing))}"
    return None


def write_manifest(stage: Stage, out_dir: Path, result: dict) -> None:
    outputs = sorted(
        p.name for p in out_dir.iterdir() if p.name != MANIFEST and not p.name.startswith(".")
    )
    manifest = {
        "stage": stage.name,
        "kind": stage.kind,
        "key": stage.key,
        "inputs": list(stage.inputs),
        "config": stage.config,
        "outputs": outputs,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "result": result,
    }
    write_json_atomic(out_dir / MANIFEST, manifest)
