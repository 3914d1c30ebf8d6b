"""One quickstart run shared by the end-to-end tests (its pre-trained model is also where
the GRPO learning test starts)."""

import subprocess
from pathlib import Path

import pytest

from tests.e2e.quickstart import apply_quickstart


@pytest.fixture(scope="session")
def quickstart_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    workdir = tmp_path_factory.mktemp("quickstart")
    result = apply_quickstart(workdir)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return workdir, result
