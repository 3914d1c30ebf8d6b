"""`rsrl apply` killed outright (SIGKILL: no cleanup, no finally) in the middle of
pre-training loses nothing: its Ray processes go with it, the stage shows as resumable, and
the next apply continues from the last checkpoint instead of starting over."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from rsrl.pipeline.lock import WorkdirBusy, file_lock
from tests.e2e.quickstart import rsrl_cli, stage_dir, stage_statuses

SPEC = Path(__file__).parent / "tiny-pretrain.yaml"
STEPS = 60  # checkpoints every 10
KILL_AFTER_STEP = 20


def checkpointed_step(workdir: Path) -> int:
    latest = list(workdir.glob("pretrain-*/checkpoints/latest.json"))
    return json.loads(latest[0].read_text())["step"] if latest else 0


def wait_until_free(lock: Path, seconds: float) -> None:
    deadline = time.time() + seconds
    while True:
        try:
            with file_lock(lock, wait=False):
                return
        except WorkdirBusy:
            assert time.time() < deadline, f"{lock} still held: Ray outlived its driver"
            time.sleep(0.5)


def test_a_killed_apply_resumes_from_its_last_checkpoint(tmp_path):
    workdir = tmp_path / "run"
    driver = subprocess.Popen(
        [sys.executable, "-m", "rsrl.cli", "apply", str(SPEC), f"workdir={workdir}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 600
    while checkpointed_step(workdir) < KILL_AFTER_STEP and driver.poll() is None:
        assert time.time() < deadline, "pre-training never reached its checkpoint"
        time.sleep(0.2)
    os.kill(driver.pid, signal.SIGKILL)  # the driver only: Ray must not outlive it
    driver.wait()
    killed_at = checkpointed_step(workdir)
    assert KILL_AFTER_STEP <= killed_at < STEPS, "killed too late to test a resume"

    # The stage's Ray worker held the stage lock: free once Ray's processes are gone.
    pretrain = stage_dir(workdir, "pretrain")
    wait_until_free(pretrain.with_name(f".{pretrain.name}.lock"), seconds=60)
    assert not (pretrain / "manifest.json").exists()
    assert re.search(
        r"pretrain\s+\w+\s+resumable", rsrl_cli("plan", str(SPEC), f"workdir={workdir}").stdout
    )

    again = rsrl_cli("apply", str(SPEC), f"workdir={workdir}")
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    statuses = stage_statuses(again.stdout)
    assert statuses["tokenizer"] == statuses["data-pretrain"] == "cached"
    resumed_steps = [int(s) for s in re.findall(rf"pretrain step (\d+)/{STEPS}", again.stdout)]
    assert resumed_steps and min(resumed_steps) > killed_at  # not from the start
    steps = [
        json.loads(line)["step"] for line in (pretrain / "metrics.jsonl").read_text().splitlines()
    ]
    assert steps == sorted(set(steps)) and steps[-1] == STEPS  # each logged step once, in order
    assert set(range(5, STEPS + 1, 5)) <= set(steps)
