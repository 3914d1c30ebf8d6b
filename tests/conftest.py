"""Shared test set-up: offline hubs, the Triton interpreter on CPU, and one Ray session for all."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Before anything imports triton or transformers.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "1")
# Ray workers start from the raylet's environment: let them import tests' stage functions.
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
try:
    import torch

    if not torch.cuda.is_available():
        os.environ.setdefault("TRITON_INTERPRET", "1")
except ImportError:  # pragma: no cover - torch is a core dependency
    pass


@pytest.fixture(scope="session")
def ray_session():
    """One embedded Ray instance for the whole test run (starting one costs seconds)."""
    import ray

    if not ray.is_initialized():
        # "local": a fresh instance even when another Ray runs on this machine.
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=True)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def quickstart_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """One quickstart run (tests/e2e/quickstart.py's QUICK), made once: a run costs minutes.
    The end-to-end tests check it (its pre-trained model is also where the GRPO learning test
    starts); the smoke runs of benchmarks/quickstart.py and rl_gain.py read it, writing
    nothing there."""
    from tests.e2e.quickstart import apply_quickstart

    workdir = tmp_path_factory.mktemp("quickstart")
    result = apply_quickstart(workdir)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return workdir, result


@pytest.fixture
def repo() -> Path:
    return REPO


def pytest_configure(config):
    sys.path.insert(0, str(REPO))
