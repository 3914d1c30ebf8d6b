"""`rsrl apply` killed outright (SIGKILL: no cleanup, no finally) in the middle of a stage
loses nothing: its Ray processes go with it, the stage shows as resumable, and the next
apply continues from the last checkpoint instead of starting over. One pipeline is killed
twice: in pre-training, then (resumed) in RL, then resumed to the end. RL runs with
asynchronous rollouts, so the resume must also bring back the groups sampled ahead."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rsrl.pipeline.lock import file_lock
from rsrl.train.checkpoint import latest_checkpoint
from rsrl.train.metrics import read_metrics
from tests.e2e.quickstart import rsrl_cli, stage_dir, stage_statuses

SPEC = Path(__file__).parent / "tiny-kill.yaml"
PRETRAIN_STEPS = 60  # checkpoints every 10
PRETRAIN_KILL_AFTER = 20
RL_STEPS = 30  # a checkpoint every 10


def checkpointed_step(workdir: Path, stage: str) -> int:
    found = [latest_checkpoint(d) for d in workdir.glob(f"{stage}-*/")]
    return found[0][0] if found and found[0] else 0


def logged_steps(workdir: Path, stage: str) -> list[int]:
    return [r["step"] for d in workdir.glob(f"{stage}-*/") for r in read_metrics(d)]


def logged_past_checkpoint(workdir: Path, stage: str) -> int:
    """How many steps the stage has logged past its newest checkpoint (0 before the first)."""
    checkpoint = checkpointed_step(workdir, stage)
    return max(logged_steps(workdir, stage), default=0) - checkpoint if checkpoint else 0


# Ray's node agents see the raylet die at once, then spend ~60 s failing to tell the dead
# GCS before they exit; they hold nothing of rsrl's.
RAY_AGENTS = ("ray::DashboardAgent", "ray::RuntimeEnvAgent")


def session_processes(sid: int) -> dict[int, str]:
    """pid -> command line of the live processes in session `sid` (the driver's and
    everything it started), zombies and Ray's node agents aside."""
    found = {}
    for entry in Path("/proc").iterdir():
        try:
            if not entry.name.isdigit() or os.getsid(int(entry.name)) != sid:
                continue
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except OSError:  # gone meanwhile
            continue
        if state != "Z" and not cmdline.startswith(RAY_AGENTS):
            found[int(entry.name)] = cmdline
    return found


def apply_in_background(workdir: Path, log: Path) -> subprocess.Popen:
    with open(log, "w") as out:
        return subprocess.Popen(
            # -v: the workers' step lines in the log, as they print them
            [sys.executable, "-m", "rsrl.cli", "apply", "-v", str(SPEC), f"workdir={workdir}"],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def kill_when(driver: subprocess.Popen, ready, what: str) -> None:
    """SIGKILL the driver alone once `ready()`; return when every process it started (Ray's
    in-process cluster, the stage's workers, the rollout actors) has gone with it."""
    deadline = time.time() + 600
    while not ready():
        assert driver.poll() is None, f"apply ended before {what}"
        assert time.time() < deadline, f"apply never reached {what}"
        time.sleep(0.1)
    assert len(session_processes(driver.pid)) > 1  # Ray runs in the driver's session
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    deadline = time.time() + 60
    while left := session_processes(driver.pid):
        assert time.time() < deadline, f"processes {left} outlived their driver"
        time.sleep(0.5)


def assert_unlocked(stage: Path) -> None:
    """The stage's lock, held by its Ray worker while it ran, is free."""
    with file_lock(stage.with_name(f".{stage.name}.lock"), wait=False):
        pass


def is_timing(name: str) -> bool:
    """Metrics that vary run to run on identical weights and samples."""
    return name == "time" or name.endswith(("_seconds", "_per_s"))


def test_a_killed_apply_resumes_from_its_last_checkpoint(tmp_path):
    workdir = tmp_path / "run"

    # 1. Killed in pre-training.
    driver = apply_in_background(workdir, tmp_path / "apply-1.log")
    kill_when(
        driver,
        lambda: checkpointed_step(workdir, "pretrain") >= PRETRAIN_KILL_AFTER,
        "pre-training's checkpoint",
    )
    killed_at = checkpointed_step(workdir, "pretrain")
    assert PRETRAIN_KILL_AFTER <= killed_at < PRETRAIN_STEPS, "killed too late to test a resume"
    pretrain = stage_dir(workdir, "pretrain")
    assert_unlocked(pretrain)
    assert not (pretrain / "manifest.json").exists()
    assert re.search(
        r"pretrain\s+\w+\s+resumable", rsrl_cli("plan", str(SPEC), f"workdir={workdir}").stdout
    )

    # 2. Resumed: pre-training goes on from its checkpoint; killed in RL two steps past
    # RL's checkpoint, so the killed run logged steps the resumed run must reproduce.
    log = tmp_path / "apply-2.log"
    driver = apply_in_background(workdir, log)
    kill_when(
        driver,
        lambda: logged_past_checkpoint(workdir, "rl") >= 2,
        "two RL steps past a checkpoint",
    )
    resumed_steps = [
        int(s) for s in re.findall(rf"pretrain step (\d+)/{PRETRAIN_STEPS}", log.read_text())
    ]
    assert resumed_steps and min(resumed_steps) > killed_at  # not from the start
    steps = logged_steps(workdir, "pretrain")
    assert steps == sorted(set(steps)) and steps[-1] == PRETRAIN_STEPS  # each step once
    assert set(range(5, PRETRAIN_STEPS + 1, 5)) <= set(steps)
    rl = stage_dir(workdir, "rl")
    assert_unlocked(rl)
    assert not (rl / "manifest.json").exists()
    rl_killed_at = checkpointed_step(workdir, "rl")
    # The killed run's steps past its checkpoint: what an uninterrupted run logs there.
    uninterrupted = [r for r in read_metrics(rl) if r["step"] > rl_killed_at]
    assert len(uninterrupted) >= 2 and rl_killed_at < RL_STEPS, "killed too late to resume"

    # 3. Resumed in RL, to the end.
    again = rsrl_cli("apply", "-v", str(SPEC), f"workdir={workdir}")  # -v: its step lines
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    statuses = stage_statuses(again.stdout)
    assert statuses["tokenizer"] == statuses["data-pretrain"] == statuses["pretrain"] == "cached"
    rl_steps = [int(s) for s in re.findall(rf"rl step (\d+)/{RL_STEPS}", again.stdout)]
    assert min(rl_steps) == rl_killed_at + 1  # from the checkpoint, not from step 0
    resumed = read_metrics(rl)
    assert [r["step"] for r in resumed] == list(range(1, RL_STEPS + 1))  # each step once
    # Asynchronous rollouts (max_staleness: 1): every step after the first trained on groups
    # sampled one update earlier, across the restart too (the resumed run's first step on
    # the round the killed run had sampled ahead, kept in the checkpoint).
    assert [r["staleness_max"] for r in resumed] == [0] + [1] * (RL_STEPS - 1)
    # Rollouts are seeded by step and both processes are deterministic on CPU, so the first
    # resumed step reproduces the killed run's numbers only if the rollout engine and the
    # trainer both hold the checkpoint's weights (other weights sample other completions and
    # score other log-probabilities); the second also needs the optimizer's state back.
    for before, after in zip(uninterrupted, resumed[rl_killed_at:]):
        assert {k: v for k, v in after.items() if not is_timing(k)} == pytest.approx(
            {k: v for k, v in before.items() if not is_timing(k)}, rel=1e-6
        ), f"step {before['step']}"
