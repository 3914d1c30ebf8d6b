"""Checkpoints of a training stage: DeepSpeed state for an exact resume, and an HF export.

Layout under the stage directory:
    checkpoints/step-000040/   DeepSpeed state (all ranks write their shards)
    checkpoints/latest.json    {"step": 40, "tag": "step-000040"}, replaced atomically
    hf/                        the final Hugging Face export (model + tokenizer), the output
A checkpoint is written under a temporary tag and renamed once every rank has finished, so
`latest.json` never points at half a checkpoint. Only the last `keep` are kept.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch.distributed as dist

from rsrl.files import FULL_DISK_ERRNOS, DiskFull, names_full_disk, write_json_atomic
from rsrl.layout import CHECKPOINTS

LATEST = "latest.json"
log = logging.getLogger("rsrl")


def latest_checkpoint(stage_dir: Path) -> tuple[int, Path] | None:
    """(step, directory) of the newest complete checkpoint, or None.

    `latest.json` names it; when that file is unreadable or names a checkpoint that is not
    there (a disk filled up, a file copied half), the newest intact `step-*` directory is
    used instead, with a warning: the checkpoints themselves were renamed into place whole.
    """
    root = stage_dir / CHECKPOINTS
    path = root / LATEST
    if not path.exists():
        return None
    problem = _latest_problem(path)
    if problem is None:
        latest = json.loads(path.read_text())
        return latest["step"], root / latest["tag"]
    intact = sorted(p for p in root.iterdir() if _is_intact(p))
    if not intact:
        log.warning(
            "%s %s, and no intact checkpoint is beside it: training starts from step 0",
            path,
            problem,
        )
        return None
    log.warning(
        "%s %s; resuming from the newest intact checkpoint, %s, instead",
        path,
        problem,
        intact[-1].name,
    )
    return int(intact[-1].name.removeprefix("step-")), intact[-1]


def _latest_problem(path: Path) -> str | None:
    """None when `latest.json` names an intact checkpoint, else what is wrong with it."""
    try:
        latest = json.loads(path.read_text())
        step, tag = latest["step"], latest["tag"]
    except (OSError, ValueError, TypeError, KeyError) as err:
        return f"is unreadable ({type(err).__name__}: {err})"
    if not isinstance(step, int) or not isinstance(tag, str) or not _is_intact(path.parent / tag):
        return f"names {tag!r} at step {step!r}, which is not an intact checkpoint"
    return None


def _is_intact(path: Path) -> bool:
    """A `step-NNNNNN` directory holding DeepSpeed's model states (temporary tags excluded)."""
    digits = path.name.removeprefix("step-")
    return (
        path.name.startswith("step-")
        and digits.isdigit()
        and path.is_dir()
        and any(path.glob("*model_states.pt"))
    )


def save_checkpoint(
    engine, stage_dir: Path, step: int, keep: int, rank: int, client_state: dict | None = None
) -> None:
    """Collective. `client_state` (e.g. the data position) comes back from load_checkpoint."""
    root = stage_dir / CHECKPOINTS
    tag = f"step-{step:06d}"
    tmp_tag = f".tmp-{tag}"
    try:
        with names_full_disk(root / tmp_tag):
            engine.save_checkpoint(
                str(root),
                tag=tmp_tag,
                client_state={**(client_state or {}), "step": step},
                save_latest=False,
            )
    except Exception as err:
        # torch's writer says "unexpected pos" on a full disk: ask the files themselves
        if not isinstance(err, DiskFull) and not _writes_fail(root / tmp_tag):
            raise
        shutil.rmtree(root / tmp_tag, ignore_errors=True)  # the previous checkpoint stays
        raise (err if isinstance(err, DiskFull) else DiskFull(root / tmp_tag)) from err
    dist.barrier()
    if rank == 0:
        if (root / tag).exists():
            shutil.rmtree(root / tag)
        os.replace(root / tmp_tag, root / tag)
        write_json_atomic(root / LATEST, {"step": step, "tag": tag})
        _prune(root, keep)
    dist.barrier()


def _writes_fail(checkpoint_dir: Path) -> bool:
    """Whether a block more fails to go into a file of a half-written checkpoint (it is
    removed next) with a full disk's error."""
    for path in sorted(checkpoint_dir.rglob("*")) if checkpoint_dir.is_dir() else []:
        if path.is_dir():
            continue
        try:
            with open(path, "ab") as f:
                f.write(bytes(4096))
                f.flush()
                os.fsync(f.fileno())
        except OSError as err:
            if err.errno in FULL_DISK_ERRNOS:
                return True
    return False


def load_checkpoint(engine, stage_dir: Path) -> dict:
    """Restore the newest checkpoint into `engine`; return its client state ({"step": 0, ...}
    when there is none)."""
    found = latest_checkpoint(stage_dir)
    if found is None:
        return {"step": 0}
    _, path = found
    _, client_state = engine.load_checkpoint(str(path.parent), tag=path.name)
    return client_state


def _prune(root: Path, keep: int) -> None:
    tags = sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("step-"))
    for old in tags[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    for stale in root.glob(".tmp-*"):  # left by a crash mid-save
        shutil.rmtree(stale, ignore_errors=True)


@contextmanager
def gathered_lm(engine) -> Iterator:
    """The engine's HF model with every ZeRO-3 shard gathered (collective: all ranks enter)."""
    import deepspeed

    model = engine.module.lm
    params = [p for p in model.parameters() if hasattr(p, "ds_id")]
    with deepspeed.zero.GatheredParameters(params, modifier_rank=None, enabled=bool(params)):
        yield model


def export_hf(engine, tokenizer, out_dir: Path, rank: int) -> None:
    """Save the full model as a Hugging Face directory (gathering ZeRO-3 shards), atomically."""
    with gathered_lm(engine) as model:
        if rank == 0:
            tmp = out_dir.with_name(f".tmp-{out_dir.name}")
            shutil.rmtree(tmp, ignore_errors=True)
            try:
                with names_full_disk(tmp):
                    model.save_pretrained(tmp, safe_serialization=True)
                    tokenizer.save_pretrained(tmp)
            except DiskFull:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            shutil.rmtree(out_dir, ignore_errors=True)
            os.replace(tmp, out_dir)
    dist.barrier()
