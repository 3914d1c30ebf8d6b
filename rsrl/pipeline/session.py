"""The Ray session: embedded (started in this process) by default, or an existing cluster."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path

import ray

from rsrl.logs import drop_below
from rsrl.pipeline.worker_logs import output_to

# Runs in every Ray worker process of the session, before any task or actor.
WORKER_SETUP_HOOK = "rsrl.pipeline.session.quiet_ray_internals"


def connect(
    address: str | None = None, *, ray_train: bool = True, notices_to: Path | None = None
) -> None:
    """Join `address` (or $RAY_ADDRESS); with neither, start Ray inside this process.
    `ray_train`: the session runs Ray Train, whose log noise every worker then quiets with a
    setup hook; without, no hook: its runtime env delays the first task.
    `notices_to`: a file that takes what Ray prints while it starts, instead of the console."""
    if ray.is_initialized():
        return
    with output_to(notices_to) if notices_to else contextlib.nullcontext():
        _init(address, ray_train)


def _init(address: str | None, ray_train: bool) -> None:
    if sys.prefix != sys.base_prefix:  # in a venv: DeepSpeed's JIT-built ops are cached in
        # it, where `make install` built the CPU shared-memory one (the embedded session's
        # workers inherit this environment; without it they would rebuild in ~/.cache)
        os.environ.setdefault("TORCH_EXTENSIONS_DIR", os.path.join(sys.prefix, "torch_extensions"))
    address = address or os.environ.get("RAY_ADDRESS")
    runtime_env = {"worker_process_setup_hook": WORKER_SETUP_HOOK} if ray_train else None
    if address:
        ray.init(address=address, log_to_driver=True, runtime_env=runtime_env)
    else:  # "local": never attach to some other Ray that happens to run on this machine
        ray.init(
            address="local", include_dashboard=False, log_to_driver=True, runtime_env=runtime_env
        )


def quiet_ray_internals() -> None:
    """Two Ray Train loggers would bury rsrl's own lines in the driver's output: the INFO
    line with the whole metrics dict on every `report`, and the placement-group cleaner's
    warning, every few seconds, that the State API is down (the embedded session runs
    without the dashboard that serves it). Their warnings and errors still show."""
    train = os.path.join(os.path.dirname(ray.__file__), "train", "v2", "_internal")
    # That module names its logger by its file path, not its module name.
    drop_below(os.path.join(train, "execution", "context.py"), logging.WARNING)
    drop_below("ray.train.v2._internal.execution.controller.placement_group_cleaner", logging.ERROR)
