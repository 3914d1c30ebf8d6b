"""The Ray session: embedded (started in this process) by default, or an existing cluster."""

from __future__ import annotations

import os

import ray


def connect(address: str | None = None) -> None:
    """Join `address` (or $RAY_ADDRESS); with neither, start Ray inside this process."""
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=True)
    else:  # "local": never attach to some other Ray that happens to run on this machine
        ray.init(address="local", include_dashboard=False, log_to_driver=True)
